// SPDX-License-Identifier: Apache-2.0
#include "bus.hpp"

#include <algorithm>
#include <cassert>

#include "subject.hpp"

namespace streamrelay {

namespace {
// Non-blocking queues first: a `block` queue must not delay the others.
bool isBlocking(const SubscriptionQueue& queue);

void insertOrdered(std::vector<QueuePtr>& list, QueuePtr queue) {
  auto blocking = [](const QueuePtr& q) { return isBlocking(*q); };
  if (blocking(queue)) list.push_back(std::move(queue));
  else list.insert(std::find_if(list.begin(), list.end(), blocking), std::move(queue));
}

void eraseQueue(std::vector<QueuePtr>& list, const SubscriptionQueue* queue) {
  list.erase(std::remove_if(list.begin(), list.end(), [&](const QueuePtr& q) { return q.get() == queue; }),
             list.end());
}

bool isBlocking(const SubscriptionQueue& queue) { return queue.limits().onFull == OverflowPolicy::Block; }

}  // namespace

std::vector<FrameSpan> selectedFrames(const std::vector<FrameSpan>& spans, const std::vector<std::string>& select) {
  std::vector<FrameSpan> out;
  for (const FrameSpan& span : spans) {
    for (std::uint32_t i = span.first; i < span.end; ++i) {
      if (!span.batch->hasKey(i)) continue;
      const std::string_view key = span.batch->key(i);
      if (std::none_of(select.begin(), select.end(), [&](const std::string& p) { return subject::matches(p, key); }))
        continue;
      if (!out.empty() && out.back().batch == span.batch && out.back().end == i) ++out.back().end;
      else out.push_back(FrameSpan{span.batch, i, i + 1});
    }
  }
  return out;
}

Bus::Bus(StreamId stream, Histogram* receivedSizes, const BusOptions& options, std::unique_ptr<KeyExtractor> keys)
    : streams_{std::move(stream)},
      current_(&streams_.back()),
      nextSeq_(options.firstSeq),
      seqGate_(options.seqGate),
      receivedSizes_(receivedSizes),
      replayLimits_(options.replay),
      ring_(options.replay.enabled()      ? std::make_unique<ReplayRing>(options.replay, options.handOverBytes)
            : options.handOverBytes != 0  ? std::make_unique<ReplayRing>(
                                               ReplayLimits{0, options.handOverBytes, std::chrono::milliseconds(0)})
                                          : nullptr),
      lastValues_(options.lastValueKeys > 0 ? std::make_unique<LastValues>(options.lastValueKeys) : nullptr),
      pushedSeq_(options.firstSeq - 1),
      providerPosition_(options.providerPosition),
      providerPositionSeq_(options.providerPosition.empty() ? 0 : options.firstSeq - 1),
      keyExtractor_(std::move(keys)),
      keyCounts_(keyExtractor_ ? std::make_unique<KeyCounts>() : nullptr) {}

void Bus::subscribe(QueuePtr queue, std::size_t replayFrames, const std::vector<std::string>& select) {
  std::lock_guard<std::mutex> lock(mutex_);
  attach(std::move(queue), std::nullopt, replayFrames, select, false, 0);
}

std::optional<std::vector<FrameSpan>> Bus::continuationLocked(std::uint64_t afterSeq) const {
  if (afterSeq == pushedSeq_) return std::vector<FrameSpan>{};
  if (afterSeq < pushedSeq_ && ring_) return ring_->after(afterSeq);
  return std::nullopt;
}

void Bus::addLocked(QueuePtr queue, const std::vector<FrameSpan>& replay, const std::vector<std::string>& select) {
  if (!replay.empty()) queue->preload(replay);
  if (!select.empty()) {
    auto selector = std::make_shared<Selector>();
    selector->queue = std::move(queue);
    selector->patterns = select;
    for (const std::string& pattern : select) index_.add(pattern, selector.get());
    selectors_.push_back(std::move(selector));
    return;
  }
  auto next = std::make_shared<QueueList>(*queues_);
  insertOrdered(*next, std::move(queue));
  queues_ = std::move(next);
}

bool Bus::continueAfter(const QueuePtr& queue, std::uint64_t afterSeq, const std::vector<std::string>& select) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Its subscriber gone (the queue closed before its listener unsubscribes, which takes this lock): nothing to do.
  if (queue->closed()) return true;
  std::optional<std::vector<FrameSpan>> spans = continuationLocked(afterSeq);
  if (!spans) return false;
  addLocked(queue, select.empty() ? *spans : selectedFrames(*spans, select), select);
  return true;
}

