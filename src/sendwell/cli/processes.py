"""Delivery on every core: the process pool of `campaigns send --wait` and the supervised consumers of `serve`.

DKIM signing, rendering and MIME are CPU work under one GIL per process, so one process
uses one core whatever its thread count. Both entry points therefore run several delivery
processes (SENDWELL_DELIVERY_PROCESSES, "auto" = one per core), this one included.

Children are started with multiprocessing's "spawn" context, never "fork": the parent holds
database connections, an SMTP session and threads (the consumer, the outbox dispatcher), and a
forked copy of any of them is unsafe. Spawn gives each child a fresh interpreter and the
parent's exact Settings object (pickled), wherever those settings came from (environment,
the data folder's sendwell.env, a test's overrides), with no hidden CLI command to keep in step.
Each child builds its own Runtime (engine, SMTP sessions, signer).

The work needs no coordination beyond the database: claims are atomic (delivery/claims.py) and
queue jobs are taken once (Huey's SQLite storage dequeues inside `BEGIN EXCLUSIVE`, Redis pops).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from sendwell.config import Settings
from sendwell.db.session import transaction
from sendwell.delivery.deliverer import Deliverer
from sendwell.delivery.progress import campaign_status, finish_if_done, state_counts
from sendwell.delivery.runner import run_campaign
from sendwell.mail.transport import TransportUnavailable
from sendwell.runtime import Runtime

log = logging.getLogger("sendwell.processes")
SPAWN = multiprocessing.get_context("spawn")
# A child of `serve` that dies sooner than this after its start is restarted after a growing
# pause (1, 2, 4 … 30 s), so a child that cannot start (a bad key, no database) does not spin.
STABLE_SECONDS = 10.0
MAX_RESTART_DELAY = 30.0


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def delivery_processes(settings: Settings, requested: int | None = None) -> tuple[int, str]:
    """How many delivery processes to run (this one included), and why, for the start-up line.

    `requested` (a CLI option) wins over SENDWELL_DELIVERY_PROCESSES; 0 or "auto" means one per
    core. The rate limits need no share-out: every process draws on the same shared budget
    (delivery/limiter.py).
    """
    value = requested if requested is not None else settings.delivery_processes
    if value not in (0, "auto"):
        return int(value), "SENDWELL_DELIVERY_PROCESSES" if requested is None else "--processes"
    n = cores()
    return n, f"auto, {n} core{'s' if n != 1 else ''}"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _watch_parent(parent: int) -> None:
    """Stop this child gracefully (as on SIGTERM) once its parent is gone, so none is orphaned."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _counting(deliverer: Deliverer, totals: dict[str, int], lock: threading.Lock) -> Deliverer:
    """Count what this deliverer sends, for the per-process report."""
    deliver = deliverer.deliver

    def counted(campaign_id: int, send_ids: list[int], **kw: Any) -> dict[str, Any]:
        counts = deliver(campaign_id, send_ids, **kw)
        with lock:
            for key in ("sent", "deferred", "failed", "skipped"):
                totals[key] = totals.get(key, 0) + int(counts.get(key, 0))
        return counts

    deliverer.deliver = counted  # type: ignore[method-assign]
    return deliverer


# ---------------------------------------------------------------- send --wait
def _send_child(settings: Settings, campaign_id: int, threads: int, parent: int,
                report: multiprocessing.connection.Connection) -> None:
    """A child of `campaigns send --wait`: claim and deliver batches until none is left."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C reaches the whole process group
        signal.signal(signum, lambda *_: stop.set())
    _watch_parent(parent)
    totals: dict[str, int] = {}
    result: dict[str, Any] = {"pid": os.getpid(), "totals": totals}
    runtime = Runtime(settings)
    deliverers: list[Deliverer] = []
    try:
        lock = threading.Lock()
        deliverers = [_counting(runtime.make_deliverer(should_stop=stop.is_set), totals, lock)
                      for _ in range(threads)]
        run_campaign(runtime.factory, deliverers, campaign_id=campaign_id)
    except TransportUnavailable as exc:
        result["unavailable"] = str(exc)
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for d in deliverers:
            d.transport.close()
        runtime.dispose()
    result["stopped"] = stop.is_set()
    report.send(result)
    report.close()
    if "error" in result or "unavailable" in result:
        raise SystemExit(1)


@dataclass
class _Child:
    process: Any
    reader: multiprocessing.connection.Connection
    result: dict[str, Any] | None = None

    def collect(self) -> None:
        """Read the child's report, if it sent one (a killed child sends none)."""
        if self.result is None:
            try:
                if self.reader.poll():
                    self.result = self.reader.recv()
            except (EOFError, OSError):
                pass


