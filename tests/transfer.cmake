# tests/transfer.cmake - transfer to another labelled dataset: `simclr eval
# --data` and `simclr finetune --data` on a generated image folder
# (tests/transfer_check.py; pure Python, skips without Fashion-MNIST).
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr)
  simclr_python_test("script: simclr eval and finetune transfer to a generated image-folder dataset"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/transfer_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/transfer)
  set_tests_properties("script: simclr eval and finetune transfer to a generated image-folder dataset"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 900)
endif()
