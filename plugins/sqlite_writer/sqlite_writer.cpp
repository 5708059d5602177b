// SPDX-License-Identifier: Apache-2.0
// sqlite_writer: writes every frame it receives into a SQLite table.
//
// Batched: one transaction per batch_frames frames or flush_ms, whichever
// comes first (the host calls flush() when the queue drains and while it is
// idle, so a lone frame waits at most about flush_ms). Prepared statements,
// WAL journal. A failing database (unwritable path, locked, disk full) is
// logged once per failure streak with the file and SQLite's message, counted,
// and retried with backoff; the frames stay in hand meanwhile, so with
// `on_full: block` nothing is lost. Written only against the public SDK.
//
// ABI 1.2: frames come in batches (onFrames); a frame waiting for its
// transaction is retained from the relay, not copied (a host that cannot
// retain gets a copy); counters go through handles.

#include <streamrelay/plugin.hpp>
#include <sqlite3.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/backoff.hpp"
#include "sqlite_writer_config.hpp"

namespace {

using Clock = std::chrono::steady_clock;

bool validUtf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += n;
  }
  return true;
}

// A frame waiting for its transaction: its bytes retained from the relay, or
// copied into `copy` where the host cannot retain.
struct PendingFrame {
  std::uint64_t seq;
  std::int64_t receivedUnixNs;
  std::string_view retainedBytes;
  streamrelay::Retained retained;
  std::string copy;
  std::string_view payload() const { return retained.held() ? retainedBytes : std::string_view(copy); }
};

class SqliteWriter : public streamrelay::Plugin {
 public:
  SqliteWriter(streamrelay::Host& host, const std::string& configYaml)
      : host_(host), config_(streamrelay::plugins::parseSqliteWriterConfig(configYaml)),
        rowsWrittenCounter_(host.counter("rows_written")), writeErrors_(host.counter("write_errors")) {
    pending_.reserve(config_.batchFrames);
    std::string error;
    if (!open(error)) reportFailure(error);  // retried on the first write
  }

  ~SqliteWriter() override {
    if (!pending_.empty()) commitWithRetry();
    close();
    if (lost_ > 0) host_.error("gave up at shutdown: " + std::to_string(lost_) + " frames not written to " + config_.path);
    double busy = std::chrono::duration<double>(busy_).count();
    host_.info(std::to_string(rowsWritten_) + " rows written to " + config_.path +
               (busy > 0 ? " (" + std::to_string(static_cast<long long>(rowsWritten_ / busy)) + " rows/s while writing)" : ""));
  }

  void onFrames(const streamrelay::Frames& frames) override {
    for (const streamrelay::Frame& frame : frames) {
      if (pending_.empty()) firstPending_ = Clock::now();
      PendingFrame& f =
          pending_.emplace_back(PendingFrame{frame.seq, frame.receivedUnixNs, frame.data, host_.retain(frame), {}});
      if (!f.retained.held()) f.copy.assign(frame.data.data(), frame.data.size());
      if (pending_.size() >= config_.batchFrames || flushIntervalPassed()) commitWithRetry();
    }
  }

  void flush() override {
    if (!pending_.empty() && (flushIntervalPassed() || host_.stopping())) commitWithRetry();
  }

 private:
  bool flushIntervalPassed() const { return Clock::now() - firstPending_ >= config_.flushInterval; }

