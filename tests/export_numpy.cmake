# tests/export_numpy.cmake - export_encoder and `simclr embed` against an
# independent NumPy float64 ResNet forward that parses the .safetensors file
# itself (tests/export_numpy_check.py; trains two tiny models for 3 steps
# first, a few seconds). Included by tests/CMakeLists.txt.
if(TARGET simclr AND TARGET export_encoder AND EXISTS /usr/bin/python3)
  add_test(NAME "script: export safetensors + simclr embed vs NumPy float64 ResNet"
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/export_numpy_check.py $<TARGET_FILE:simclr>
                   $<TARGET_FILE:export_encoder> ${CMAKE_BINARY_DIR}/test_tmp/export_numpy)
  set_tests_properties("script: export safetensors + simclr embed vs NumPy float64 ResNet"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300)
endif()
