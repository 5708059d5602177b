// SPDX-License-Identifier: Apache-2.0
#pragma once
// The child process of an isolated plugin instance: `streamrelay
// --plugin-child NAME RELAYPID`, started by the relay (PluginProcess), never
// by a user.
//
// It runs the plugin exactly as the relay would in process: through a
// PluginInstance, so the host API, the failure rules, the flush cadence and
// emit batching are the same code. Around it:
//  - the feeder thread copies records from the FrameRing into the instance's
//    queue (on_full: block: nothing is dropped in the child);
//  - the plugin's progress (PluginInstance::setProgress) becomes the ring's
//    acknowledgement; for a processor the acknowledgement travels in the
//    same message as the frames emitted while handling those frames, so a
//    crash loses both or neither (EmitSender);
//  - log lines, counters and gauges (every 100 ms) and stats_json go over the
//    control channel; the control thread reads the relay's messages (stop,
//    stats answers).
// Before it loads the plugin it confines itself (child_sandbox.hpp). It ends
// with _exit: a plugin thread that outlives destroy() is not waited for.

namespace streamrelay {

// main() of the hidden mode; never returns.
[[noreturn]] void runPluginChild(int argc, char** argv);

}  // namespace streamrelay
