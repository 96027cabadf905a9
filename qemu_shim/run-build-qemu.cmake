# cmake -DSCRIPT=build-qemu.sh -DLINK=PATH [-DARGS=a;b] -P run-build-qemu.cmake
#
# Runs build-qemu.sh (progress on stderr, the binary's path as the last line
# of stdout) and points LINK at that binary. The link is replaced only when
# its target changes, so dependants see a new timestamp only for a new QEMU.
execute_process(
  COMMAND ${SCRIPT} -q ${ARGS}
  OUTPUT_VARIABLE out
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "build-qemu.sh failed (exit ${rc})")
endif()
string(STRIP "${out}" out)
string(REGEX REPLACE "^.*\n" "" binary "${out}")
if(NOT binary MATCHES "^/" OR NOT EXISTS "${binary}")
  message(FATAL_ERROR "build-qemu.sh printed no binary path (got '${binary}')")
endif()

set(current "")
if(IS_SYMLINK "${LINK}")
  file(READ_SYMLINK "${LINK}" current)
endif()
if(NOT current STREQUAL binary)
  file(REMOVE "${LINK}")
  file(CREATE_LINK "${binary}" "${LINK}" SYMBOLIC)
  message(STATUS "qemu-system-x86_64 -> ${binary}")
endif()
