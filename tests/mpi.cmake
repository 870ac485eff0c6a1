# tests/mpi.cmake - multi-process tests (issue 14), through mpirun with real
# processes: the communicator, global BN and gathered negatives
# (tests/mpi/mpi_check.py over tests/mpi/mpi_checks.cpp), and `simclr train`
# at -np 2 against one process (tests/mpi/train_equiv_check.py). Always
# registered; each prints SKIPPED (counted as skipped by ctest) when mpirun
# or the MPI plugin is missing. Included by tests/CMakeLists.txt.
include(${CMAKE_CURRENT_LIST_DIR}/scripts/python_test.cmake)
add_executable(mpi_checks ${CMAKE_CURRENT_SOURCE_DIR}/mpi/mpi_checks.cpp)
target_link_libraries(mpi_checks PRIVATE simclr_core)
target_compile_options(mpi_checks PRIVATE ${SIMCLR_WARNINGS})
if(MPI_C_FOUND AND SIMCLR_MPIEXEC)
  set(_mpirun ${SIMCLR_MPIEXEC})
else()
  set(_mpirun none)  # the scripts print SKIPPED
endif()
simclr_python_test("mpi: communicator collectives, global BN and gathered negatives at -np 2 and 3; a dead or hung rank ends the job"
                   SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/mpi/mpi_check.py
                   ARGS "${_mpirun}" $<TARGET_FILE:mpi_checks>)
set_tests_properties("mpi: communicator collectives, global BN and gathered negatives at -np 2 and 3; a dead or hung rank ends the job"
                     PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
if(TARGET simclr)
  simclr_python_test("mpi: simclr train at -np 2 (B per rank) equals one process (2B): losses and weights; SIGTERM to one rank and resume"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/mpi/train_equiv_check.py
                     ARGS "${_mpirun}" $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/mpi_train)
  set_tests_properties("mpi: simclr train at -np 2 (B per rank) equals one process (2B): losses and weights; SIGTERM to one rank and resume"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
endif()

# The job scripts parse (bash -n); their environment-to-rank logic is engine/launch_env.cpp's,
# unit-tested with each launcher's variables (tests/test_distributed.cpp "[launch_env]").
find_program(SIMCLR_BASH bash)
foreach(script simclr.sbatch simclr.pbs)
  if(SIMCLR_BASH)
    add_test(NAME "script: tools/hpc/${script} passes bash -n" COMMAND ${SIMCLR_BASH} -n ${CMAKE_SOURCE_DIR}/tools/hpc/${script})
  else()
    add_test(NAME "script: tools/hpc/${script} passes bash -n" COMMAND ${CMAKE_COMMAND} -E echo "SKIPPED: no bash")
    set_tests_properties("script: tools/hpc/${script} passes bash -n" PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:")
  endif()
endforeach()
if(TARGET simclr AND SIMCLR_BASH)
  simclr_python_test("script: tools/hpc/simclr.sbatch forwards SIGUSR1, requeues after the checkpoint, and the requeued job resumes"
                     SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/mpi/hpc_script_check.py
                     ARGS $<TARGET_FILE:simclr> ${CMAKE_BINARY_DIR}/test_tmp/hpc_script)
  set_tests_properties("script: tools/hpc/simclr.sbatch forwards SIGUSR1, requeues after the checkpoint, and the requeued job resumes"
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 200)
endif()
