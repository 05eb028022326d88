// snapshot/safe_point.h — waiting for safe points: the parking trace. A suspension request arms
// the program's threads; an armed thread parks (waits without the GIL) at its first safe point,
// after capturing its stack there (snapshot/capture.h decides what a safe point is).
//
// The wait is cheap. A thread is only traced while the frames below its innermost one form a
// resumable chain: poll() samples each armed thread's stack from the coordinator (which holds the
// GIL, so the thread stands between two instructions) and installs the C trace function only then.
// The trace function keeps that knowledge up to date at 'call' and 'return' events (one frame
// judged per call) and, as soon as a call enters a frame that breaks the chain (code that was not
// rewritten, a frame entered from C), takes itself off again: the thread runs untraced and fully
// specialised until a later sample finds it in a better place. A thread counting safe points
// (--suspend-after) stays traced and only switches 'line' events off in such frames.
//
// Where a sample finds the thread in code that a C call entered (a key function of sorted(), a
// coroutine driven by send(), a generator that sum() iterates), its safe points may only come in
// moments too short for samples (between two sends). The thread is then watched instead
// (core/cpython_internals.h LoopWatch): it runs on untraced, and the eval loop of the innermost
// resumable frame below, the one that made that C call, gets a profile event of ours as soon as it
// runs again (a call, a return; a C call, which is itself a safe point: the call has not started,
// and replay issues it; a 'line' event once the loop ran without calling anything). Where no such
// C call stands between (the frames that keep the thread from a safe point were called inline),
// the thread is traced until they return, within a time budget after which it is only sampled
// again for a while.
//
// While a thread is watched no capture can happen. The other threads park meanwhile, ready for
// the moment it returns, unless poll() sees it stand still while they are parked (at one
// instruction for 20 ms: blocked in a call): it may be waiting for them (a sort key that joins
// worker threads, waits on a Condition they notify, reads a Queue they fill). Then the parked
// threads are let go and no thread parks (a thread at what would be its safe point runs on
// untraced) until that thread's watch ends; then they are traced again and park at their next
// safe points.
//
// A program that uses sys.settrace (a debugger, coverage, doctest) keeps its trace function: the
// parking trace calls it first with every event, and sys.gettrace()/sys.settrace() see and
// replace the program's function (program_trace, trace_replaced), never the parking trace. A
// thread with a trace or profile function of the program is never watched, and the program's
// sys.setprofile()/sys.getprofile() end a watch and never see the parking profile function.
//
// Counterparts: python/stasis/program/freeze.py (the freeze protocol that drives this) and
// engine/program_api.cpp (the bindings).
#pragma once

#include <Python.h>

#include "core/ref.h"

namespace stasis::snapshot::safe_point {

struct ArmRequest {
  unsigned long ident;
  PyObject* base_code;    // the thread's StackBase (snapshot/capture.h)
  bool base_is_caller;
  long countdown;         // parks at the countdown-th safe point (1: the next one)
  PyObject* on_reached;   // called with no arguments when the countdown ends, or None
  PyObject* no_park_file; // never park with the innermost frame in this file, or None
  bool now;               // trace it at once (a retry: park at the very next safe point)
};

// Arms a thread; false when it is armed already. The calling thread (stasis.suspend(), a signal
// handler), a thread counting safe points and `now` are traced at once, others from the next poll().
bool arm(const ArmRequest& request);
// Samples every armed thread that is neither parked nor traced and traces those whose stack below
// the innermost frame is resumable. Called by the coordinator between its looks.
void poll();
// Waits (without the GIL) up to `seconds` for an armed thread to park: the coordinator's pause
// between looks, cut short by the event it waits for.
void wait_for_park(double seconds);
// {ident: (parked, frames | None, trace events, why its latest look was not a safe point, traced,
// watched)}.
Ref states();
// Holds the GIL for `seconds` without running Python code: true (and freeze()) when no other
// thread asked for the GIL meanwhile.
bool settle(double seconds);
// From now on every armed thread parks at its next trace event, safe point or not.
void freeze();
// Disarms every thread and lets parked ones continue (the suspension was abandoned or failed).
void thaw();

// After a capture failed at the safe points where the threads are parked (an object that cannot be
// captured there): those places (innermost code and offset) are no safe points for the rest of
// this request, so that a retry moves on to later ones. forget_avoided() when the request ends.
void avoid_parked_points();
void forget_avoided();

// The program's own trace function on the calling thread when the parking trace is installed
// there: (true, function or None); (false, None) when it is not (then sys.gettrace() answers).
Ref program_trace();
// After the program's sys.settrace() on the calling thread: when the parking trace was installed
// there, the new trace function becomes the program's and the parking trace goes back on top.
void trace_replaced();

// Whether the parking profile function is on the calling thread (it is being watched; the program
// then has no profile function of its own there: sys.getprofile() answers None).
bool profile_is_ours();
// Before the program's sys.setprofile() on the calling thread: its watch ends, so that the
// program's function gets every event (the coordinator's next sample looks at the thread again).
void profile_replacing();

}  // namespace stasis::snapshot::safe_point
