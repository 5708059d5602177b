// SPDX-License-Identifier: Apache-2.0
#pragma once
// checkElfSharedObject: refuses a file that dlopen() could map past its end.
//
// dlopen() maps every loadable segment of a shared object straight from the
// file; a segment that lies beyond the end of a truncated file (a plugin still
// being written in place by scp, curl -o or rsync --inplace) is mapped anyway,
// and the first touch of it kills the process with SIGBUS. So before any
// dlopen() the host reads the ELF headers itself and checks that every program
// header and every section with file contents lies inside the file.

#include <string>

namespace streamrelay {

// Empty if `path` is a complete ELF shared object for this machine's word
// size; otherwise one line saying what is wrong ("truncated: ...").
std::string checkElfSharedObject(const std::string& path);

}  // namespace streamrelay
