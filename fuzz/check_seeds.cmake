cmake_minimum_required(VERSION 3.25)
# ctest fuzz.seed_corpus_current: regenerate the seeds into OUT and compare
# them with the checked-in CORPUS, file by file (names and contents).
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${GEN} ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${GEN} failed: ${rc}")
endif()
file(GLOB_RECURSE fresh RELATIVE ${OUT} ${OUT}/*)
file(GLOB_RECURSE kept RELATIVE ${CORPUS} ${CORPUS}/*)
list(SORT fresh)
list(SORT kept)
if(NOT fresh STREQUAL kept)
  message(FATAL_ERROR "seed files differ: generated [${fresh}], checked in [${kept}]; "
                      "regenerate with: fuzz_seed_gen fuzz/corpus")
endif()
foreach(f ${fresh})
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT}/${f} ${CORPUS}/${f}
                  RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "seed ${f} differs from the generator's output; "
                        "regenerate with: fuzz_seed_gen fuzz/corpus")
  endif()
endforeach()
