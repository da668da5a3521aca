"""Pod IPs that local processes can bind and every component can reach.

The API server refuses loopback (127.0.0.0/8) and link-local addresses in EndpointSlices, so pod IPs
come from ``POD_NETWORK`` (10.244.0.0/16) made *local* on this host: one kernel route,
``ip route add local 10.244.0.0/16 dev lo`` (the same kind of route that makes all of 127.0.0.0/8
answer), added by the harness when it is missing and it may (CAP_NET_ADMIN); nothing else about the
host's network changes. Each running cluster takes its own /23 of it (kwok's ``--cidr``), held by an
``flock`` that its pod runner inherits, so that clusters of several test sessions never hand out the
same pod IP. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
CLUSTER_PREFIX = 23
LOCK_DIR = Path(tempfile.gettempdir()) / "test-cluster-pod-subnets"
ROUTE_COMMAND = ("ip", "route", "add", "local", str(POD_NETWORK), "dev", "lo")


def is_local(network: ipaddress.IPv4Network = POD_NETWORK) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((str(network[1]), 0))
        except OSError:
            return False
    return True


def ensure_local() -> str | None:
    """Make POD_NETWORK local when it is not; None when done, else why not (with the command to run)."""
    if is_local():
        return None
    ip = shutil.which("ip") or "/usr/sbin/ip"
    result = subprocess.run([ip, *ROUTE_COMMAND[1:]], capture_output=True, text=True, check=False) if os.access(
        ip, os.X_OK) else None
    if is_local():
        return None
    why = result.stderr.strip() if result is not None else "no `ip` command"
    return f"pod IPs {POD_NETWORK} are not local addresses ({why}): run `{' '.join(ROUTE_COMMAND)}` as root"


def take_subnet() -> tuple[ipaddress.IPv4Network, int]:
    """A /23 of POD_NETWORK no other running cluster holds, and the open, locked file that holds it."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for subnet in POD_NETWORK.subnets(new_prefix=CLUSTER_PREFIX):
        fd = os.open(LOCK_DIR / f"{subnet.network_address}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return subnet, fd
    raise RuntimeError(f"every /{CLUSTER_PREFIX} of {POD_NETWORK} is held by a running cluster")


def release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
