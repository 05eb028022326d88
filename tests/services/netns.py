"""Network namespaces for the migration tests (root with CAP_NET_ADMIN; `ip` from iproute2).

Topology: a client namespace C and two service namespaces A and B. One veth pair links C
(10.X.0.1/24) to A (the service address 10.X.0.10/24). Moving the service moves the veth end from A
to B, interface and all (its MAC with it, so the client's neighbour cache stays right), with the
same address (--tcp-established) or another one (--rebind). `unavailable()` says why namespaces
cannot be made here, or None."""
from __future__ import annotations

import os
import subprocess
from typing import List, Optional, Sequence


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> Optional[str]:
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"stasis-probe-{os.getpid()}"
    try:
        r = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip` cannot run: {e}"
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


class Topology:
    def __init__(self, tag: str, subnet: int) -> None:
        self.c, self.a, self.b = (f"stasis-{tag}-{x}" for x in "cab")
        self.net = f"10.{subnet}.0"
        self.client_ip, self.service_ip, self.other_ip = f"{self.net}.1", f"{self.net}.10", f"{self.net}.20"
        self.veth = f"sv{subnet}"          # the service end (moves between A and B)
        self.peer = f"cv{subnet}"          # the client end, in C
        self.made: List[str] = []
        self.where = self.a

    def __enter__(self) -> "Topology":
        try:
            for ns in (self.c, self.a, self.b):
                _ip("netns", "add", ns)
                self.made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.c, "link", "add", self.peer, "type", "veth", "peer", "name", self.veth, "netns", self.a)
            _ip("-n", self.c, "addr", "add", f"{self.client_ip}/24", "dev", self.peer)
            _ip("-n", self.c, "link", "set", self.peer, "up")
            self._address(self.a, self.service_ip)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _address(self, ns: str, ip: str) -> None:
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", self.veth)
        _ip("-n", ns, "link", "set", self.veth, "up")

    def __exit__(self, *exc) -> None:
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made.clear()

    def exec(self, ns: str, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def client_link(self, up: bool) -> None:
        """The client's end of the link down (or up again): from then on nothing the client sends
        reaches the service's namespace, nor does anything come back; the client's TCP keeps its
        data and retransmits it once the link is up."""
        _ip("-n", self.c, "link", "set", self.peer, "up" if up else "down")
        if up:
            _ip("-n", self.c, "route", "replace", f"{self.net}.0/24", "dev", self.peer, check=False)

    def move_to_b(self, ip: str) -> None:
        """The service's end of the link moves to namespace B with address `ip`, and is up there."""
        if self.where == self.a:
            _ip("-n", self.a, "link", "set", self.veth, "down")
            _ip("-n", self.a, "link", "set", self.veth, "netns", self.b)
            self.where = self.b
        _ip("-n", self.b, "addr", "add", f"{ip}/24", "dev", self.veth)
        _ip("-n", self.b, "link", "set", self.veth, "up")
