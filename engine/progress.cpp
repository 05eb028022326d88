// engine/progress.cpp — see progress.h.
#include "engine/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "format/payload.h"

namespace stasis::engine {

ProgressMeter::ProgressMeter(std::string label, uint64_t total, double delay)
    : label_(std::move(label)), total_(total), base_(format::op_bytes_progress().load()), delay_(delay),
      start_(std::chrono::steady_clock::now()) {
  if (!label_.empty()) thread_ = std::thread([this] { run(); });
}

ProgressMeter::~ProgressMeter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // Work that outlasted the delay shows its last line even if the meter's thread never got to run
  // before it ended (a short load with delay 0 on a busy machine).
  if (shown_ || std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() >= delay_)
    show(true);
}

void ProgressMeter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (cv_.wait_for(lock, std::chrono::duration<double>(delay_), [this] { return stop_; })) return;
  do {
    show(false);
    shown_ = true;
  } while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; }));
}

void ProgressMeter::show(bool last) {
  double done = double(format::op_bytes_progress().load() - base_);
  char line[512];
  int n;
  const char* end = !last ? "" : done_ ? ", done\n" : ", stopped\n";
  if (total_ > 0) {
    double pct = std::min(100.0, 100.0 * done / double(total_));
    n = std::snprintf(line, sizeof line, "\rstasis: %s: %3.0f%% of %.1f MiB%s", label_.c_str(),
                      last && done_ ? 100.0 : pct, double(total_) / 1048576.0, end);
  } else {
    n = std::snprintf(line, sizeof line, "\rstasis: %s: %.1f MiB%s", label_.c_str(), done / 1048576.0, end);
  }
  if (n > 0) {
    ssize_t ignored = ::write(2, line, size_t(std::min<int>(n, int(sizeof line) - 1)));
    (void)ignored;
  }
}

}  // namespace stasis::engine
