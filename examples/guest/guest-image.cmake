# The guest image as a CMake target: `guest-image` runs build-initramfs.sh and
# produces ${TLPB_GUEST_DIR}/vmlinuz and initramfs.cpio.gz (Debian's kernel
# plus an initramfs with busybox, dmacopy.ko, mmio_bench_edu.ko and
# dmacopy-test). It re-runs when any of the image's inputs change.
#
# include() it from any directory that needs the image; the target is
# defined once, the variables below are set for every includer.
set(TLPB_GUEST_DIR ${CMAKE_BINARY_DIR}/guest)
set(TLPB_GUEST_KERNEL ${TLPB_GUEST_DIR}/vmlinuz)
set(TLPB_GUEST_INITRD ${TLPB_GUEST_DIR}/initramfs.cpio.gz)
if(TARGET guest-image)
  return()
endif()

set(_guest_src ${PROJECT_SOURCE_DIR}/examples/guest)
set(_driver_src ${PROJECT_SOURCE_DIR}/examples/dmacopy/linux)
add_custom_command(
  OUTPUT ${TLPB_GUEST_KERNEL} ${TLPB_GUEST_INITRD}
  COMMAND ${_guest_src}/build-initramfs.sh --out ${TLPB_GUEST_DIR}
  DEPENDS
    ${_guest_src}/build-initramfs.sh ${_guest_src}/init ${_guest_src}/dmacopy-rebind
    ${_guest_src}/dmacopy-test.c ${_guest_src}/mmio_bench_edu.c ${_guest_src}/Kbuild
    ${_guest_src}/Makefile
    ${_driver_src}/dmacopy.c ${_driver_src}/dmacopy_ioctl.h ${_driver_src}/Kbuild
    ${_driver_src}/../dmacopy_regs.h
  COMMENT "Guest image (examples/guest/build-initramfs.sh)"
  VERBATIM USES_TERMINAL)
add_custom_target(guest-image ALL DEPENDS ${TLPB_GUEST_KERNEL} ${TLPB_GUEST_INITRD})
