# tests/layering.cmake - the include-direction rule (tests/scripts/check_layers.cmake).
add_test(NAME "script: layering (includes run engine -> kernels -> ops -> losses/models/optim/data -> train -> tools)"
         COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DSELFTEST=ON -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/check_layers.cmake)
