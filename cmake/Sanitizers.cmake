# SPDX-License-Identifier: MIT
# FP_SANITIZE=address   -> ASan + UBSan (with LeakSanitizer)
# FP_SANITIZE=thread    -> TSan
# Set per build directory: cmake -B build-asan -DFP_SANITIZE=address
set(FP_SANITIZE "" CACHE STRING "Sanitizer build: '', address (ASan+UBSan) or thread (TSan)")
if(FP_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(FP_SANITIZED=1)
elseif(FP_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  add_compile_definitions(FP_SANITIZED=1)
elseif(NOT FP_SANITIZE STREQUAL "")
  message(FATAL_ERROR "FP_SANITIZE must be '', 'address' or 'thread', not '${FP_SANITIZE}'")
endif()
