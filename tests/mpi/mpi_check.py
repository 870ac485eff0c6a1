#!/usr/bin/python3
"""The MPI communicator and the distributed ops over real processes (issue 14).
Usage: mpi_check.py <mpirun or ""> <mpi_checks>

Runs tests/mpi/mpi_checks.cpp under `mpirun --oversubscribe --allow-run-as-root`:
  collectives at -np 2 and 3; global batch norm with unequal rows per rank at
  -np 2 and 3; NT-Xent with gathered negatives at -np 2 and 3 (each against
  the single-process op, see mpi_checks.cpp); then the failure modes:
  - "die": rank 1 exits with status 3 while rank 0 waits in MPI_Allreduce:
    the job must end, non-zero, within DEAD_RANK_S (mpirun ends it);
  - "hang": rank 1 sleeps while rank 0 waits: with SIMCLR_COMM_TIMEOUT=2 rank
    0's watchdog must end it within HANG_S with a message naming the call and
    the rank (and the job then ends).
Prints SKIPPED when mpirun is missing (ctest counts it as skipped)."""
import os
import re
import subprocess
import sys
import time

DEAD_RANK_S = 30  # mpirun ends a job about 1 s after a rank exits non-zero (measured): 30 s is generous
HANG_S = 30       # watchdog at 2 s, polls every 0.2 s, then mpirun's teardown


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from checks import fail, check  # noqa: E402


def mpirun(launcher, n, exe, mode, env_extra=None, timeout=120):
    env = dict(os.environ)
    env.update(env_extra or {})
    cmd = [launcher, "--oversubscribe", "--allow-run-as-root", "-np", str(n)]
    for k in (env_extra or {}):
        cmd += ["-x", k]
    cmd += [exe, mode]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        fail("%s did not end within %d s (hung); output:\n%s" % (" ".join(cmd), timeout, e.stdout))
    return p.returncode, p.stdout, time.time() - t0


def main():
    launcher, exe = sys.argv[1], sys.argv[2]
    if launcher in ("", "none") or not os.path.exists(launcher):
        print("SKIPPED: mpirun not found (install openmpi-bin and libopenmpi-dev, then reconfigure)")
        return
    for mode, sizes in (("collectives", (2, 3)), ("bn", (2, 3)), ("ntxent", (2, 3))):
        for n in sizes:
            rc, out, _ = mpirun(launcher, n, exe, mode)
            oks = len(re.findall(r"^rank \d+: ok ", out, re.M))
            if rc != 0 or "FAILED" in out or oks == 0:
                fail("mpi_checks %s at -np %d (status %d):\n%s" % (mode, n, rc, out))
            print("ok: %s at -np %d: %d checks passed on %d ranks" % (mode, n, oks, n))

    rc, out, dt = mpirun(launcher, 2, exe, "die", timeout=DEAD_RANK_S + 30)
    check("rank 0: entering MPI_Allreduce" in out and "rank 1: exiting with status 3" in out,
          "die: rank 1 exited while rank 0 waited in a collective")
    check(rc != 0 and "FAILED the collective completed" not in out, "die: the job failed (status %d)" % rc)
    check(dt < DEAD_RANK_S, "die: it ended within %d s (%.1f s)" % (DEAD_RANK_S, dt))

    rc, out, dt = mpirun(launcher, 2, exe, "hang", {"SIMCLR_COMM_TIMEOUT": "2"}, timeout=HANG_S + 30)
    msg = re.search(r"simclr: rank 0 of 2: MPI_Allreduce \(f64\[4\] on cpu\) has not completed after \d+ s", out)
    check(msg is not None, "hang: rank 0's watchdog named the call, the rank and the wait:\n   " +
          (msg.group(0) if msg else out))
    check(rc != 0, "hang: the job failed (status %d)" % rc)
    check(dt < HANG_S, "hang: it ended within %d s (%.1f s), not after rank 1's 60 s" % (HANG_S, dt))


if __name__ == "__main__":
    main()
