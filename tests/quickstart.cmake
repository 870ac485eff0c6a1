# tests/quickstart.cmake - `simclr quickstart` scaled down by --set: the
# calibration's output and results.json, and the printed repeat command giving
# the same numbers to the last digit (tests/quickstart_check.py). Skipped when
# Fashion-MNIST is not installed.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: simclr quickstart names its epoch choice and the command that repeats it exactly"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/quickstart_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/quickstart)
  set_tests_properties("script: simclr quickstart names its epoch choice and the command that repeats it exactly"
                       PROPERTIES TIMEOUT 900)
endif()