  bool exec(const std::string& sql, std::string& error) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK) return true;
    error = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    return false;
  }

  bool prepare(const std::string& sql, sqlite3_stmt** statement, std::string& error) {
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, statement, nullptr) == SQLITE_OK) return true;
    error = sqlite3_errmsg(db_);
    return false;
  }

  bool open(std::string& error) {
    if (sqlite3_open_v2(config_.path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      error = db_ ? sqlite3_errmsg(db_) : "out of memory";
      close();
      return false;
    }
    sqlite3_busy_timeout(db_, 1000);
    const std::string& t = config_.table;
    bool ok = exec("PRAGMA journal_mode=WAL", error) && exec("PRAGMA synchronous=" + config_.synchronous, error) &&
              exec("CREATE TABLE IF NOT EXISTS " + t +
                       " (id INTEGER PRIMARY KEY, received_ns INTEGER NOT NULL, seq INTEGER NOT NULL, payload)",
                   error) &&
              prepare("INSERT INTO " + t + " (received_ns, seq, payload) VALUES (?, ?, ?)", &insert_, error) &&
              prepare("DELETE FROM " + t + " WHERE id IN (SELECT id FROM " + t + " WHERE id <= (SELECT MAX(id) FROM " + t +
                          ") - ? ORDER BY id LIMIT ?)",
                      &trimRows_, error) &&
              prepare("DELETE FROM " + t + " WHERE id IN (SELECT id FROM " + t + " ORDER BY id LIMIT ?) AND received_ns < ?",
                      &trimAge_, error);
    if (!ok) close();
    return ok;
  }

  void close() {
    for (sqlite3_stmt** s : {&insert_, &trimRows_, &trimAge_}) {
      sqlite3_finalize(*s);
      *s = nullptr;
    }
    sqlite3_close(db_);
    db_ = nullptr;
  }

  bool step(sqlite3_stmt* statement, std::string& error) {
    int rc = sqlite3_step(statement);
    sqlite3_reset(statement);
    if (rc == SQLITE_DONE) return true;
    error = sqlite3_errmsg(db_);
    return false;
  }

  // Retention, bounded per transaction so a large backlog never stalls writes.
  bool trim(std::string& error) {
    const std::int64_t budget = 4 * static_cast<std::int64_t>(config_.batchFrames);
    if (config_.maxRows > 0) {
      sqlite3_bind_int64(trimRows_, 1, config_.maxRows);
      sqlite3_bind_int64(trimRows_, 2, budget);
      if (!step(trimRows_, error)) return false;
      rowsDeleted_ += sqlite3_changes(db_);
    }
    if (config_.maxAgeSeconds > 0) {
      std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
      sqlite3_bind_int64(trimAge_, 1, budget);
      sqlite3_bind_int64(trimAge_, 2, now - config_.maxAgeSeconds * 1000000000LL);
      if (!step(trimAge_, error)) return false;
      rowsDeleted_ += sqlite3_changes(db_);
    }
    return true;
  }

  bool writeBatch(std::string& error) {
    if (!db_ && !open(error)) return false;
    if (!exec("BEGIN", error)) return false;
    for (const PendingFrame& f : pending_) {
      sqlite3_bind_int64(insert_, 1, f.receivedUnixNs);
      sqlite3_bind_int64(insert_, 2, static_cast<sqlite3_int64>(f.seq));
      const std::string_view payload = f.payload();
      if (config_.payloadAsText && validUtf8(payload))
        sqlite3_bind_text(insert_, 3, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
      else
        sqlite3_bind_blob(insert_, 3, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
      if (!step(insert_, error)) break;
    }
    std::string ignored;
    if (error.empty() && trim(error) && exec("COMMIT", error)) return true;
    exec("ROLLBACK", ignored);
    return false;
  }

  // Writes the pending frames, retrying with backoff until it works or the
  // instance is being stopped (then what is pending is reported as lost).
  void commitWithRetry() {
    auto backoff = std::chrono::milliseconds(100);
    for (;;) {
      auto start = Clock::now();
      std::string error;
      if (writeBatch(error)) {
        busy_ += Clock::now() - start;
        rowsWritten_ += pending_.size();
        rowsWrittenCounter_.add(pending_.size());
        if (failing_) host_.info("writing to " + config_.path + " again");
        failing_ = false;
        pending_.clear();
        return;
      }
      reportFailure(error);
      close();  // reopen on the next try: the file may be back
      if (host_.stopping()) {  // no more retries: counted, reported once at destruction
        lost_ += pending_.size();
        pending_.clear();
        return;
      }
      streamrelay::plugins::waitBackoff(host_, backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }

  void reportFailure(const std::string& error) {
    writeErrors_.add(1);
    if (failing_) return;  // one line per failure streak
    failing_ = true;
    host_.error("cannot write to " + config_.path + ": " + error + " (retrying with backoff)");
  }

  streamrelay::Host& host_;
  const streamrelay::plugins::SqliteWriterConfig config_;
  streamrelay::Counter rowsWrittenCounter_, writeErrors_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* trimRows_ = nullptr;
  sqlite3_stmt* trimAge_ = nullptr;
  std::vector<PendingFrame> pending_;
  Clock::time_point firstPending_;
  bool failing_ = false;
  std::uint64_t rowsWritten_ = 0;
  std::uint64_t rowsDeleted_ = 0;
  std::uint64_t lost_ = 0;  // frames given up on at shutdown (the database kept failing)
  Clock::duration busy_{};
};

}  // namespace

STREAMRELAY_EXPORT_PLUGIN_WITH_KEYS(SqliteWriter, "sqlite_writer", "writes every frame into a SQLite table", 0,
                                    streamrelay::plugins::sqliteWriterConfigKeys())
