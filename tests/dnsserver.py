"""A real authoritative DNS server (NSD, Debian package `nsd`) on a free loopback port, for tests.

    with dns_server({"good.example": "@ MX 10 mx.good.example.\\n@ TXT \\"v=spf1 -all\\""}) as address:
        settings = make_settings(tmp_path, dns_nameservers=address)   # address == "127.0.0.1:PORT"

Each zone text is a zone file body; relative names are under the zone (an $ORIGIN line is added).
When a zone has no SOA record, an SOA and an NS record are added, so a body can be just the records
the test is about. Every zone is checked with `nsd-checkzone` first, so a typo in a test zone fails
with NSD's own message naming the line instead of an empty answer later.

The module also gives the pytest fixture `dns_zones`: a function taking the zones and returning the
address; the server stops at the end of the test. Tests that use either are `@pytest.mark.slow`
(a subprocess); they judge no timing, so they run on whichever xdist worker is free.

NSD rather than dnsmasq or Knot: it serves plain zone files, runs in the foreground (`-d`) with no
systemd and no privileges to drop (`username: ""`), and starts in well under a second.
scripts/services.sh installs it when it is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

NSD = shutil.which("nsd") or ("/usr/sbin/nsd" if Path("/usr/sbin/nsd").exists() else None)
NSD_CHECKZONE = shutil.which("nsd-checkzone") or (
    "/usr/sbin/nsd-checkzone" if Path("/usr/sbin/nsd-checkzone").exists() else None)

if NSD is None and os.environ.get("CI"):
    raise RuntimeError("nsd is not installed; scripts/services.sh should have installed it")

# Tests that start the server: `pytestmark = [pytest.mark.slow, needs_nsd]`.
needs_nsd = pytest.mark.skipif(NSD is None, reason="needs NSD (apt-get install nsd)")

_CONFIG = """\
server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{root}"
  pidfile: "{root}/nsd.pid"
  database: ""
  zonelistfile: "{root}/zone.list"
  xfrdfile: "{root}/xfrd.state"
  xfrdir: "{root}"
  logfile: "{root}/nsd.log"
  server-count: 1
  verbosity: 1
  hide-version: yes
remote-control:
  control-enable: no
"""

_ZONE_CONFIG = """\
zone:
  name: "{name}"
  zonefile: "{file}"
"""

_SOA = """\
@ 3600 IN SOA ns1.{name}. hostmaster.{name}. 1 3600 600 86400 60
@ 3600 IN NS ns1.{name}.
ns1 3600 IN A 127.0.0.1
"""


def free_port() -> int:
    """A loopback port free for both UDP and TCP at the time of asking."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port for both UDP and TCP")


def zone_file_text(name: str, body: str) -> str:
    """The zone file NSD reads for `body`: $ORIGIN and $TTL, and an SOA/NS when the body has none."""
    name = name.rstrip(".")
    head = f"$ORIGIN {name}.\n$TTL 300\n"
    has_soa = any(" SOA " in f" {line.split(';')[0]} " for line in body.splitlines())
    return head + ("" if has_soa else _SOA.format(name=name)) + body.strip("\n") + "\n"


@contextmanager
def dns_server(zones: dict[str, str], *, startup_timeout: float = 15.0) -> Iterator[str]:
    """Serve `zones` ({zone name: zone file body}) with NSD; yields "127.0.0.1:PORT"."""
    if NSD is None:
        pytest.skip("needs NSD (apt-get install nsd)")
    if not zones:
        raise ValueError("dns_server needs at least one zone")
    root = Path(tempfile.mkdtemp(prefix="sendwell-nsd-"))
    try:
        zone_config = []
        for index, (name, body) in enumerate(zones.items()):
            file = root / f"zone{index}.zone"
            file.write_text(zone_file_text(name, body))
            if NSD_CHECKZONE:
                check = subprocess.run([NSD_CHECKZONE, name.rstrip("."), str(file)],
                                       capture_output=True, text=True)
                if check.returncode != 0:
                    raise ValueError(f"test zone {name!r} is not a valid zone file: "
                                     f"{(check.stdout + check.stderr).strip()}")
            zone_config.append(_ZONE_CONFIG.format(name=name.rstrip("."), file=file.name))
        first = next(iter(zones)).rstrip(".") + "."
        for _attempt in range(3):  # another process may take the port between asking and binding
            port = free_port()
            conf = root / "nsd.conf"
            conf.write_text(_CONFIG.format(port=port, root=root) + "".join(zone_config))
            proc = subprocess.Popen([NSD, "-d", "-c", str(conf)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                if _wait_ready(proc, port, first, startup_timeout):
                    yield f"127.0.0.1:{port}"
                    return
            finally:
                _stop(proc)
        log = (root / "nsd.log").read_text() if (root / "nsd.log").exists() else ""
        raise RuntimeError(f"NSD did not start on a loopback port: {log[-2000:]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, zone: str, timeout: float) -> bool:
    """True once NSD answers authoritatively for `zone`; False if it exited (port taken)."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
            if reply.answer:
                return True
        except (OSError, dns.exception.DNSException):
            pass
        time.sleep(0.05)
    output = proc.stdout.read().decode(errors="replace") if proc.poll() is not None and proc.stdout else ""
    raise RuntimeError(f"NSD on port {port} did not answer for {zone} within {timeout:.0f} s {output}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture
def dns_zones() -> Iterator[Callable[[dict[str, str]], str]]:
    """`address = dns_zones({"good.example": "..."})`: a server for this test, stopped after it."""
    with ExitStack() as stack:
        yield lambda zones: stack.enter_context(dns_server(zones))
