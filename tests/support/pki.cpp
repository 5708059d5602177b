// SPDX-License-Identifier: Apache-2.0
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
  // Like server, from the authority nobody trusts (a certificate swapped in by a reload).
  makeLeaf("other-server", "other-ca", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  // An RSA key pair for RS256 JWTs: jwt-rsa.key (private), jwt-rsa.pub.
  run({"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("jwt-rsa.key")});
  run({"pkey", "-in", path("jwt-rsa.key"), "-pubout", "-out", path("jwt-rsa.pub")});
  // Valid for localhost and 127.0.0.1, as a server or a client, but only in 2020.
  makeExpiredLeaf("expired", "ca", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
}

// `openssl ca` is the CLI of OpenSSL 3.0 that takes a start and end date.
void Pki::makeExpiredLeaf(const std::string& name, const std::string& ca, const std::string& cn,
                          const std::string& ext) {
  run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
       "-keyout", path(name + ".key"), "-out", path(name + ".csr")});
  const std::string caDir = dir + "/ca-db";
  const std::string config = writeTempFile(
      "ca.cnf", "[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = " + caDir +
                    "/index.txt\nnew_certs_dir = " + caDir + "\nserial = " + caDir +
                    "/serial\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n");
  run({"x509", "-in", path(ca + ".pem"), "-noout"});  // the CA exists
  ChildProcess mk("/bin/sh", {"-c", "mkdir -p '" + caDir + "' && : > '" + caDir + "/index.txt' && echo 01 > '" + caDir +
                                        "/serial'"});
  REQUIRE(mk.waitForExit(10s) == 0);
  const std::string extFile = writeTempFile(name + ".ext", ext);
  run({"ca", "-batch", "-config", config, "-cert", path(ca + ".pem"), "-keyfile", path(ca + ".key"), "-in",
       path(name + ".csr"), "-out", path(name + ".pem"), "-startdate", "20200101000000Z", "-enddate",
       "20200102000000Z", "-extfile", extFile, "-notext"});
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
