// SPDX-License-Identifier: Apache-2.0
#include "subscriber_admission.hpp"

#include <algorithm>

#include "subject.hpp"

namespace streamrelay {

namespace {

AdmissionResult refusal(CloseReason reason, std::string error) {
  AdmissionResult result;
  result.refused = reason;
  result.error = std::move(error);
  return result;
}

// Patterns a hello may give: each is matched against every replayed frame
// and last value under the stream's lock, so their number is bounded.
constexpr std::size_t kMaxSelectPatterns = 64;

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

SubscriberAdmission::SubscriberAdmission(std::vector<Bus*> inputs, std::size_t replayFrames,
                                         std::vector<std::string> select)
    : inputs_(std::move(inputs)), replayFrames_(replayFrames), select_(std::move(select)) {}

AdmissionResult SubscriberAdmission::admit(const protocol::Hello* hello, const QueuePtr& queue,
                                           const Authenticator& auth) const {
  if (!hello) {
    AdmissionResult result;
    result.select = select_;
    queue->setSelection(select_);
    for (Bus* bus : inputs_) bus->subscribe(queue, replayFrames_, select_);
    return result;
  }
  // Runs on a writer thread, where an exception would end the relay: a
  // hello that makes anything here throw is refused, as a bad hello.
  try {
    return admitHello(*hello, queue, auth);
  } catch (const std::exception& e) {
    AdmissionResult result = refusal(CloseReason::BadHello, "the hello could not be admitted");
    result.described = protocol::printable(e.what());
    return result;
  }
}

bool SubscriberAdmission::choose(const protocol::Hello& hello, const AuthVerdict& verdict,
                                 std::vector<std::size_t>& chosen, AdmissionResult& refused) const {
  auto allowed = [&](const std::string& name) {
    return !verdict.inputs || std::find(verdict.inputs->begin(), verdict.inputs->end(), name) != verdict.inputs->end();
  };
  if (hello.inputs.empty()) {
    for (std::size_t i = 0; i < inputs_.size(); ++i)
      if (allowed(inputs_[i]->stream().name)) chosen.push_back(i);
    if (chosen.empty()) {
      refused = refusal(CloseReason::AuthFailed, "the token allows none of this listener's streams");
      return false;
    }
  }
  for (const std::string& name : hello.inputs) {
    auto it = std::find_if(inputs_.begin(), inputs_.end(), [&](const Bus* b) { return b->stream().name == name; });
    if (it == inputs_.end()) {
      std::string served;
      for (const Bus* b : inputs_) served += (served.empty() ? "" : ", ") + b->stream().name;
      refused = refusal(CloseReason::BadHello,
                        "unknown input '" + protocol::printable(name) + "' (this listener serves: " + served + ")");
      return false;
    }
    if (!allowed(name)) {
      refused = refusal(CloseReason::AuthFailed, "the token does not allow input '" + protocol::printable(name) + "'");
      return false;
    }
    const std::size_t index = static_cast<std::size_t>(it - inputs_.begin());
    if (std::find(chosen.begin(), chosen.end(), index) == chosen.end()) chosen.push_back(index);
  }
  if (hello.resume && hello.resume->afterSeq && chosen.size() != 1) {
    refused = refusal(CloseReason::BadHello,
                      "resume.after_seq: one number needs exactly one input; give {\"STREAM\": SEQ, ...}");
    return false;
  }
  if (hello.resume && hello.resume->fromSeq && chosen.size() != 1) {
    refused = refusal(CloseReason::BadHello, "resume.from_seq: a seq belongs to one stream; ask for exactly one input");
    return false;
  }
  return true;
}

bool SubscriberAdmission::chooseSelection(const protocol::Hello& hello, const AuthVerdict& verdict,
                                          std::vector<std::string>& select, AdmissionResult& refused) const {
  for (const std::string& pattern : hello.select)
    if (std::string why = subject::checkPattern(pattern); !why.empty()) {
      refused = refusal(CloseReason::BadHello, why);
      return false;
    }
  if (verdict.select && verdict.select->empty()) {
    refused = refusal(CloseReason::AuthFailed, "the token allows no key pattern (its select claim is empty)");
    return false;
  }
  if (hello.select.size() > kMaxSelectPatterns) {
    refused = refusal(CloseReason::BadHello, "select: " + std::to_string(hello.select.size()) +
                                                 " patterns, more than " + std::to_string(kMaxSelectPatterns));
    return false;
  }
  select = hello.select;
  // Without a select of its own, a client gets what its token allows, else what the listener does.
  if (select.empty()) select = verdict.select ? *verdict.select : select_;
  if (select.empty()) return true;
  for (const std::string& pattern : select) {
    if (!select_.empty() && !subject::containedIn(pattern, select_)) {
      refused = refusal(CloseReason::BadHello, "select pattern '" + protocol::printable(pattern) +
                                                   "' is outside what this listener serves (" + joined(select_) + ")");
      return false;
    }
    if (verdict.select && !subject::containedIn(pattern, *verdict.select)) {
      refused = refusal(CloseReason::AuthFailed,
                        "the token does not allow select pattern '" + protocol::printable(pattern) + "'");
      return false;
    }
  }
  std::sort(select.begin(), select.end());
  select.erase(std::unique(select.begin(), select.end()), select.end());
  return true;
}

AdmissionResult SubscriberAdmission::admitHello(const protocol::Hello& hello, const QueuePtr& queue,
                                                const Authenticator& auth) const {
  Authenticator::Verdict verdict;
  try {
    verdict = auth.check(hello.token);  // which throws nothing it knows of
  } catch (const std::exception&) {
    verdict.refusal = "the token could not be checked";
  }
  if (!verdict.admitted) return refusal(CloseReason::AuthFailed, "not authorized: " + verdict.refusal);
  AdmissionResult result;
  std::vector<std::size_t> chosen;
  if (!choose(hello, verdict, chosen, result)) return result;
  if (!chooseSelection(hello, verdict, result.select, result)) return result;
  if (hello.snapshot)
    for (std::size_t i : chosen)
      if (inputs_[i]->lastValueCounts().maxKeys == 0)
        return refusal(CloseReason::BadHello, "snapshot: stream '" + inputs_[i]->stream().name +
                                                  "' keeps no last values (set streams." + inputs_[i]->stream().name +
                                                  ".last_value.max_keys)");

  result.maxRatePerKeyMs = hello.maxRatePerKeyMs;
  queue->setSelection(result.select);
  for (std::size_t i : chosen) {
    Bus& bus = *inputs_[i];
    const std::string& name = bus.stream().name;
    // The position the hello gives for this stream, if any: only a
    // position in the stream's epoch can be continued.
    std::optional<std::uint64_t> position;
    if (hello.resume && hello.resume->afterSeq) position = hello.resume->afterSeq;
    if (hello.resume && hello.resume->byStream.count(name)) position = hello.resume->byStream.at(name);
    bool sameEpoch = hello.resume && hello.resume->epochFor(name) == bus.stream().epoch;
    std::uint64_t afterEpoch = sameEpoch ? hello.resume->epochFor(name) : 0;
    if (hello.resume && hello.resume->fromSeq) {  // a replay in the stream's epoch now
      position = *hello.resume->fromSeq - 1;
      sameEpoch = true;
      afterEpoch = 0;
    }
    const bool fromTime = hello.resume && hello.resume->fromUnixNs;
    if (fromTime) position = 0;  // for the answer's `recovered`
    const Bus::Start start = fromTime ? bus.subscribeSince(queue, *hello.resume->fromUnixNs, result.select)
                                      : bus.subscribeAfter(queue, sameEpoch ? position : std::nullopt, replayFrames_,
                                                           result.select, hello.snapshot, afterEpoch);
    protocol::StreamStart started{name, static_cast<std::uint16_t>(i), std::nullopt, start.firstSeq, start.epoch};
    if (position) started.recovered = start.recovered;
    result.starts.push_back(started);
    result.described += (result.described.empty() ? "" : ", ") + name + " from seq " +
                        std::to_string(start.firstSeq) +
                        (position ? (start.recovered ? " (resumed)" : " (not recovered)") : "");
  }
  result.epoch = protocol::sharedEpoch(result.starts);
  return result;
}

}  // namespace streamrelay