Bus::Start Bus::subscribeAfter(QueuePtr queue, std::optional<std::uint64_t> afterSeq, std::size_t replayFrames,
                               const std::vector<std::string>& select, bool snapshot, std::uint64_t afterEpoch) {
  // Older than the ring: from the log, on a thread of its own, which then
  // hands the queue over to the ring and the live frames (continueAfter).
  // A logged stream keeps its epoch (only a mirror's changes), so the
  // queue needs no place among the epoch-bound ones.
  const std::uint64_t epoch = current_.load()->epoch;
  if (afterSeq && backfill_ && *afterSeq < lastSeq() && (afterEpoch == 0 || afterEpoch == epoch)) {
    if (continueAfter(queue, *afterSeq, select)) return {true, *afterSeq + 1, epoch};
    if (backfill_->holdsFrom(*afterSeq + 1)) {
      backfill_->replay(std::move(queue), *afterSeq + 1, select);
      return {true, *afterSeq + 1, epoch};
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  epochBound_.erase(std::remove_if(epochBound_.begin(), epochBound_.end(), [](const auto& q) { return q.expired(); }),
                    epochBound_.end());
  epochBound_.push_back(queue);
  return attach(std::move(queue), afterSeq, replayFrames, select, snapshot, afterEpoch);
}

Bus::Start Bus::attach(QueuePtr queue, std::optional<std::uint64_t> afterSeq, std::size_t replayFrames,
                       const std::vector<std::string>& select, bool snapshot, std::uint64_t afterEpoch) {
  const std::uint64_t nextLive = pushedSeq_ + 1;
  Start start;
  start.epoch = current_.load(std::memory_order_relaxed)->epoch;
  if (afterEpoch != 0 && afterEpoch != start.epoch) afterSeq.reset();
  if (afterSeq && afterEpoch != 0 && mirrored_ && *afterSeq > pushedSeq_) {
    // It comes from a relay further along the same upstream: its next frame is on its way here.
    ahead_.push_back(Ahead{std::move(queue), *afterSeq, select});
    return {true, *afterSeq + 1, start.epoch};
  }
  std::vector<FrameSpan> replay;
  if (afterSeq) {
    if (auto spans = continuationLocked(*afterSeq)) {
      start.recovered = true;
      replay = std::move(*spans);
    }
  }
  if (!start.recovered && ring_ && replayLimits_.enabled() && replayFrames > 0) replay = ring_->newest(replayFrames);
  start.firstSeq = replay.empty() ? nextLive : replay.front().batch->seq(replay.front().first);
  if (!select.empty()) replay = selectedFrames(replay, select);
  if (snapshot && lastValues_ && !start.recovered) {  // a resume that continues has missed nothing
    // What the replay gives is not repeated: the snapshot ends before it.
    std::vector<FrameSpan> spans = lastValues_->snapshot(select, start.firstSeq);
    if (!spans.empty()) start.firstSeq = spans.front().batch->seq(spans.front().first);
    spans.insert(spans.end(), replay.begin(), replay.end());
    replay = std::move(spans);
  }
  addLocked(std::move(queue), replay, select);
  return start;
}

Bus::Start Bus::subscribeSince(QueuePtr queue, std::int64_t unixNs, const std::vector<std::string>& select) {
  if (backfill_) {
    const Backfill::TimeStart from = backfill_->searchStartFor(unixNs);
    if (from.seq <= lastSeq()) {
      backfill_->replay(std::move(queue), from.seq, select, unixNs);
      return {from.covered, from.seq, current_.load()->epoch};
    }
    const Start live = subscribeAfter(std::move(queue), std::nullopt, 0, select);
    return {from.covered, live.firstSeq, live.epoch};
  }
  std::lock_guard<std::mutex> lock(mutex_);
  epochBound_.push_back(queue);  // its seqs are this epoch's, as a resume's
  Start start{false, pushedSeq_ + 1, current_.load()->epoch};
  std::vector<FrameSpan> replay;
  if (ring_) {
    const ReplayRing::TimeStart since = ring_->receivedSince(unixNs);
    if (since.seq) {
      // A gap (a mirror's) between that frame and the live ones: from the live ones, not recovered.
      if (auto spans = ring_->after(*since.seq - 1)) {
        replay = std::move(*spans);
        start.firstSeq = *since.seq;
        start.recovered = since.covered;
      }
    } else {
      start.recovered = since.covered;
    }
  }
  addLocked(std::move(queue), select.empty() ? replay : selectedFrames(replay, select), select);
  return start;
}

std::string Bus::providerPosition() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return providerPosition_;
}

std::string Bus::providerPositionAfter(std::uint64_t seq) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return seq != 0 && providerPositionSeq_ == seq ? providerPosition_ : std::string();
}

