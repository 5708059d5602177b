// SPDX-License-Identifier: Apache-2.0
#include "jwt_claims.hpp"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "subject.hpp"

namespace streamrelay {

namespace {

using Poco::Dynamic::Var;

// The claim's value, or none if the token has no such claim (a claim that
// is JSON null is there, and empty).
std::optional<Var> claimOf(const Poco::JSON::Object& claims, const std::string& name) {
  if (!claims.has(name)) return std::nullopt;
  return claims.get(name);
}

bool isText(const Var& value) { return value.type() == typeid(std::string); }

// A NumericDate (RFC 7519 section 2): a JSON number of seconds since the
// Unix epoch, integer or not. Anything else: none.
std::optional<double> numericDate(const Var& value) {
  if (value.isEmpty() || value.isBoolean() || value.isString() || !value.isNumeric()) return std::nullopt;
  const double seconds = value.convert<double>();
  if (!std::isfinite(seconds)) return std::nullopt;
  return seconds;
}

// A list of strings, or none if `value` is anything else (a list holding
// anything but strings included).
std::optional<std::vector<std::string>> stringList(const Var& value) {
  if (value.type() != typeid(Poco::JSON::Array::Ptr)) return std::nullopt;
  const Poco::JSON::Array::Ptr list = value.extract<Poco::JSON::Array::Ptr>();
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(list->size());
  for (const Var& item : *list) {
    if (!isText(item)) return std::nullopt;
    out.push_back(item.extract<std::string>());
  }
  return out;
}

AuthVerdict refuse(std::string why) {
  AuthVerdict verdict;
  verdict.refusal = std::move(why);
  return verdict;
}

// Reads the NumericDate claim `name` into `date` (left empty if the token
// has no such claim); false if it is there but not a number.
bool readDate(const Poco::JSON::Object& claims, const char* name, std::optional<double>& date) {
  const std::optional<Var> value = claimOf(claims, name);
  if (!value) return true;
  date = numericDate(*value);
  return date.has_value();
}

// Empty if the token's dates admit it at `now`, else the refusal.
std::string checkDates(const Poco::JSON::Object& claims, double leeway, double now) {
  std::optional<double> exp, nbf, iat;
  using Date = std::pair<const char*, std::optional<double>*>;
  for (const Date& date : {Date{"exp", &exp}, Date{"nbf", &nbf}, Date{"iat", &iat}})
    if (!readDate(claims, date.first, *date.second))
      return std::string("JWT claim '") + date.first + "' is not a number of seconds since 1970";
  if (exp && now >= *exp + leeway) return "JWT expired";
  if (nbf && now + leeway < *nbf) return "JWT not valid yet (nbf is in the future)";
  if (iat && *iat > now + leeway) return "JWT issued in the future (iat)";
  return "";
}

// Empty if the token's aud names `audience`, else the refusal.
std::string checkAudience(const Poco::JSON::Object& claims, const std::string& audience) {
  const std::optional<Var> value = claimOf(claims, "aud");
  if (!value) return "JWT audience is not '" + audience + "'";
  std::vector<std::string> audiences;
  if (isText(*value)) {
    audiences.push_back(value->extract<std::string>());
  } else if (std::optional<std::vector<std::string>> list = stringList(*value)) {
    audiences = std::move(*list);
  } else {
    return "JWT claim 'aud' is not a string or a list of strings";
  }
  if (std::find(audiences.begin(), audiences.end(), audience) == audiences.end())
    return "JWT audience is not '" + audience + "'";
  return "";
}

}  // namespace

AuthVerdict readJwtClaims(const Poco::JSON::Object& claims, const JwtRules& rules, double nowUnixSeconds) {
  if (std::string why = checkDates(claims, rules.leewaySeconds, nowUnixSeconds); !why.empty()) return refuse(why);
  if (!rules.audience.empty())
    if (std::string why = checkAudience(claims, rules.audience); !why.empty()) return refuse(why);
  AuthVerdict verdict;
  if (const std::optional<Var> value = claimOf(claims, rules.inputsClaim)) {
    verdict.inputs = stringList(*value);
    if (!verdict.inputs) return refuse("JWT claim '" + rules.inputsClaim + "' is not a list of stream names");
  }
  if (const std::optional<Var> value = claimOf(claims, rules.selectClaim)) {
    verdict.select = stringList(*value);
    if (!verdict.select) return refuse("JWT claim '" + rules.selectClaim + "' is not a list of key patterns");
    for (const std::string& pattern : *verdict.select)
      if (std::string why = subject::checkPattern(pattern); !why.empty())
        return refuse("JWT claim '" + rules.selectClaim + "': " + why);
  }
  verdict.admitted = true;
  return verdict;
}

}  // namespace streamrelay
