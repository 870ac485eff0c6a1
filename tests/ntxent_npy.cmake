# tests/ntxent_npy.cmake - `bench_ntxent --z in.npy --grad-out g.npy` (CPU path)
# against an independent NumPy float64 NT-Xent: loss and gradient, plus clear
# errors for bad files. Included by tests/CMakeLists.txt.
if(TARGET bench_ntxent AND EXISTS /usr/bin/python3)
  add_test(NAME "script: ntxent bench_ntxent --z round trip vs NumPy"
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/ntxent_numpy_check.py $<TARGET_FILE:bench_ntxent>
                   ${CMAKE_BINARY_DIR}/test_tmp/ntxent_npy)
  set_tests_properties("script: ntxent bench_ntxent --z round trip vs NumPy" PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
endif()
