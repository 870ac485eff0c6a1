#!/usr/bin/python3
"""tools/hpc/simclr.sbatch's preemption logic, run for real with stub srun and
scontrol (issue 14). Usage: hpc_script_check.py <simclr> <scratch dir>

The script runs with PATH holding a stub `srun` (drops srun's options and
execs the command: one process, so the signal the script forwards to "srun"
reaches simclr itself) and a stub `scontrol` (records its arguments), and
SLURM's variables of a one-node job. While it trains, the test sends SIGUSR1
to the script (what --signal=B:USR1@120 does); then:
  - simclr stopped after a step with a checkpoint there and status 138,
  - the script called `scontrol requeue <job id>` and exited 0;
running the script again (the requeued job) resumes from that checkpoint and
finishes; that run ends without requeueing and with status 0. Pure Python."""
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kill_resume_check import write_idx_u8, checkpoints  # noqa: E402

DEADLINE_S = 120


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from checks import fail, check  # noqa: E402


def main():
    simclr, scratch = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    here = os.path.dirname(os.path.abspath(__file__))
    sbatch = os.path.join(os.path.dirname(os.path.dirname(here)), "tools", "hpc", "simclr.sbatch")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(os.path.join(scratch, "bin"))
    write_idx_u8(os.path.join(scratch, "train-images"), random.Random(3), 64, 16)
    with open(os.path.join(scratch, "run.json"), "w") as f:
        json.dump({
            "data": {"dataset": "idx", "images": os.path.join(scratch, "train-images"), "channels": 1,
                     "image_size": 16, "mean": [0.5], "std": [0.25], "workers": 1},
            "model": {"arch": "resnet18", "width": 0.0625, "stem": "cifar"},
            "head": {"depth": 2, "out": 16},
            "train": {"epochs": 60, "batch": 16, "threads": 1, "log_interval": 1, "keep_last": 2,
                      "checkpoint_every": 0, "run_dir": os.path.join(scratch, "run")},
            "eval": {"knn_every": 0, "linear_at_end": False, "raw_pixels": False, "random_init": False},
        }, f)
    stubs = {
        "srun": '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n',
        "scontrol": '#!/bin/bash\necho "$@" >> "%s/scontrol.log"\n' % scratch,
    }
    for name, text in stubs.items():
        p = os.path.join(scratch, "bin", name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, os.stat(p).st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=os.path.join(scratch, "bin") + ":" + os.environ["PATH"], SIMCLR=simclr,
               SLURM_JOB_ID="4242", SLURM_JOB_NUM_NODES="1", SLURM_NTASKS_PER_NODE="1", SLURM_CPUS_PER_TASK="1")
    for k in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", "SLURM_STEP_ID"):
        env.pop(k, None)

    def start():
        return subprocess.Popen(["bash", sbatch, "run.json"], cwd=scratch, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    p = start()
    lines, sent = [], False
    t0 = time.time()
    for line in p.stdout:
        lines.append(line)
        if not sent and " step 5/" in line:
            p.send_signal(signal.SIGUSR1)  # to the batch script, as SLURM's --signal=B:USR1 does
            sent = True
        if time.time() - t0 > DEADLINE_S:
            p.kill()
            fail("the job script did not end")
    rc = p.wait()
    out = "".join(lines)
    check(sent, "SIGUSR1 sent to the job script after step 5 was logged")
    check(rc == 0, "the script exited 0 after the stop (status %d)" % rc)
    check("SIGUSR1 received: stopped after step" in out, "simclr stopped on the forwarded SIGUSR1")
    check("stopped with a checkpoint (status 138): requeueing job 4242" in out, "the script saw status 138")
    log = open(os.path.join(scratch, "scontrol.log")).read().split("\n")
    check(log[0] == "requeue 4242", "scontrol requeue 4242 was called")
    cks = checkpoints(os.path.join(scratch, "run"))
    check(len(cks) == 1 and 5 <= max(cks) < 240, "one checkpoint, at the stop (step %s)" % sorted(cks))
    stop_step = max(cks)

    p = start()  # the requeued job
    out2, _ = p.communicate(timeout=DEADLINE_S)
    check(p.returncode == 0, "the requeued job finished with status 0 (status %d)" % p.returncode)
    check("resuming from" in out2 and "(step %d," % stop_step in out2, "it resumed at step %d" % stop_step)
    check("simclr train ended with status 0" in out2 and "requeueing" not in out2, "and did not requeue again")
    check(240 in checkpoints(os.path.join(scratch, "run")), "the run finished (checkpoint of step 240)")
    check(open(os.path.join(scratch, "scontrol.log")).read().count("requeue") == 1, "scontrol was called once")


if __name__ == "__main__":
    main()
