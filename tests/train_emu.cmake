# tests/train_emu.cmake - `simclr train --set train.device=emu` (the CUDA
# backend's code under the kernel emulator) prints the losses train.device=cpu
# prints for the same small config (tests/train_emu_check.py; pure Python).
# Included by tests/CMakeLists.txt; registered only in a build with the
# emulator (without it the device does not exist, and test_op_table's
# completeness check has nothing to compare).
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr AND TARGET simclr_emu)
  simclr_python_test("script: simclr train on the emulated device prints the CPU's losses"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/train_emu_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/train_emu)
  set_tests_properties("script: simclr train on the emulated device prints the CPU's losses"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 600)
endif()
