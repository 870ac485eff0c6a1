// tools/cli/process_env.h - process settings a main() makes before anything else.
#pragma once

namespace simclr {

// Two settings that libgomp and OpenBLAS read only when they load, so this
// sets them and re-executes the program (/proc/self/exe, same argv) once.
// Call first thing in main(). SIMCLR_KEEP_ENV=1 turns it off; variables the
// user set are respected.
//  - OMP_WAIT_POLICY=PASSIVE (unless set): idle OpenMP threads sleep instead
//    of spinning. Every op is a parallel region; with spinning threads a
//    2-core machine that runs anything else (the loader's workers, another
//    job) loses most of its time: measured 263 -> 614 views/s for the
//    quickstart step with 2 threads on a busy 2-core machine, the same speed
//    when idle.
//  - OPENBLAS_CORETYPE=SkylakeX when OpenBLAS runs its Haswell/Zen (AVX2)
//    kernels - by its own choice or because OPENBLAS_CORETYPE=Haswell/Zen is
//    set, as OpenBLAS 0.3.21 does not know AMD Zen 4/5 - on a CPU with
//    AVX-512 F/BW/VL/DQ: about 2x faster GEMMs there (the whole test suite
//    passes with them). Any other OPENBLAS_CORETYPE is respected.
// `simclr version` shows the BLAS core in use.
void tune_process_environment(char** argv);

}  // namespace simclr
