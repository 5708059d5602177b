// SPDX-License-Identifier: Apache-2.0
// The registry of source types, built from source_types.def.
#include "source_type.hpp"

namespace streamrelay {

#define SOURCE_TYPE(NAME) SourceType NAME##_source_type();
#include "source_types.def"
#undef SOURCE_TYPE

const std::vector<SourceType>& sourceTypes() {
  static const std::vector<SourceType> types{
#define SOURCE_TYPE(NAME) NAME##_source_type(),
#include "source_types.def"
#undef SOURCE_TYPE
  };
  return types;
}

}  // namespace streamrelay
