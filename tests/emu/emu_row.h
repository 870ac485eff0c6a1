// tests/emu/emu_row.h - the emulated CUDA table's kernel set K<T> for the
// kernel-level emulator tests (the ops' own tests go through dispatch).
#pragma once
#include <catch2/catch.hpp>

#include "kernels/registry.h"

namespace simclr::test {

// The row (K<T>::op, T) of emu::kernel_table(); a test failure when it has none.
template <template <class> class K, class T>
const K<T>& emu_row() {
  for (const KernelRow& r : emu::kernel_table())
    if (r.op == K<T>::op && r.dtype == dtype_of<T>::value) return *static_cast<const K<T>*>(r.kernels);
  FAIL("no emulated row for " << op_name(K<T>::op) << " " << dtype_name(dtype_of<T>::value));
  throw 0;
}

}  // namespace simclr::test
