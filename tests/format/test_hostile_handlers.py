"""Hostile states for the built-in handlers (python/stasis/handlers/): each load function is called
with whatever the file puts under its key, so it must take only the exact types its save function
writes — never call an attribute of the state (agen.asend, var.set, x.items(), x.keys()), never
call a class the state names unless it is one the handler makes, never loop as often as the state
says, never open a FIFO, never leave a Popen that waits for or signals a pid of the file's. The
harness is tests/format/test_hostile_gadgets.py's: a child process, a marker directory, the process
state compared, nothing on stderr, no hang."""
from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from craft import APPENDS, EMPTY_LIST, NONE, REDUCE, REGISTERED, TUPLE, Ops, instance, partial_of, snapshot  # noqa: E402
from test_hostile_gadgets import Crafted  # noqa: E402


def gadget(o: Ops, attr: str, command: str) -> Ops:
    """An object whose attribute `attr` is os.system: calling it runs `command`... or an
    argument-less partial of it, for attributes called without arguments."""
    return instance(o, "argparse", "Namespace", {attr: lambda o: partial_of(o, "posix", "system", command)})


def system_attr(o: Ops, attr: str) -> Ops:
    return instance(o, "argparse", "Namespace", {attr: lambda o: o.global_("posix", "system")})


class Handlers(Crafted):
    def registered(self, key: str, state) -> Ops:
        o = Ops().str(key)
        state(o) if callable(state) else o.value(state)
        return o.op(REGISTERED)

    def test_asend_calls_no_attribute_of_its_state(self):
        ops = self.registered("stasis.asend", lambda o: system_attr(o, "asend").str(self.touch("asend")).op(TUPLE, 2))
        self.refused(ops, "'stasis.asend' refused", "async generator")

    def test_context_calls_no_attribute_of_its_state(self):
        ops = self.registered("stasis.context", lambda o: system_attr(o.op(EMPTY_LIST), "set").str(
            self.touch("context")).op(TUPLE, 2).op(APPENDS, 1))
        self.refused(ops, "'stasis.context' refused", "ContextVar")

    def test_weak_value_dictionary_takes_a_dict_only(self):
        ops = self.registered("stasis.weakvaluedict", lambda o: gadget(o, "items", self.touch("wvd")))
        self.refused(ops, "'stasis.weakvaluedict' refused", "not a dict")

    def test_weak_key_dictionary_and_weakset_take_lists_only(self):
        self.refused(self.registered("stasis.weakkeydict", lambda o: gadget(o, "items", self.touch("wkd"))),
                     "'stasis.weakkeydict' refused")
        self.refused(self.registered("stasis.weakset", lambda o: o.global_("itertools", "count").op(TUPLE, 0).op(REDUCE)),
                     "'stasis.weakset' refused")

    def test_lru_cache_attributes_are_a_dict(self):
        ops = self.registered("stasis.lru_cache", lambda o: gadget(
            o.global_("builtins", "len").value(128).value(False), "keys", self.touch("lru")).op(TUPLE, 4))
        self.refused(ops, "'stasis.lru_cache' refused")

    def test_rlock_count_is_bounded(self):
        # taken 10**15 times, the lock would keep the load spinning for days
        self.refused(self.registered("stasis.rlock", (0, 10**15)), "'stasis.rlock' refused", "count <=")

    def test_simple_queue_items_are_a_list(self):
        ops = self.registered("stasis.simple_queue", lambda o: o.global_("itertools", "count").op(TUPLE, 0).op(REDUCE))
        self.refused(ops, "'stasis.simple_queue' refused")

    def test_condition_lock_is_a_lock(self):
        ops = self.registered("stasis.condition", lambda o: gadget(o, "acquire", self.touch("cond")).op(EMPTY_LIST).op(TUPLE, 2))
        self.refused(ops, "'stasis.condition' refused")

    def test_file_handler_never_waits_on_a_fifo(self):
        fifo = os.path.join(self.tmp.name, "fifo")
        os.mkfifo(fifo)
        state = ("file", fifo, "r", None, False, False, None, None, "BufferedReader")
        self.refused(self.registered("stasis.file", state), "not a regular file", kind="SnapshotIOError")

    def test_popen_never_runs_a_method_of_its_state(self):
        # Popen.__del__ calls self._internal_poll(): an attribute of the state would replace it
        def state(o):
            o.value({"_child_created": True, "returncode": 0, "pid": 999999})
            o.str("_internal_poll").raw(partial_of(Ops(), "posix", "system", self.touch("popen")).bytes())
            o.op(0x0E, 1)  # SetItems
        self.refused(self.registered("stasis.popen", state), "'stasis.popen' refused", "not a data attribute",
                     imports="subprocess")

    def test_popen_of_a_running_child_is_refused(self):
        # returncode None: its __del__ would waitpid() a pid the file names (reaping a child of ours)
        state = {"_child_created": True, "returncode": None, "pid": os.getpid()}
        self.refused(self.registered("stasis.popen", state), "no return code", imports="subprocess")

    def test_event_loop_policy_class_is_a_policy(self):
        ops = self.registered("stasis.event_loop_policy", lambda o: partial_of(
            o, "posix", "system", self.touch("policy")).op(TUPLE, 1))
        self.refused(ops, "'stasis.event_loop_policy' refused", imports="asyncio")

    def test_selector_class_is_a_selector(self):
        ops = self.registered("stasis.selector", lambda o: partial_of(o, "posix", "system", self.touch("sel")).op(TUPLE, 1))
        self.refused(ops, "'stasis.selector' refused", imports="asyncio")

    def test_event_loop_class_is_an_event_loop(self):
        def state(o):
            o.op(0x0D).str("class").global_("subprocess", "Popen").str("selector").value(["touch", self.m("loop")])
            o.op(0x0E, 2)
        self.refused(self.registered("stasis.event_loop", state), "'stasis.event_loop' refused", imports="asyncio")

    @unittest.expectedFailure
    def test_loading_a_policy_leaves_this_process_policy_alone(self):
        """Design decision for the handlers' owner (services), /work/coord/REQUESTS.md: the policy
        handler installs a policy of the saved class as this process's (asyncio.set_event_loop_policy
        in effect) when stasis.load meets one: a process-wide change by an object-graph load."""
        ops = self.registered("stasis.event_loop_policy", lambda o: o.global_(
            "asyncio", "DefaultEventLoopPolicy").op(TUPLE, 1))
        result = self.load_in_child(snapshot(ops), "asyncio")
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["changed"], [])


if __name__ == "__main__":
    unittest.main()
