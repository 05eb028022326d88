// engine/progress.h — a progress line on stderr for a long snapshot write or read (a suspension's
// write, a resume's load), shown only when Python asks for it (stderr is a terminal): after
// `delay` seconds, "\rstasis: writing PATH: 123.4 MiB" a few times a second, ended by a newline.
// It reads format::op_bytes_progress() from its own thread and writes to fd 2 directly (no Python).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace stasis::engine {

class ProgressMeter {
 public:
  // `label` empty: no meter. `total`: op bytes expected (0: unknown).
  ProgressMeter(std::string label, uint64_t total, double delay);
  ~ProgressMeter();
  // The work is complete: the last line says so (without it, the line ends as "stopped").
  void done() { done_ = true; }
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

 private:
  void run();
  void show(bool last);
  std::string label_;
  uint64_t total_, base_;
  double delay_;
  std::chrono::steady_clock::time_point start_;
  bool stop_ = false, shown_ = false, done_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace stasis::engine
