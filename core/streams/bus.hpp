// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bus: hands every published FrameBatch to every subscribed queue.
//
// The subscriber list is copy-on-write: publish() takes a snapshot under a short
// lock and pushes outside it, so subscribing never waits for a slow push.
// Queues with the `block` policy are pushed last, so a consumer that blocks the
// publisher delays only itself and what is published after it.
//
// A subscriber may select frames by key (subject.hpp): it is then not on the
// list but in an index from patterns to subscriptions (subject_index.hpp),
// and a frame goes only to the subscriptions its key matches: what a batch
// costs grows with the subscribers it goes to, not with all of them. The
// publisher matches a batch under the lock (so that subscribing meanwhile
// waits for at most one batch's matching) and pushes outside it; a selecting
// queue gets references to its frames of the shared batch, never copies.
//
// A stream may keep a ReplayRing of its newest frames. A batch enters the
// ring and the publisher takes its list of queues in one step, under the lock
// subscribe() takes: a subscriber that asks for a replay therefore gets every
// frame exactly once, either from the ring or live.
//
// A mirror (a `streamrelay` source with mirror: true) publishes with
// publishAt(): its batches keep the seqs and epoch its upstream gave them.
// A jump forward is a gap: the ring never replays across it, so a resume
// from before it is not `recovered`. Another epoch starts the stream anew
// (the ring is emptied; every batch keeps the StreamId it was published in)
// and closes the subscriptions made by subscribeAfter() (remote subscribers,
// whose frames name no epoch: they reconnect and resume by (epoch, seq)).

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "frame_batch.hpp"
#include "backfill.hpp"
#include "histogram.hpp"
#include "last_values.hpp"
#include "key_counts.hpp"
#include "key_extractor.hpp"
#include "replay_ring.hpp"
#include "seq_gate.hpp"
#include "subject_index.hpp"
#include "subscription_queue.hpp"
#include "thread_owner.hpp"

namespace streamrelay {

// What a stream keeps beside its queues (streams.NAME in the config).
struct BusOptions {
  BusOptions(ReplayLimits replay = {}) : replay(replay) {}  // NOLINT: a ring alone is options enough
  ReplayLimits replay;            // the ring of its newest frames (none if no limit is set)
  std::size_t lastValueKeys = 0;  // the newest frame of up to this many keys (0: none kept)
  std::uint64_t firstSeq = 1;     // the seq of its first frame: a logged stream goes on where its log ends
  // Where the stream's source resumes its provider (an SSE last event id)
  // until a batch brings a newer one: a logged stream's, kept with its log.
  std::string providerPosition;
  SeqGate* seqGate = nullptr;     // asked before a seq is handed out (a logged stream's reservation); outlives the bus
  // What the ring keeps at least, in wire bytes, to hand a subscriber over
  // from the stream's log to the live frames (Backfill): what the log has
  // not written yet must be in it. Without `replay`, a ring of only this,
  // never replayed to new subscribers. 0: none.
  std::size_t handOverBytes = 0;
};

// The frames of `spans` whose key matches one of `select` (checked patterns), as spans.
std::vector<FrameSpan> selectedFrames(const std::vector<FrameSpan>& spans, const std::vector<std::string>& select);

class Bus {
 public:
  // The bus of one stream. `receivedSizes` (shared by the sources' streams)
  // records the size of every frame published; null for a processor's stream,
  // whose frames were not received.
  // `keys`: how its frames' keys are found (streams.NAME.key; null: the
  // stream has no rule).
  Bus(StreamId stream, Histogram* receivedSizes, const BusOptions& options = {},
      std::unique_ptr<KeyExtractor> keys = nullptr);
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  // Thread safe. The queue receives every batch published from now on,
  // preceded by the newest `replayFrames` frames the ring holds (if any).
  // With `select` (patterns, already checked), only the frames whose key
  // matches one of them: replayed frames too.
  void subscribe(QueuePtr queue, std::size_t replayFrames = 0, const std::vector<std::string>& select = {});
  // Where a subscription starts: `firstSeq` is the seq of the first frame the
  // queue gets (from the ring or live); `recovered` says whether that is the
  // frame right after the one asked for.
  struct Start {
    bool recovered = false;
    std::uint64_t firstSeq = 0;
    std::uint64_t epoch = 0;
  };
  // Thread safe. A resume: the queue gets every frame after `afterSeq` if the
  // ring still holds the next one (or it is the next live one); otherwise it
  // is subscribed as subscribe(queue, replayFrames) would, and the answer says
  // where it starts. No `afterSeq` (another run's epoch): the latter.
  // A selecting subscriber's `recovered` is about the stream's seq: it misses
  // nothing it selects after `afterSeq`.
  // `snapshot`: first the newest frame of each selected key (flagged
  // snapshot) that the replay or resume does not give, then as above.
  // `afterEpoch` (0: not checked) is the epoch `afterSeq` was read in: checked
  // again under the lock, since a mirror's epoch may change meanwhile.
  // Start::epoch is the stream's epoch the subscription starts in.
  // With a backfill (the stream's log), a resume the ring cannot serve is
  // read from it when it holds the next frame: `recovered` then too.
  // A mirror's resume ahead of it (`afterEpoch` its epoch, `afterSeq` past
  // its newest frame: the subscriber came from a relay further along) waits
  // for that frame and goes on right after it: `recovered`, `firstSeq`
  // afterSeq + 1. Closed (CloseReason::EpochChanged, to resume again) if the
  // epoch changes or the stream stops mirroring (a standby that took the
  // lease numbers its own frames: the seqs it waits for would not be those it
  // was given) before then.
  Start subscribeAfter(QueuePtr queue, std::optional<std::uint64_t> afterSeq, std::size_t replayFrames,
                       const std::vector<std::string>& select = {}, bool snapshot = false,
                       std::uint64_t afterEpoch = 0);
  // Thread safe. A replay from the first frame received at or after
  // `unixNs` (the log's, else the ring's), then live; `recovered`: what is
  // held reaches back to that time.
  Start subscribeSince(QueuePtr queue, std::int64_t unixNs, const std::vector<std::string>& select = {});
  // Thread safe. Subscribes the queue to go on right after `afterSeq` (the
  // ring's frames, then live) if none is missing between; else does
  // nothing and returns false. A backfill's hand-over to the live frames.
  bool continueAfter(const QueuePtr& queue, std::uint64_t afterSeq, const std::vector<std::string>& select);
  // Set once, before anyone subscribes: where resumes older than the ring
  // are read from (it outlives the bus's subscribers).
  void setBackfill(Backfill* backfill) { backfill_ = backfill; }
  // Thread safe. After it returns, no further batch is pushed to the queue by a
  // publish() that starts later.
  void unsubscribe(const SubscriptionQueue* queue);

