"""Delivery on every core: `campaigns send --wait` and `serve` run several real delivery processes.

One SMTP session per process (SENDWELL_SMTP_CONCURRENCY=1), so the sessions the loopback SMTP
server holds at once count the processes delivering at once. The server's gate keeps the first
mails at DATA until the test has seen them all arrive: no timing decides the outcome.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sendwell.campaigns.service import create_campaign
from sendwell.db.models import Send
from sendwell.db.session import transaction
from sendwell.delivery.dkim import generate_private_key
from sendwell.demo.smtp_server import CaptureSMTPServer, free_port
from sendwell.runtime import Runtime
from sendwell.worker.queue import Queue
from tests.conftest import make_settings
from tests.worker import support

pytestmark = pytest.mark.slow
N = 120  # 6 batches of 20


class Sink:
    """The loopback SMTP server, with the set of sessions waiting at its (closed) gate and every peer seen."""

    def __init__(self) -> None:
        self.server = CaptureSMTPServer()
        self.waiting: set[Any] = set()
        self.peers: set[Any] = set()
        self.lock = threading.Lock()
        handler = self.server.handler
        keep = handler.handle_DATA

        async def handle_data(server: Any, session: Any, envelope: Any) -> str:
            with self.lock:
                self.waiting.add(session.peer)
                self.peers.add(session.peer)
            try:
                return await keep(server, session, envelope)
            finally:
                with self.lock:
                    self.waiting.discard(session.peer)

        handler.handle_DATA = handle_data  # type: ignore[method-assign]
        handler.gate.clear()

    def __enter__(self) -> Sink:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.open()
        self.server.__exit__(*exc)

    def held(self) -> int:
        with self.lock:
            return len(self.waiting)

    def open(self) -> None:
        self.server.handler.gate.set()


@pytest.fixture
def sink():
    with Sink() as s:
        yield s


@pytest.fixture
def runtime(sqlite_template, tmp_path, sink):
    db = tmp_path / "sendwell.db"
    shutil.copyfile(sqlite_template, db)
    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_private_key("ed25519"))  # `campaigns send` refuses to send unsigned mail
    settings = make_settings(tmp_path / "data", database_url=f"sqlite:///{db}", smtp_url=sink.server.url,
                             dkim_domain="bright-lighting.example", dkim_selector="s1", dkim_key_file=str(key),
                             smtp_concurrency=1, batch_size=20, recovery_interval=0.5, lease_seconds=10,
                             queue_name=support.unique_name())
    rt = Runtime(settings)
    support.seed_contacts(rt, N)
    yield rt
    rt.dispose()


def _env(runtime: Runtime, **extra: str) -> dict[str, str]:
    s = runtime.settings
    return support.worker_env(s, SENDWELL_COMPANY_NAME=s.company_name, SENDWELL_POSTAL_ADDRESS=s.postal_address,
                              SENDWELL_CONTACT_EMAIL=s.contact_email, SENDWELL_DKIM_DOMAIN=s.dkim_domain,
                              SENDWELL_DKIM_SELECTOR=s.dkim_selector, SENDWELL_DKIM_KEY_FILE=s.dkim_key_file, **extra)


def _draft(runtime: Runtime) -> int:
    with transaction(runtime.factory) as s:
        return create_campaign(s, settings=runtime.settings, name="Cores", subject="Hello {{ contact.company }}",
                               html="<p>Dear {{ first_name }}, our new panels.</p>").id


def _send_wait(runtime: Runtime, campaign_id: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([support.SENDWELL, "campaigns", "send", str(campaign_id), "--wait", "--json"],
                            env=_env(runtime, **env), stdout=open(log.with_suffix(".out"), "wb"),
                            stderr=open(log, "wb"))


def _output(log: Path) -> str:
    """What the command printed: stderr (the process lines), then stdout (the JSON status, or the error)."""
    return log.read_text() + log.with_suffix(".out").read_text()


def _send_states(runtime: Runtime, campaign_id: int) -> Counter[str]:
    with transaction(runtime.factory) as s:
        return Counter(s.scalars(select(Send.state).where(Send.campaign_id == campaign_id)))


@contextmanager
def _two_processes_at_the_gate(runtime: Runtime, sink: Sink, log: Path) -> Iterator[tuple[int, Any]]:
    """`send --wait` with 2 processes until each holds a mail at DATA (both deliver); the gate opens on leaving."""
    campaign_id = _draft(runtime)
    proc = _send_wait(runtime, campaign_id, log, SENDWELL_DELIVERY_PROCESSES="2")
    try:
        support.wait_for(lambda: sink.held() == 2, "two processes at the gate", procs=[proc],
                         describe=lambda: _output(log))
        yield campaign_id, proc
        sink.open()
        proc.wait(timeout=240)
    finally:
        sink.open()
        if proc.poll() is None:
            proc.kill()


def test_send_wait_with_two_processes_delivers_every_recipient_once(runtime, sink, tmp_path) -> None:
    log = tmp_path / "send.log"
    with _two_processes_at_the_gate(runtime, sink, log) as (campaign_id, proc):
        pass
    text = _output(log)
    assert proc.returncode == 0, text
    assert re.search(r"2 delivery processes \(SENDWELL_DELIVERY_PROCESSES\): this one \(pid \d+\) and pid \d+", text)
    assert sorted(support.receipts(sink.server).values()) == [1] * N
    assert set(support.receipts(sink.server)) == {f"buyer{n}@buyers.example" for n in range(N)}
    per_process = [int(n.replace(",", "")) for n in re.findall(r"pid \d+(?: \(this one\))?: ([\d,]+) sent", text)]
    assert len(per_process) == 2 and sum(per_process) == N and min(per_process) > 0, text
    assert _send_states(runtime, campaign_id) == {"sent": N}
    assert '"status": "finished"' in text


def test_a_killed_delivery_process_is_reported_and_never_leaves_exit_0_with_unsent_mail(runtime, sink,
                                                                                        tmp_path) -> None:
    log = tmp_path / "send.log"
    with _two_processes_at_the_gate(runtime, sink, log) as (campaign_id, proc):
        child = int(re.search(r"and pid (\d+)", log.read_text()).group(1))
        assert _alive(child)
        subprocess.run(["kill", "-KILL", str(child)], check=True)
        support.wait_for(lambda: not _alive(child), "the child to die")
    text = _output(log)
    states = _send_states(runtime, campaign_id)
    assert f"delivery process pid {child} killed by SIGKILL" in text
    # The parent took every queued send; what the killed child held was taken back (its pid is
    # gone: the process registry) and sent, or, with no one to take it back, is reported unsent.
    assert set(states) <= {"sent", "sending"} and states["sent"] + states["sending"] == N, states
    assert (proc.returncode == 0) == (states["sending"] == 0), text
    assert proc.returncode != 0 or '"status": "finished"' in text
    counts = support.receipts(sink.server)
    # Once each, but the mail the child had at DATA when it died: it may arrive twice.
    assert sum(counts.values()) - len(counts) <= 1 and len(counts) >= states["sent"]


def test_sigterm_stops_every_process_gracefully_and_hands_the_rest_back(runtime, sink, tmp_path) -> None:
    log = tmp_path / "send.log"
    with _two_processes_at_the_gate(runtime, sink, log) as (campaign_id, proc):
        child = int(re.search(r"and pid (\d+)", log.read_text()).group(1))
        proc.send_signal(signal.SIGTERM)  # to the command only: it passes the stop on to its child
    text = _output(log)
    states = _send_states(runtime, campaign_id)
    # Each process finished the mail it had at DATA and handed the rest of its batch back.
    assert states == {"sent": 2, "queued": N - 2}, (states, text)
    assert sorted(support.receipts(sink.server).values()) == [1, 1]
    assert proc.returncode != 0, text  # never 0 with mail unsent
    assert not _alive(child)


def test_one_delivery_process_is_the_single_process_shape(runtime, sink, tmp_path) -> None:
    campaign_id = _draft(runtime)
    log = tmp_path / "send.log"
    sink.open()
    proc = _send_wait(runtime, campaign_id, log, SENDWELL_DELIVERY_PROCESSES="1")
    proc.wait(timeout=240)
    text = _output(log)
    assert proc.returncode == 0, text
    assert "delivery process" not in text
    assert sorted(support.receipts(sink.server).values()) == [1] * N
    assert len(sink.peers) == 1  # every batch over the one SMTP session of the one process


@pytest.fixture(params=["embedded", "redis"])
def served_runtime(request, runtime):
    """The runtime on the embedded queue, or on Redis (the scale-out shape's queue)."""
    if request.param == "embedded":
        yield runtime
        return
    rt = Runtime(runtime.settings.replace(queue_url="redis://127.0.0.1:6379/0"))
    yield rt
    Queue(rt).huey.flush()
    rt.dispose()


def test_serve_runs_supervised_delivery_processes_and_stops_them_all(served_runtime, sink, tmp_path) -> None:
    runtime = served_runtime
    log = tmp_path / "serve.log"
    env = _env(runtime, SENDWELL_DELIVERY_PROCESSES="3")
    proc = subprocess.Popen([support.SENDWELL, "serve", "--port", str(free_port())], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    seen: set[int] = set()
    try:
        support.wait_for(lambda: "delivery processes" in log.read_text(), "serve to start its processes",
                         procs=[proc], describe=lambda: log.read_text())
        line = re.search(r"3 delivery processes \(SENDWELL_DELIVERY_PROCESSES\): this one \(pid (\d+)\) "
                         r"and pid (\d+), (\d+)", log.read_text())
        assert line and int(line.group(1)) == proc.pid, log.read_text()
        children = {int(line.group(2)), int(line.group(3))}
        assert children <= _children_of(proc.pid)
        seen |= children
        support.wait_for(lambda: log.read_text().count("Huey consumer started") >= 2, "the children's consumers",
                         procs=[proc], describe=lambda: log.read_text())
        # Each consumer takes jobs: three sessions at the gate at once.
        campaign_id = support.start_campaign(runtime, Queue(runtime))
        support.wait_for(lambda: sink.held() == 3, "three processes at the gate", procs=[proc],
                         describe=lambda: log.read_text())
        # A child that dies is restarted.
        victim = min(children)
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        support.wait_for(lambda: "restarted as pid" in log.read_text(), "the restart", procs=[proc],
                         describe=lambda: log.read_text())
        restarted = int(re.search(r"restarted as pid (\d+)", log.read_text()).group(1))
        assert f"delivery process pid {victim} killed by SIGKILL" in log.read_text()
        assert restarted in _children_of(proc.pid) and victim not in _children_of(proc.pid)
        seen.add(restarted)
        sink.open()
        support.wait_for(lambda: support.campaign_finished(runtime, campaign_id), "the campaign", procs=[proc],
                         describe=lambda: f"{_send_states(runtime, campaign_id)}")
        code = support.stop(proc, signal.SIGTERM)
    finally:
        sink.open()
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log.read_text()[-3000:]
    assert not [pid for pid in seen if _alive(pid)], "delivery processes outlived serve"
    counts = support.receipts(sink.server)
    assert set(counts) == {f"buyer{n}@buyers.example" for n in range(N)}
    # The killed child's mail at DATA may be recovered and sent again (possibly_duplicated); no other.
    assert sum(counts.values()) - N <= 1


def _children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
