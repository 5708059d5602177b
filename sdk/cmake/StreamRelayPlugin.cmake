# SPDX-License-Identifier: Apache-2.0
# streamrelay_add_plugin(NAME SOURCES...): a plugin shared library NAME.so
# (no "lib" prefix) that exports only its entry symbol.
function(streamrelay_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE StreamRelay::sdk)
  set_target_properties(${name} PROPERTIES PREFIX "" CXX_VISIBILITY_PRESET hidden C_VISIBILITY_PRESET hidden
                                           VISIBILITY_INLINES_HIDDEN ON)
endfunction()
