# tests/reliability.cmake - issue 16's reproductions through the programs
# (tests/reliability_check.py: resume past bad checkpoints and rotation,
# crafted checkpoint headers, safe outputs, the run-directory lock, checked
# writes, the epoch loss after a mid-epoch resume, SIGHUP and leftover
# temporaries, runs too large for the memory, a failing kNN monitor after
# its checkpoint, the notes and errors of items 10 and 11; pure Python,
# about 70 s). Included by tests/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr AND TARGET export_encoder)
  set(_bench -)
  if(TARGET bench_ntxent)
    set(_bench $<TARGET_FILE:bench_ntxent>)
  endif()
  simclr_python_test("script: reliability (issue 16): resume, rotation, crafted headers, outputs, lock, signals"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/reliability_check.py
                     ARGS $<TARGET_FILE:simclr> $<TARGET_FILE:export_encoder> ${_bench}
                          ${CMAKE_BINARY_DIR}/test_tmp/reliability)
  set_tests_properties("script: reliability (issue 16): resume, rotation, crafted headers, outputs, lock, signals"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 240)
endif()
