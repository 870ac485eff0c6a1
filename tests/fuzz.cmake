# tests/fuzz.cmake - a short fixed-count run of every libFuzzer target
# (tests/fuzz/, ASan + UBSan) through benchmarks/fuzz.sh, in a build
# directory of its own under this one (clang; the main build keeps its
# compiler). Registered when clang++ can link -fsanitize=fuzzer; otherwise a
# test that reports itself skipped with the reason. Included by
# tests/CMakeLists.txt. SIMCLR_FUZZ_RUNS sets the executions per target.
set(SIMCLR_FUZZ_RUNS 1000 CACHE STRING "executions per fuzz target in the ctest run (benchmarks/fuzz.sh)")
find_program(SIMCLR_CLANGXX NAMES clang++ clang++-16 clang++-15 clang++-14)
set(_fuzz_ok OFF)
if(SIMCLR_CLANGXX)
  file(WRITE ${CMAKE_BINARY_DIR}/fuzz_probe.cpp
       "extern \"C\" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n")
  execute_process(COMMAND ${SIMCLR_CLANGXX} -fsanitize=fuzzer,address ${CMAKE_BINARY_DIR}/fuzz_probe.cpp
                          -o ${CMAKE_BINARY_DIR}/fuzz_probe
                  RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
  if(_rc EQUAL 0)
    set(_fuzz_ok ON)
  endif()
endif()
set(_name "script: fuzz targets (config, IDX, CIFAR, images, npy, safetensors, checkpoint, packed), ${SIMCLR_FUZZ_RUNS} runs each under ASan+UBSan")
# The sanitizer build (tests/fuzz/sanitize.sh): a subset of the unit and
# emulator tests under ASan + UBSan, in the same build directory (it reuses
# the fuzz targets' instrumented reader objects), so the two never run at once.
set(_san "script: sanitizers: ASan+UBSan build of a unit-test subset (readers, checkpoint, files, tensors, autograd, op table)")
if(_fuzz_ok)
  add_test(NAME "${_name}" COMMAND ${CMAKE_COMMAND} -E env BUILD_DIR=${CMAKE_BINARY_DIR}/fuzz CXX=${SIMCLR_CLANGXX} JOBS=2
                                   ${CMAKE_SOURCE_DIR}/benchmarks/fuzz.sh ${SIMCLR_FUZZ_RUNS})
  set_tests_properties("${_name}" PROPERTIES TIMEOUT 900 SKIP_REGULAR_EXPRESSION "SKIPPED:" RESOURCE_LOCK simclr_fuzz_build)
  add_test(NAME "${_san}" COMMAND ${CMAKE_COMMAND} -E env BUILD_DIR=${CMAKE_BINARY_DIR}/fuzz CXX=${SIMCLR_CLANGXX} JOBS=2
                                  ${CMAKE_SOURCE_DIR}/tests/fuzz/sanitize.sh)
  set_tests_properties("${_san}" PROPERTIES TIMEOUT 900 SKIP_REGULAR_EXPRESSION "SKIPPED:" RESOURCE_LOCK simclr_fuzz_build)
else()
  add_test(NAME "${_name}" COMMAND ${CMAKE_COMMAND} -E echo "SKIPPED: no clang++ that links -fsanitize=fuzzer (Debian: apt-get install clang)")
  set_tests_properties("${_name}" PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:")
  add_test(NAME "${_san}" COMMAND ${CMAKE_COMMAND} -E echo "SKIPPED: no clang++ with the sanitizer runtimes (Debian: apt-get install clang)")
  set_tests_properties("${_san}" PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:")
endif()
