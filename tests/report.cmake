# tests/report.cmake - `simclr report` on a made-up run directory: the plots
# and report.md are written and hold the run's numbers; a bad directory and a
# missing matplotlib are clear errors (tests/report_check.py). Skipped, with
# the reason, where Debian's python3-matplotlib is not installed.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: simclr report writes labelled plots and report.md, and names a missing matplotlib"
                     MODULES matplotlib
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/report_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/report)
endif()
