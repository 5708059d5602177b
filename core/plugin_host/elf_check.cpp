// SPDX-License-Identifier: Apache-2.0
#include "elf_check.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>  // ElfW: the native word size's types
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace streamrelay {

namespace {

// Does [offset, offset + size) lie inside a file of `fileSize` bytes?
bool inside(std::uint64_t offset, std::uint64_t size, std::uint64_t fileSize) {
  return offset <= fileSize && size <= fileSize - offset;
}

class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd() const { return fd_; }
  // Reads exactly `size` bytes at `offset`.
  bool read(std::uint64_t offset, void* out, std::size_t size) const {
    auto* p = static_cast<char*>(out);
    while (size > 0) {
      ssize_t n = ::pread(fd_, p, size, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      offset += static_cast<std::uint64_t>(n);
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

 private:
  int fd_;
};

}  // namespace

std::string checkElfSharedObject(const std::string& path) {
  File file(path);
  struct stat st {};
  if (file.fd() < 0 || ::fstat(file.fd(), &st) != 0) return std::string("cannot open: ") + std::strerror(errno);
  const auto fileSize = static_cast<std::uint64_t>(st.st_size);
  ElfW(Ehdr) header{};
  if (fileSize < sizeof header || !file.read(0, &header, sizeof header))
    return "not an ELF file (" + std::to_string(fileSize) + " bytes: too short for an ELF header)";
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return "not an ELF file";
  if (header.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32))
    return "an ELF file for another word size";
  if (header.e_type != ET_DYN) return "an ELF file but not a shared object";

  if (header.e_phentsize != sizeof(ElfW(Phdr)) || header.e_phnum == 0)
    return "an ELF file without usable program headers";
  const std::uint64_t phBytes = std::uint64_t{header.e_phnum} * sizeof(ElfW(Phdr));
  if (!inside(header.e_phoff, phBytes, fileSize))
    return "truncated: program headers end past the file's " + std::to_string(fileSize) + " bytes";
  std::vector<ElfW(Phdr)> segments(header.e_phnum);
  if (!file.read(header.e_phoff, segments.data(), phBytes)) return "truncated: cannot read the program headers";
  for (std::size_t i = 0; i < segments.size(); ++i)
    if (!inside(segments[i].p_offset, segments[i].p_filesz, fileSize))
      return "truncated: segment " + std::to_string(i) + " ends at byte " +
             std::to_string(segments[i].p_offset + segments[i].p_filesz) + ", the file has " +
             std::to_string(fileSize);

  if (header.e_shoff == 0 || header.e_shnum == 0) return "";  // sections are optional (stripped objects)
  if (header.e_shentsize != sizeof(ElfW(Shdr))) return "an ELF file with malformed section headers";
  const std::uint64_t shBytes = std::uint64_t{header.e_shnum} * sizeof(ElfW(Shdr));
  if (!inside(header.e_shoff, shBytes, fileSize))
    return "truncated: section headers end past the file's " + std::to_string(fileSize) + " bytes";
  std::vector<ElfW(Shdr)> sections(header.e_shnum);
  if (!file.read(header.e_shoff, sections.data(), shBytes)) return "truncated: cannot read the section headers";
  for (std::size_t i = 0; i < sections.size(); ++i)
    if (sections[i].sh_type != SHT_NOBITS && !inside(sections[i].sh_offset, sections[i].sh_size, fileSize))
      return "truncated: section " + std::to_string(i) + " ends past the file's " + std::to_string(fileSize) + " bytes";
  return "";
}

}  // namespace streamrelay
