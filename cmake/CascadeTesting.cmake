# cx_add_unit_test(NAME SOURCES... LIBS...): a Check suite labelled `unit`.
function(cx_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CHECK)
  add_test(NAME ${name} COMMAND ${name})
  # CK_FORK=no keeps the suite in one process so ASan/valgrind see it whole.
  set_tests_properties(${name} PROPERTIES LABELS unit
                       ENVIRONMENT "CK_FORK=no" TIMEOUT 300)
endfunction()
