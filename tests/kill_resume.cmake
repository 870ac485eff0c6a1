# tests/kill_resume.cmake - `simclr train --resume` as a separate process at 2
# threads, killed with SIGKILL at six moments (before the first checkpoint,
# mid-epoch, while a checkpoint is written, right after one completed), ends
# bit for bit where an uninterrupted run ends, with a clean metrics.jsonl
# (tests/kill_resume_check.py; pure Python, about 5 s). Included by
# tests/CMakeLists.txt. Skips with a reason without the interpreter.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: simclr train killed (SIGKILL) at 6 moments and resumed = uninterrupted run, bit for bit"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/kill_resume_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/kill_resume)
  set_tests_properties("script: simclr train killed (SIGKILL) at 6 moments and resumed = uninterrupted run, bit for bit"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 120)
endif()