  // Thread safe. Swaps `old` for `replacement` in one step: every batch goes to
  // exactly one of them (a reloaded plugin neither misses nor repeats a frame).
  void replace(const SubscriptionQueue* old, QueuePtr replacement);
  // Thread safe. The queues subscribed now.
  std::vector<QueuePtr> queues() const;

  // Called only from the stream's publishing thread: numbers the frames, then
  // pushes the batch to every queue.
  void publish(std::unique_ptr<FrameBatch> batch);
  // Called only from the publishing thread, instead of publish(): a mirror's
  // batch, whose frames are numbered `firstSeq`.. in `epoch` by its upstream.
  // In the stream's epoch, `firstSeq` is at least lastSeq() + 1 (the caller
  // drops frames it has had); more is a gap, counted in gaps(). Another
  // epoch starts it anew from `firstSeq` (newEpochs() counts it).
  void publishAt(std::unique_ptr<FrameBatch> batch, std::uint64_t epoch, std::uint64_t firstSeq);
  // A stream has one publisher at a time: the thread that constructed the
  // bus until a thread claims it here, at its start (a source's thread, a
  // plugin instance's worker). A source restarted by a reload, or a plugin
  // instance's replacement, claims it once its predecessor has ended.
  // publish() asserts it is called from the publisher.
  void claimPublisher() { publisher_.claim(); }

  // Thread safe. Its name and epoch now (a mirror's epoch may change; a batch
  // keeps the one it was published in).
  const StreamId& stream() const { return *current_.load(std::memory_order_acquire); }
  // Jumps forward in seq publishAt() was given, and the frames they skipped.
  std::uint64_t gaps() const { return gaps_.load(std::memory_order_relaxed); }
  std::uint64_t framesSkipped() const { return skipped_.load(std::memory_order_relaxed); }
  // The seq of the newest frame published (0: none yet).
  std::uint64_t lastSeq() const { return nextSeq_.load(std::memory_order_relaxed) - 1; }
  // Thread safe. The provider position of the newest batch published that
  // had one (else BusOptions::providerPosition): where a source started on
  // this stream (at start, or by a reload) resumes its provider.
  std::string providerPosition() const;
  // The newest provider position if it is the one of the frame `seq` (the
  // stream's last, say) in the current epoch, else "": where a source that
  // takes over the stream (a leased source, docs/fleet.md) resumes its provider.
  std::string providerPositionAfter(std::uint64_t seq) const;
  // The publisher: the provider position after frame `seq`, already
  // published (a mirror told it by its upstream after the frame).
  void noteProviderPosition(std::string position, std::uint64_t seq);
  std::uint64_t framesPublished() const { return frames_.load(std::memory_order_relaxed); }
  std::uint64_t bytesPublished() const { return bytes_.load(std::memory_order_relaxed); }
  // The ring's limits, and the frames and wire bytes it holds now (zeros: no ring).
  const ReplayLimits& replayLimits() const { return replayLimits_; }
  std::pair<std::size_t, std::size_t> replayHeld() const;
  // Subscriptions that select by key now, and the patterns they index.
  struct SelectionCounts {
    std::size_t subscriptions = 0;
    std::size_t patterns = 0;
  };
  SelectionCounts selectionCounts() const;
  // The newest frame per key (streams.NAME.last_value): keys held, the
  // limit (0: none kept), keys evicted for newer ones.
  struct LastValueCounts {
    std::size_t keys = 0;
    std::size_t maxKeys = 0;
    std::uint64_t evictions = 0;
  };
  LastValueCounts lastValueCounts() const;
  // Thread safe. Frames published with and without a key; null if the stream has no key rule.
  const KeyCounts* keyCounts() const { return keyCounts_.get(); }

