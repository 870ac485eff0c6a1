# tests/packed.cmake - issue 15's packed format through the simclr binary
# (tests/packed_check.py: pack, info, --verify, refuse-overwrite, corruption,
# a killed pack; pure Python, a few seconds). Included by tests/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: packed format (issue 15): pack, info, verify, overwrite, corruption, killed pack"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/packed_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/packed)
  set_tests_properties("script: packed format (issue 15): pack, info, verify, overwrite, corruption, killed pack"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 120)
endif()
