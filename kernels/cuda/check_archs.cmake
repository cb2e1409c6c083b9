# ctest cuda_build: LIB's fat binaries hold an ELF cubin for each of ARCHS
# (cuobjdump --list-elf prints one "...sm_NN..." line per cubin).
if(NOT CUOBJDUMP)
  message(FATAL_ERROR "no cuobjdump: cannot inspect ${LIB}")
endif()
execute_process(COMMAND ${CUOBJDUMP} --list-elf ${LIB}
  OUTPUT_VARIABLE out ERROR_VARIABLE errout RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cuobjdump failed (${rc}): ${errout}")
endif()
foreach(a ${ARCHS})
  string(REGEX REPLACE "-.*" "" a ${a})
  if(NOT out MATCHES "sm_${a}")
    message(FATAL_ERROR "${LIB} has no sm_${a} cubin:\n${out}")
  endif()
  message(STATUS "sm_${a}: present")
endforeach()
