// Test support: runs a service binary as a real child process with its own environment,
// output captured in a file, and stops it with SIGTERM (graceful) or SIGKILL (crash).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace txp::testing {

class child_process {
public:
    child_process(std::string binary, std::vector<std::string> args, std::map<std::string, std::string> env,
                  std::string log_path);
    ~child_process();  // SIGKILL if still running
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    bool running();
    // SIGTERM, then waits up to timeout_ms; returns the exit status (or -1 on timeout, then SIGKILL).
    int terminate(int timeout_ms = 15000);
    void kill_hard();  // SIGKILL and reap
    int pid() const { return pid_; }
    std::string log() const;

private:
    int pid_ = -1;
    std::string log_path_;
    int status_ = -1;
    bool reaped_ = false;
};

}  // namespace txp::testing
