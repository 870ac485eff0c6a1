# tests/export_numpy.cmake - export_encoder and `simclr embed` against an
# independent NumPy float64 ResNet forward that parses the .safetensors file
# itself (tests/export_numpy_check.py; trains two tiny models for 3 steps
# first, a few seconds). Included by tests/CMakeLists.txt. Skips with a reason
# without the interpreter or NumPy (tests/scripts/python_test.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
if(TARGET simclr AND TARGET export_encoder)
  simclr_python_test("script: export safetensors + simclr embed vs NumPy float64 ResNet" MODULES numpy
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/export_numpy_check.py
                     ARGS $<TARGET_FILE:simclr> $<TARGET_FILE:export_encoder> ${CMAKE_BINARY_DIR}/test_tmp/export_numpy)
  set_tests_properties("script: export safetensors + simclr embed vs NumPy float64 ResNet"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300)
endif()
