// SPDX-License-Identifier: Apache-2.0
#pragma once
// The one rule by which the relay hides secrets it prints (--check-config, the
// lines plugins log) where no KeySpec says which values are secret: a
// plugin's `config:` (YAML text the host cannot otherwise read until plugins
// declare their keys through the ABI) and any text that may hold a URL.
//
// - A key is secret when one of its words (split at `_`, `-`, `.`) is
//   password, passwd, pass, pwd, secret, token, credentials, creds, auth,
//   authorization, apikey or bearer, or it has api_key, access_key or
//   private_key in it; unless its last word is file, path, dir or claim (a
//   path to a secret, or a claim's name, is not the secret). Its value prints
//   as "(set)" (every scalar under it, for a list or mapping).
// - In any text, the userinfo of a URL (scheme://USER:PASSWORD@host) prints
//   as "(set)", and so does the value of a query parameter whose name is a
//   secret key (?token=..., &api_key=...).
//
// The built-in plugins declare which of their keys are secret
// (plugins/common/config_reader.hpp); a unit test checks that this rule masks
// every one of them. Thread safe (pure functions).

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>

namespace streamrelay {

inline constexpr const char* kSecretShown = "(set)";

bool isSecretKey(std::string_view key);

// `text` with the userinfo and secret query values of every URL in it replaced.
std::string maskUrlSecrets(std::string_view text);

// A copy of a plugin's config (its YAML text) with the rule applied to every
// key and every string in it; a text that is not YAML comes back as "(set)".
YAML::Node maskedPluginConfig(const std::string& yaml);

}  // namespace streamrelay
