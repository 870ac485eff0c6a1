# tests/ntxent_npy.cmake - `bench_ntxent --z in.npy --grad-out g.npy` (CPU path)
# against an independent NumPy float64 NT-Xent: loss and gradient, plus clear
# errors for bad files. Included by tests/CMakeLists.txt. Skips with a reason
# without the interpreter or NumPy (tests/scripts/python_test.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET bench_ntxent)
  simclr_python_test("script: ntxent bench_ntxent --z round trip vs NumPy" MODULES numpy
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/ntxent_numpy_check.py
                     ARGS $<TARGET_FILE:bench_ntxent> ${CMAKE_BINARY_DIR}/test_tmp/ntxent_npy)
  set_tests_properties("script: ntxent bench_ntxent --z round trip vs NumPy" PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
endif()
