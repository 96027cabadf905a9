# The integration-test harness library (harness.c: child processes, checks,
# the control interface; dmacopy_suite.c). include() it from any directory
# that links it: the tests and the benchmarks, which start their processes
# with it_spawn. The target is defined once, by whichever includes it first
# (the benchmarks are built also without the tests).
if(TARGET tlpb_it_harness)
  return()
endif()
find_package(Threads REQUIRED)
add_library(tlpb_it_harness STATIC
  ${CMAKE_CURRENT_LIST_DIR}/harness.c
  ${CMAKE_CURRENT_LIST_DIR}/dmacopy_suite.c
  ${CMAKE_CURRENT_LIST_DIR}/raw_peer.c)
target_link_libraries(tlpb_it_harness PUBLIC tlpbhost tlpbwire PkgConfig::ZLIB Threads::Threads)
target_include_directories(tlpb_it_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
