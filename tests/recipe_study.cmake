# tests/recipe_study.cmake - benchmarks/recipe_study.sh: --dry-run lists the
# one-factor-at-a-time variants, and one tiny variant (scaled down by --set)
# runs on a held-out split with the test split's files absent and gives its row
# in the markdown table (tests/recipe_study_check.py). Skipped when
# Fashion-MNIST is not installed.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: recipe_study.sh lists its variants and tabulates a held-out run"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/recipe_study_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_SOURCE_DIR}/benchmarks/recipe_study.sh
                          ${CMAKE_BINARY_DIR}/test_tmp/recipe_study)
  set_tests_properties("script: recipe_study.sh lists its variants and tabulates a held-out run"
                       PROPERTIES TIMEOUT 300)
endif()