@dataclass
class _Stop:
    """SIGTERM / SIGINT in the parent: stop its own deliverers and pass SIGTERM on to the children."""

    children: list[_Child] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def __call__(self, signum: int, _frame: object) -> None:
        self.event.set()
        for child in self.children:
            if child.process.is_alive():
                try:
                    os.kill(child.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def send_on_cores(
    runtime: Runtime,
    deliverers: Sequence[Deliverer],
    *,
    campaign_id: int,
    processes: int | None = None,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    echo: Callable[[str], None] = lambda line: click.echo(line, err=True),
) -> dict[str, Any]:
    """`campaigns send --wait`: deliver the campaign here and in child processes until nothing is left.

    `deliverers` are this process's (one SMTP session each); every child runs as many. With
    one process (SENDWELL_DELIVERY_PROCESSES=1) this is run_campaign as it always was. SIGTERM
    or Ctrl-C stops every process gracefully (the mail in flight finishes, the rest is handed
    back). A child that dies or fails is reported on stderr and the others carry on; the caller
    reports what is left unsent (delivery/runner.py `leftovers`) and exits non-zero for it.
    Raises TransportUnavailable when a process found the SMTP server unavailable, as in one
    process. Returns only once every child has ended.
    """
    settings = runtime.settings
    wanted, why = delivery_processes(settings, processes)
    with transaction(runtime.factory) as session:
        queued = state_counts(session, campaign_id=campaign_id).get("queued", 0)
    # No more processes than batches: each starts in about a second, for nothing if idle.
    batches = math.ceil(queued / settings.batch_size)
    n = max(1, min(wanted, batches))
    threads = len(deliverers)
    if n == 1:
        return run_campaign(runtime.factory, list(deliverers), campaign_id=campaign_id, on_progress=on_progress)

    stop = _Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    totals: dict[str, int] = {}
    lock = threading.Lock()
    for d in deliverers:
        d.should_stop = stop.event.is_set
        _counting(d, totals, lock)
    try:
        for _ in range(n - 1):
            reader, writer = SPAWN.Pipe(duplex=False)
            proc = SPAWN.Process(target=_send_child, args=(settings, campaign_id, threads, os.getpid(), writer),
                                 name="sendwell-deliver", daemon=False)
            proc.start()
            writer.close()
            stop.children.append(_Child(proc, reader))
        pids = ", ".join(str(c.process.pid) for c in stop.children)
        echo(f"sendwell campaigns send: {n} delivery processes ({why}): this one (pid {os.getpid()}) "
             f"and pid {pids}; {threads} SMTP session{'s' if threads != 1 else ''} each")
        own_error: BaseException | None = None
        try:
            run_campaign(runtime.factory, list(deliverers), campaign_id=campaign_id, on_progress=on_progress)
        except BaseException as exc:  # stop the children, then raise it below
            own_error = exc
            stop(signal.SIGTERM, None)
        # This process found nothing left to claim: the children finish their last batches.
        while any(c.process.is_alive() for c in stop.children):
            multiprocessing.connection.wait([c.process.sentinel for c in stop.children if c.process.is_alive()]
                                            + [c.reader for c in stop.children if c.result is None], timeout=0.5)
            for c in stop.children:
                c.collect()
            if on_progress is not None and own_error is None:
                with transaction(runtime.factory) as session:
                    on_progress(state_counts(session, campaign_id=campaign_id))
        for c in stop.children:
            c.process.join()
            c.collect()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if own_error is not None:
        raise own_error
    unavailable = [c.result["unavailable"] for c in stop.children if c.result and "unavailable" in c.result]
    if unavailable or stop.event.is_set():
        with transaction(runtime.factory) as session:
            finish_if_done(session, campaign_id=campaign_id)
            status = campaign_status(session, campaign_id=campaign_id)
    else:
        # A last pass here: it takes back what a dead child held (the process registry,
        # delivery/runner.py), sends it, and returns the final status; what is still unsent
        # then sets the command's exit status.
        status = run_campaign(runtime.factory, list(deliverers), campaign_id=campaign_id, on_progress=on_progress)
    _report(stop.children, totals, echo)
    if unavailable:  # as in one process: the batch was deferred, the command says so and fails
        raise TransportUnavailable(unavailable[0])
    return status


def _report(children: list[_Child], totals: dict[str, int], echo: Callable[[str], None]) -> None:
    """One line per process with what it sent, and one per child that died or failed."""
    echo(f"  pid {os.getpid()} (this one): {_sent(totals)}")
    failures: list[str] = []
    for c in children:
        result = c.result or {}
        line = f"  pid {c.process.pid}: {_sent(result.get('totals', {}))}"
        if c.process.exitcode != 0 or not c.result:
            line += f"; {_describe_exit(c.process.exitcode)}"
            if "unavailable" not in result:
                failures.append(f"delivery process pid {c.process.pid} {_describe_exit(c.process.exitcode)}"
                                + (f" ({result['error']})" if "error" in result else ""))
        echo(line)
    for failure in failures:
        echo(f"sendwell campaigns send: {failure}; the other processes sent the rest")


def _sent(totals: dict[str, int]) -> str:
    parts = [f"{totals.get('sent', 0):,} sent"]
    parts += [f"{totals[k]:,} {k}" for k in ("deferred", "failed", "skipped") if totals.get(k)]
    return ", ".join(parts)


# ---------------------------------------------------------------- serve
def _consume_child(settings: Settings, threads: int, parent: int) -> None:
    """A child of `serve`: a queue consumer (`sendwell worker` without the outbox, which serve sends)."""
    from sendwell.web.server import configure_logging
    from sendwell.worker.queue import Queue

    # Out of the terminal's process group: Ctrl-C reaches serve alone, which stops the children
    # itself (Supervisor.stop) instead of racing its supervisor into restarting them.
    os.setpgrp()
    configure_logging(settings.log_format)
    _watch_parent(parent)
    runtime = Runtime(settings)
    try:
        # Huey's run loop: SIGTERM (and Ctrl-C's SIGINT) finish the mail in flight and hand the
        # rest of each batch back (Queue.consumer).
        Queue(runtime).consumer(workers=threads).run()
    finally:
        runtime.dispose()


class Supervisor:
    """`serve`'s delivery children: started, restarted when one dies, all stopped on `stop()`."""

    def __init__(self, settings: Settings, count: int, threads: int,
                 echo: Callable[[str], None] = lambda line: click.echo(line, err=True)) -> None:
        self.settings, self.count, self.threads, self.echo = settings, count, threads, echo
        self.children: list[Any] = []
        self._started: dict[int, float] = {}  # pid -> monotonic start
        self._failures = [0] * count  # quick deaths in a row, per slot
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="delivery-supervisor", daemon=True)

    def _spawn(self) -> Any:
        proc = SPAWN.Process(target=_consume_child, args=(self.settings, self.threads, os.getpid()),
                             name="sendwell-deliver", daemon=False)
        proc.start()
        self._started[proc.pid] = time.monotonic()
        return proc

    def start(self) -> list[int]:
        with self._lock:
            self.children = [self._spawn() for _ in range(self.count)]
        self._thread.start()
        return self.pids()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.children]

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                sentinels = [p.sentinel for p in self.children]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            for slot, proc in enumerate(list(self.children)):
                if proc.is_alive() or self._stopping.is_set():
                    continue
                lived = time.monotonic() - self._started.pop(proc.pid, 0.0)
                self._failures[slot] = 0 if lived >= STABLE_SECONDS else self._failures[slot] + 1
                delay = min(MAX_RESTART_DELAY, 2.0 ** (self._failures[slot] - 1)) if self._failures[slot] else 0.0
                self.echo(f"sendwell serve: delivery process pid {proc.pid} {_describe_exit(proc.exitcode)} "
                          f"after {lived:.0f} s; restarting it" + (f" in {delay:g} s" if delay else ""))
                if self._stopping.wait(delay):
                    return
                with self._lock:
                    self.children[slot] = self._spawn()
                self.echo(f"sendwell serve: delivery process restarted as pid {self.children[slot].pid}")

    def terminate(self) -> None:
        """Stop restarting, and SIGTERM every child: each finishes the mail in flight and hands the rest back."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            children = list(self.children)
        for proc in children:
            if proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def stop(self, timeout: float | None = None) -> None:
        """terminate(), then wait for every child; SIGKILL one still running after `timeout` seconds."""
        self.terminate()
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in self.children:
            proc.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                self.echo(f"sendwell serve: delivery process pid {proc.pid} did not stop within {timeout} s; killing it")
                proc.kill()
                proc.join()