void Bus::noteProviderPosition(std::string position, std::uint64_t seq) {
  publisher_.assertOwned();
  std::lock_guard<std::mutex> lock(mutex_);
  providerPosition_ = std::move(position);
  providerPositionSeq_ = seq;
}

void Bus::unsubscribe(const SubscriptionQueue* queue) {
  std::lock_guard<std::mutex> lock(mutex_);
  epochBound_.erase(std::remove_if(epochBound_.begin(), epochBound_.end(),
                                   [&](const auto& q) { return q.expired() || q.lock().get() == queue; }),
                    epochBound_.end());
  ahead_.erase(std::remove_if(ahead_.begin(), ahead_.end(), [&](const Ahead& a) { return a.queue.get() == queue; }),
               ahead_.end());
  removeSelector(queue);
  auto next = std::make_shared<QueueList>(*queues_);
  eraseQueue(*next, queue);
  queues_ = std::move(next);
}

void Bus::replace(const SubscriptionQueue* old, QueuePtr replacement) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = std::make_shared<QueueList>(*queues_);
  eraseQueue(*next, old);
  insertOrdered(*next, std::move(replacement));
  queues_ = std::move(next);
}

std::vector<QueuePtr> Bus::detachEpochBound() {
  std::vector<QueuePtr> bound;
  for (const auto& weak : epochBound_)
    if (QueuePtr queue = weak.lock()) bound.push_back(std::move(queue));
  epochBound_.clear();
  if (bound.empty()) return bound;
  auto next = std::make_shared<QueueList>(*queues_);
  for (const QueuePtr& queue : bound) {
    removeSelector(queue.get());
    eraseQueue(*next, queue.get());
  }
  queues_ = std::move(next);
  return bound;
}

void Bus::removeSelector(const SubscriptionQueue* queue) {
  auto it = std::find_if(selectors_.begin(), selectors_.end(), [&](const auto& s) { return s->queue.get() == queue; });
  if (it == selectors_.end()) return;
  for (const std::string& pattern : (*it)->patterns) index_.remove(pattern, it->get());
  selectors_.erase(it);
}

std::vector<QueuePtr> Bus::queues() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<QueuePtr> all = *queues_;
  for (const auto& selector : selectors_) all.push_back(selector->queue);
  return all;
}

Bus::LastValueCounts Bus::lastValueCounts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!lastValues_) return {};
  return {lastValues_->keys(), lastValues_->maxKeys(), lastValues_->evictions()};
}

Bus::SelectionCounts Bus::selectionCounts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {selectors_.size(), index_.size()};
}

std::pair<std::size_t, std::size_t> Bus::replayHeld() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ring_ ? std::make_pair(ring_->frames(), ring_->bytes()) : std::make_pair(std::size_t{0}, std::size_t{0});
}

std::shared_ptr<const Bus::QueueList> Bus::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queues_;
}

void Bus::publish(std::unique_ptr<FrameBatch> batch) {
  publisher_.assertOwned();
  const std::size_t count = batch->frameCount();
  if (count == 0) return;
  if (seqGate_) seqGate_->awaitReserved(nextSeq_.load(std::memory_order_relaxed) + count - 1);
  batch->assignFirstSeq(nextSeq_.fetch_add(count, std::memory_order_relaxed), current_.load());
  dispatch(std::move(batch), nullptr, false);
}

void Bus::publishAt(std::unique_ptr<FrameBatch> batch, std::uint64_t epoch, std::uint64_t firstSeq) {
  publisher_.assertOwned();
  const std::size_t count = batch->frameCount();
  if (count == 0) return;
  const StreamId* id = current_.load();
  const StreamId* renewed = nullptr;
  if (epoch != id->epoch) {
    streams_.push_back(StreamId{id->name, epoch});
    renewed = id = &streams_.back();
  } else if (const std::uint64_t next = nextSeq_.load(std::memory_order_relaxed); firstSeq > next) {
    gaps_.fetch_add(1, std::memory_order_relaxed);
    skipped_.fetch_add(firstSeq - next, std::memory_order_relaxed);
  }
  assert(renewed || firstSeq >= nextSeq_.load(std::memory_order_relaxed));
  nextSeq_.store(firstSeq + count, std::memory_order_relaxed);
  batch->assignFirstSeq(firstSeq, id);
  dispatch(std::move(batch), renewed, true);
}

