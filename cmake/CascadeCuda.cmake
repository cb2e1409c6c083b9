# CUDA support: CASCADE_CUDA = AUTO (default), ON or OFF.
#
# AUTO enables the CUDA language when an nvcc is found; ON fails the
# configure without one; OFF builds the CPU generator only. The compiler is
# looked for, in order: CMAKE_CUDA_COMPILER if given, the project-local
# toolkit that scripts/deps-cuda.sh installs from PyPI wheels (.deps/cuda),
# CUDAToolkit_ROOT / CUDA_PATH / /usr/local/cuda, then PATH. Sets
# CASCADE_CUDA_ENABLED and, when enabled, the CUDA::cudart_static and
# CUDA::cublas targets (find_package(CUDAToolkit)). Kernels are built for
# sm_80 (A100) and sm_90 (H100/H200) unless CMAKE_CUDA_ARCHITECTURES says
# otherwise.
set(CASCADE_CUDA AUTO CACHE STRING "Build the CUDA kernels: AUTO, ON or OFF")
set_property(CACHE CASCADE_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${CASCADE_CUDA}" cx_cuda_mode)
# An old cache may hold the former BOOL option's values.
if(cx_cuda_mode STREQUAL "TRUE" OR cx_cuda_mode STREQUAL "1")
  set(cx_cuda_mode ON)
elseif(cx_cuda_mode STREQUAL "FALSE" OR cx_cuda_mode STREQUAL "0")
  set(cx_cuda_mode OFF)
endif()
set(CASCADE_CUDA_ENABLED OFF)

if(NOT cx_cuda_mode STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER)
    set(cx_nvcc_hints ${PROJECT_SOURCE_DIR}/.deps/cuda/bin)
    foreach(r ${CUDAToolkit_ROOT} $ENV{CUDAToolkit_ROOT} $ENV{CUDA_PATH}
              /usr/local/cuda)
      list(APPEND cx_nvcc_hints ${r}/bin)
    endforeach()
    find_program(CASCADE_NVCC nvcc HINTS ${cx_nvcc_hints} NO_CACHE)
    if(CASCADE_NVCC)
      # The wheel tree is a complete toolkit root once deps-cuda.sh has
      # added the unversioned library links.
      get_filename_component(cx_nvcc_real ${CASCADE_NVCC} REALPATH)
      get_filename_component(cx_cuda_root ${cx_nvcc_real} DIRECTORY)
      get_filename_component(cx_cuda_root ${cx_cuda_root} DIRECTORY)
      set(CMAKE_CUDA_COMPILER ${cx_nvcc_real} CACHE FILEPATH "nvcc")
      if(NOT CUDAToolkit_ROOT)
        set(CUDAToolkit_ROOT ${cx_cuda_root} CACHE PATH "CUDA toolkit root")
      endif()
    endif()
  endif()
  if(CMAKE_CUDA_COMPILER)
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90 CACHE STRING "CUDA architectures")
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND)
      set(CASCADE_CUDA_ENABLED ON)
      find_program(CASCADE_CUOBJDUMP cuobjdump
                   HINTS ${CUDAToolkit_BIN_DIR} NO_CACHE)
      message(STATUS "CUDA: nvcc ${CMAKE_CUDA_COMPILER_VERSION} at "
              "${CMAKE_CUDA_COMPILER}, architectures "
              "${CMAKE_CUDA_ARCHITECTURES}")
    endif()
  endif()
  if(NOT CASCADE_CUDA_ENABLED)
    if(cx_cuda_mode STREQUAL "ON")
      message(FATAL_ERROR "CASCADE_CUDA=ON but no CUDA toolkit was found: "
              "run scripts/deps-cuda.sh (CUDA from PyPI wheels into .deps) "
              "or set CMAKE_CUDA_COMPILER")
    endif()
    message(STATUS "CUDA: no nvcc found, building the CPU generator only "
            "(scripts/deps-cuda.sh installs one)")
  endif()
endif()

# cx_cuda_target_options(TARGET): the project's warning and sanitizer flags
# are C flags (add_compile_options in CascadeWarnings); nvcc gets the host
# compiler's share through -Xcompiler and its own -Werror, and never the
# sanitizers (CUDA's runtime maps device memory where ASan keeps its shadow;
# the host objects of the CUDA library stay uninstrumented).
function(cx_cuda_target_options tgt)
  get_target_property(opts ${tgt} COMPILE_OPTIONS)
  set(out)
  foreach(o ${opts})
    list(APPEND out "$<$<COMPILE_LANGUAGE:C>:${o}>")
  endforeach()
  set_target_properties(${tgt} PROPERTIES COMPILE_OPTIONS "${out}")
  target_compile_options(${tgt} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings
    -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter --fmad=false>)
endfunction()
