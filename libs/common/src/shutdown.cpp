// A dedicated thread waits for SIGINT/SIGTERM with sigwait and flips the shutdown flag.
#include "txp/common/shutdown.hpp"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

namespace txp::shutdown {

namespace {
std::atomic<bool> flag{false};
std::mutex mu;
std::condition_variable cv;
std::vector<std::function<void()>> callbacks;

void fire() {
    std::vector<std::function<void()>> cbs;
    {
        std::lock_guard lk(mu);
        if (flag.exchange(true)) return;
        cbs.swap(callbacks);
    }
    cv.notify_all();
    for (auto& f : cbs) f();
}
}  // namespace

void install() {
    static std::once_flag once;
    std::call_once(once, [] {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        std::signal(SIGPIPE, SIG_IGN);
        std::thread([set] {
            int sig = 0;
            sigwait(&set, &sig);
            fire();
        }).detach();
    });
}

bool requested() { return flag.load(std::memory_order_relaxed); }

void request() { fire(); }

bool wait_for(std::chrono::milliseconds d) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, d, [] { return flag.load(); });
}

void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [] { return flag.load(); });
}

void on_request(std::function<void()> fn) {
    {
        std::lock_guard lk(mu);
        if (!flag.load()) {
            callbacks.push_back(std::move(fn));
            return;
        }
    }
    fn();
}

}  // namespace txp::shutdown