void Bus::dispatch(std::unique_ptr<FrameBatch> batch, const StreamId* epoch, bool mirrored) {
  const std::size_t count = batch->frameCount();
  if (keyExtractor_) {
    keyExtractor_->keyBatch(*batch);
    keyCounts_->count(*batch);
  }
  frames_.fetch_add(count, std::memory_order_relaxed);
  bytes_.fetch_add(batch->totalWireBytes() - count * kWireHeaderBytes, std::memory_order_relaxed);
  if (receivedSizes_)
    receivedSizes_->recordEach(count, [&](std::size_t i) { return static_cast<double>(batch->payload(i).size()); });
  FrameBatchPtr shared(std::move(batch));
  // Held for the loop: a subscribe() meanwhile replaces the list, not this copy.
  std::shared_ptr<const QueueList> queues;
  std::vector<QueuePtr> closing;  // subscribers of the old epoch
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (epoch) {  // the seqs of the old epoch mean nothing in the new one
      current_.store(epoch, std::memory_order_release);
      if (ring_) ring_->clear(evicted_);
      closing = detachEpochBound();  // the resumes ahead among them
      ahead_.clear();
      providerPositionSeq_ = 0;  // a position is after a frame of the old epoch
    }
    if (mirrored != mirrored_) {
      mirrored_ = mirrored;
      // A standby took over: its own seqs from here are not those the resumes ahead were given.
      for (Ahead& ahead : ahead_) closing.push_back(std::move(ahead.queue));
      ahead_.clear();
    }
    if (ring_) ring_->append(shared, evicted_);
    if (lastValues_) lastValues_->update(shared);
    pushedSeq_ = shared->seq(count - 1);
    if (!shared->providerPosition().empty()) {
      providerPosition_ = shared->providerPosition();
      providerPositionSeq_ = pushedSeq_;
    }
    queues = queues_;
    if (!index_.empty() && shared->keyed()) matchSelectors(*shared);
    if (!ahead_.empty()) admitAhead(shared);  // after taking `queues`: they get this batch as a preload
  }
  evicted_.clear();
  for (const QueuePtr& queue : closing) queue->close(CloseReason::EpochChanged);
  if (touched_.empty()) {  // no subscriber selects this batch's frames: as before selection
    for (const QueuePtr& queue : *queues) queue->push(shared);
    return;
  }
  // Queues that never block first (the list keeps them in front), then the rest.
  auto blocking = std::find_if(queues->begin(), queues->end(), [](const QueuePtr& q) { return isBlocking(*q); });
  for (auto it = queues->begin(); it != blocking; ++it) (*it)->push(shared);
  pushSelected(shared, false);
  for (auto it = blocking; it != queues->end(); ++it) (*it)->push(shared);
  pushSelected(shared, true);
  touched_.clear();
}

void Bus::admitAhead(const FrameBatchPtr& batch) {
  const auto reached =
      std::partition(ahead_.begin(), ahead_.end(), [&](const Ahead& ahead) { return ahead.afterSeq > pushedSeq_; });
  const std::uint64_t first = batch->seq(0);
  const auto count = static_cast<std::uint32_t>(batch->frameCount());
  for (auto it = reached; it != ahead_.end(); ++it) {
    // From the frame after the one asked for; from the batch's first if a
    // gap (the mirror's, counted) jumped over it.
    const auto from = static_cast<std::uint32_t>(it->afterSeq >= first ? it->afterSeq + 1 - first : 0);
    std::vector<FrameSpan> spans;
    if (from < count) spans.push_back(FrameSpan{batch, from, count});
    addLocked(std::move(it->queue), it->select.empty() ? spans : selectedFrames(spans, it->select), it->select);
  }
  ahead_.erase(reached, ahead_.end());
}

void Bus::matchSelectors(const FrameBatch& batch) {
  const std::uint64_t dispatch = ++dispatches_;
  const auto count = static_cast<std::uint32_t>(batch.frameCount());
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!batch.hasKey(i)) continue;
    index_.forEachMatch(batch.key(i), [&](Selector* selector) {
      std::vector<FrameRange>& ranges = selector->ranges;
      if (selector->dispatch != dispatch) {
        selector->dispatch = dispatch;
        ranges.clear();
        touched_.push_back(selector->shared_from_this());
      } else if (ranges.back().end > i) {
        return;  // frame i is already its (another of its patterns matched)
      }
      if (!ranges.empty() && ranges.back().end == i) ++ranges.back().end;
      else ranges.push_back(FrameRange{i, i + 1});
    });
  }
}

void Bus::pushSelected(const FrameBatchPtr& batch, bool blocking) {
  for (const auto& selector : touched_)
    if (isBlocking(*selector->queue) == blocking) selector->queue->push(batch, selector->ranges);
}

}  // namespace streamrelay
