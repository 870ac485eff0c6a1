# tests/scripts/python_test.cmake - scripted tests that need a Python
# interpreter (and some of its modules) are always registered, and skip with a
# reason when either is missing, never pass silently and never disappear.
#
# Included by tests/*.cmake: defines
#   simclr_python_test(<test name> MODULES <m>... SCRIPT <file.py> [ARGS <arg>...])
# which registers a ctest entry that runs this file in script mode. The
# interpreter is the cache variable SIMCLR_TEST_PYTHON (default
# /usr/bin/python3, Debian's, which has NumPy and PyTorch); point it at a
# missing path to see the skip. At test time the script mode checks that the
# interpreter exists and imports every module, printing
# "SKIPPED: <reason>" otherwise (ctest: SKIP_REGULAR_EXPRESSION), and
# then runs the script, failing on a nonzero exit. A script may itself print
# "SKIPPED: <reason>" and exit 0 (e.g. a missing dataset).
if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -DPYTHON=... -DMODULES=a,b -P python_test.cmake -- script.py args...
  set(command)
  set(after_dashes OFF)
  math(EXPR last "${CMAKE_ARGC} - 1")
  foreach(i RANGE ${last})
    if(after_dashes)
      list(APPEND command "${CMAKE_ARGV${i}}")
    elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
      set(after_dashes ON)
    endif()
  endforeach()
  if(NOT EXISTS "${PYTHON}" OR IS_DIRECTORY "${PYTHON}")
    message("SKIPPED: no Python interpreter at ${PYTHON} (configure with -DSIMCLR_TEST_PYTHON=<python3 with ${MODULES}>)")
    return()
  endif()
  string(REPLACE "," ";" modules "${MODULES}")
  foreach(m IN LISTS modules)
    execute_process(COMMAND "${PYTHON}" -c "import ${m}" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT rc EQUAL 0)
      message("SKIPPED: ${PYTHON} cannot import ${m} (Debian: apt-get install python3-${m})")
      return()
    endif()
  endforeach()
  execute_process(COMMAND "${PYTHON}" ${command} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN command " " shown)
    message(FATAL_ERROR "${PYTHON} ${shown}: exit status ${rc}")
  endif()
  return()
endif()

include_guard(GLOBAL)
set(SIMCLR_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python interpreter of the scripted tests (they skip with a reason when it or its modules are missing)")

function(simclr_python_test name)
  cmake_parse_arguments(PARSE_ARGV 1 T "" "SCRIPT" "MODULES;ARGS")
  string(REPLACE ";" "," modules "${T_MODULES}")
  add_test(NAME "${name}"
           COMMAND ${CMAKE_COMMAND} -DPYTHON=${SIMCLR_TEST_PYTHON} -DMODULES=${modules}
                   -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE} -- ${T_SCRIPT} ${T_ARGS})
  set_tests_properties("${name}" PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:")
endfunction()
