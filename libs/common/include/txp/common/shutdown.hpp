// Graceful shutdown: SIGINT/SIGTERM set a process-wide flag that loops poll and waiters
// wake on. Call install() in main before starting threads, so every thread inherits the
// blocked signal mask and only the watcher thread receives them.
#pragma once

#include <chrono>
#include <functional>

namespace txp::shutdown {

void install();
bool requested();
void request();  // programmatic (tests, fatal errors)
// Sleeps up to d; returns true if shutdown was requested meanwhile.
bool wait_for(std::chrono::milliseconds d);
// Blocks until shutdown is requested.
void wait();
// Called once, on the watcher thread, when shutdown is first requested.
void on_request(std::function<void()> fn);

}  // namespace txp::shutdown
