"""Network guard for tests: refuse and record every non-loopback connection or name lookup.

In this process, `guards(record)` gives replacements for socket's connect, connect_ex and
getaddrinfo (test_offline.py monkeypatches them in). In an app.py subprocess, `write_guard`
(served_app.py) copies this file next to a sitecustomize.py that calls `install`, logging each
attempt to the file named by QA_NET_GUARD_LOG.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Callable


def _local(host) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _numeric(host) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def guards(record: Callable[[object], None]) -> dict[str, Callable]:
    """Guarded versions of socket.socket.connect / connect_ex and socket.getaddrinfo."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            record(address)
            raise OSError(errno.ENETUNREACH, f"network guard: no connection to {address}")
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            record(address)
            return errno.ENETUNREACH
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not (_local(name) or _numeric(name)):  # a numeric address needs no lookup; connect decides
            record(name)
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: no lookup of {name}")
        return getaddrinfo(host, *args, **kwargs)

    return {"connect": guarded_connect, "connect_ex": guarded_connect_ex, "getaddrinfo": guarded_getaddrinfo}


def install() -> None:
    """Guard this whole process; attempts go to the file named by QA_NET_GUARD_LOG, if any."""
    log = os.environ.get("QA_NET_GUARD_LOG")

    def record(what) -> None:
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {what!r}\n")

    g = guards(record)
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = g["connect"], g["connect_ex"], g["getaddrinfo"]
