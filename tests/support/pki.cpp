#include "pki.hpp"

#include <catch2/catch.hpp>

#include "child_process.hpp"

using namespace std::chrono_literals;

namespace streamrelay::test {

namespace {

void run(const std::vector<std::string>& args) {
  ChildProcess p("/usr/bin/openssl", args);
  INFO(p.output());
  REQUIRE(p.waitForExit(60s) == 0);
}

}  // namespace

Pki::Pki() {
  dir = writeTempFile("pki-marker", "");
  dir = dir.substr(0, dir.rfind('/'));
  makeCa("ca");
  makeCa("other-ca");
  // The provider: valid for localhost and 127.0.0.1.
  makeLeaf("server", "ca", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  // The relay's client certificate, for mutual TLS.
  makeLeaf("client", "ca", "relay", "extendedKeyUsage=clientAuth\n");
}

void Pki::makeCa(const std::string& name) {
  run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
       "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
       "keyUsage=critical,keyCertSign,cRLSign", "-keyout", path(name + ".key"), "-out", path(name + ".pem")});
}

void Pki::makeLeaf(const std::string& name, const std::string& ca, const std::string& cn, const std::string& ext) {
  run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
       "-keyout", path(name + ".key"), "-out", path(name + ".csr")});
  const std::string extFile = writeTempFile(name + ".ext", ext);
  run({"x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey", path(ca + ".key"),
       "-CAcreateserial", "-days", "2", "-extfile", extFile, "-out", path(name + ".pem")});
}

const Pki& pki() {
  static const Pki instance;
  return instance;
}

}  // namespace streamrelay::test
