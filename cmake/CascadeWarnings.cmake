# Warnings are errors everywhere; sanitizers when CASCADE_SANITIZE is on.
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
                    -Wformat=2 -Wno-format-nonliteral)
if(CASCADE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "" FORCE)
endif()