 private:
  using QueueList = std::vector<QueuePtr>;
  // A subscription that selects by key.
  struct Selector : std::enable_shared_from_this<Selector> {
    QueuePtr queue;
    std::vector<std::string> patterns;
    // The publisher's, written under mutex_: the frames of the batch being
    // dispatched that go to this subscription, and that dispatch's number.
    std::uint64_t dispatch = 0;
    std::vector<FrameRange> ranges;
  };
  std::shared_ptr<const QueueList> snapshot() const;
  Start attach(QueuePtr queue, std::optional<std::uint64_t> afterSeq, std::size_t replayFrames,
               const std::vector<std::string>& select, bool snapshot, std::uint64_t afterEpoch);
  // mutex_ held: takes the subscriptions bound to the old epoch off the bus.
  std::vector<QueuePtr> detachEpochBound();
  // Counts and hands a numbered batch on: to the ring, the last values and
  // the queues. `epoch`: the stream's new one (publishAt), else null.
  // `mirrored`: published with publishAt() (its seqs are the upstream's).
  void dispatch(std::unique_ptr<FrameBatch> batch, const StreamId* epoch, bool mirrored);
  // Under mutex_: records in each matching selector which frames of `batch`
  // it gets, and lists the selectors touched in touched_.
  void matchSelectors(const FrameBatch& batch);
  void pushSelected(const FrameBatchPtr& batch, bool blocking);
  void removeSelector(const SubscriptionQueue* queue);  // mutex_ held
  // mutex_ held: `replay` (already selected) is preloaded and the queue subscribed.
  void addLocked(QueuePtr queue, const std::vector<FrameSpan>& replay, const std::vector<std::string>& select);
  // mutex_ held: the ring's frames after `afterSeq`, if nothing is missing up to the live ones.
  std::optional<std::vector<FrameSpan>> continuationLocked(std::uint64_t afterSeq) const;
  // mutex_ held, `batch` just dispatched: subscribes each resume ahead that
  // it reaches, with its frames after the one asked for.
  void admitAhead(const FrameBatchPtr& batch);
  // A resume ahead of a mirror, waiting for its frame.
  struct Ahead {
    QueuePtr queue;
    std::uint64_t afterSeq = 0;
    std::vector<std::string> select;
  };

  std::deque<StreamId> streams_;               // the publisher's: every epoch so far (batches point into it)
  std::atomic<const StreamId*> current_;       // streams_.back(), swapped under mutex_
  mutable std::mutex mutex_;
  std::shared_ptr<const QueueList> queues_ = std::make_shared<QueueList>();
  std::atomic<std::uint64_t> nextSeq_;
  SeqGate* const seqGate_;
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> gaps_{0};
  std::atomic<std::uint64_t> skipped_{0};
  Histogram* const receivedSizes_;
  const ReplayLimits replayLimits_;
  std::unique_ptr<ReplayRing> ring_;         // guarded by mutex_: replayLimits_'s, else the hand-over's
  Backfill* backfill_ = nullptr;             // set before subscribers
  std::unique_ptr<LastValues> lastValues_;   // guarded by mutex_
  std::uint64_t pushedSeq_;                  // guarded by mutex_: the newest seq handed to the queues
  std::string providerPosition_;             // guarded by mutex_
  std::uint64_t providerPositionSeq_ = 0;    // guarded by mutex_: the frame it is the position after (0: unknown)
  std::vector<FrameBatchPtr> evicted_;       // the publisher's: released outside the lock
  std::vector<std::weak_ptr<SubscriptionQueue>> epochBound_;  // guarded by mutex_: subscribeAfter()'s queues
  bool mirrored_ = false;                    // guarded by mutex_: the newest batch came through publishAt()
  std::vector<Ahead> ahead_;                 // guarded by mutex_: resumes ahead of the mirror
  std::vector<std::shared_ptr<Selector>> selectors_;  // guarded by mutex_
  SubjectIndex<Selector*> index_;                      // guarded by mutex_: pattern -> selectors_ entry
  std::uint64_t dispatches_ = 0;                       // guarded by mutex_
  std::vector<std::shared_ptr<Selector>> touched_;     // the publisher's: selectors the batch goes to
  ThreadOwner publisher_;                    // the one thread that may publish now
  const std::unique_ptr<KeyExtractor> keyExtractor_;  // the publisher's
  const std::unique_ptr<KeyCounts> keyCounts_;
};

}  // namespace streamrelay
