"""System commands: init, serve, worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click
import uvicorn

from sendwell.bootstrap import initialise
from sendwell.cli.common import emit, fail, get_settings, json_option
from sendwell.cli.context import get_runtime, safe_url
from sendwell.cli.processes import Supervisor, delivery_processes
from sendwell.mail.transport import loopback_sessions_hint
from sendwell.followups import outbox_worker
from sendwell.keys import KeyMismatch, check_keys, describe
from sendwell.runtime import Runtime
from sendwell.settings_edit import EDITABLE
from sendwell.web.app import create_app
from sendwell.web.health import failed, readiness
from sendwell.web.server import configure_logging, log_config, proxy_options
from sendwell.worker.queue import Queue


# ---------------------------------------------------------------- init
@click.command()
@click.option("--join", "join", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Take the secret key, pepper and DKIM key settings from FILE (another machine's "
                   "sendwell.env) instead of making new ones.")
@click.option("--record-keys", is_flag=True,
              help="Record this data folder's keys as the installation's, replacing the database's record "
                   "(after a deliberate change, e.g. `sendwell dkim keygen`; copy the new keys to every machine).")
@json_option
def init(join: Path | None, record_keys: bool, as_json: bool) -> None:
    """Create the data folder, keys and the database schema."""
    settings = get_settings()
    if join is not None and record_keys:
        fail("--join and --record-keys exclude each other")
    try:
        settings, created = initialise(settings, join=join, record_keys=record_keys)
    except KeyMismatch as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"cannot initialise {safe_url(settings.effective_database_url)}: {exc}")
    result = {
        "data_dir": str(settings.data_dir.resolve()),
        "database": safe_url(settings.effective_database_url),
        "created": created,
    }
    human = f"Sendwell is ready in {result['data_dir']} (database {result['database']})."
    if "dkim" in created:
        human += f"\nPublish this DKIM record in DNS:\n  {created['dkim']['record']}"
    emit(result, as_json, human)


# ---------------------------------------------------------------- health
@click.command()
@json_option
def health(as_json: bool) -> None:
    """Check the database, the queue and the keys; exit 0 when ready, 1 with the reason (container HEALTHCHECK)."""
    settings = get_settings()
    runtime = Runtime(settings)
    try:
        checks = readiness(settings, runtime.engine)
    finally:
        runtime.dispose()
    down = failed(checks)
    prints = runtime.fingerprints  # of the keys, never the keys
    if down:
        fail("not ready: " + "; ".join(f"{name}: {checks[name]}" for name in down)
             + (f" (key fingerprints: {describe(prints)})" if "error" not in prints else ""))
    emit({"status": "ok", "checks": checks, "fingerprints": prints}, as_json,
         "ok: database, queue and keys" + (f"; key fingerprints: {describe(prints)}" if "error" not in prints else ""))


# ---------------------------------------------------------------- serve / worker
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=int)
@click.option("--workers", "queue_workers", default=None, type=int,
              help="Embedded queue worker threads, one SMTP session each; 0 for none [default: SENDWELL_SMTP_CONCURRENCY].")
@click.option("--outbox/--no-outbox", default=True, show_default=True,
              help="Send follow-ups (thank-you mails, webhooks) from this process; --no-outbox leaves "
                   "them to `sendwell worker` processes.")
@click.option("--processes", default=None, type=click.IntRange(min=0),
              help="Delivery processes, this one included, each with --workers threads; 0 for one per core "
                   "[default: SENDWELL_DELIVERY_PROCESSES, auto].")
def serve(host: str, port: int, queue_workers: int | None, outbox: bool, processes: int | None) -> None:
    """Run the web app with the embedded queue worker and scheduler, plus a delivery process per further core."""
    runtime = get_runtime()
    _check_keys("serve", runtime)
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, outbox=outbox), host=host, port=port,
                                           log_level="info", log_config=log_config(runtime.settings.log_format),
                                           **proxy_options(runtime.settings.trusted_proxies)))
    consumer = Queue(runtime).consumer(workers=queue_workers, role="serve") if queue_workers != 0 else None
    if consumer is not None:
        consumer.start()
        click.echo(f"sendwell serve: embedded queue worker started ({consumer.workers} threads)", err=True)
        _hint_sessions("serve", runtime, consumer.workers)

    def stop(_signum: int, _frame: object) -> None:
        server.should_exit = True

    # Ours, not huey's (consumer.start set its own, which only its run loop reads): a SIGTERM
    # or Ctrl-C before uvicorn has taken the signals over (it does once it starts serving, and
    # hands them back after) still ends the server, and then the consumer gracefully below.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor = None
    count, why = delivery_processes(runtime.settings, processes)
    try:
        if consumer is not None and count > 1:
            # The other cores: consumer processes on the same queue, restarted if one dies.
            supervisor = Supervisor(runtime.settings, count - 1, consumer.workers)
            pids = supervisor.start()
            click.echo(f"sendwell serve: {count} delivery processes ({why}): this one (pid {os.getpid()}) and pid "
                       f"{', '.join(map(str, pids))}", err=True)
        server.run()
    finally:
        if supervisor is not None:
            supervisor.terminate()  # the children stop alongside this process's consumer
        if consumer is not None:
            consumer.stop(graceful=True)
        if supervisor is not None:
            supervisor.stop()


@click.command()
@click.option("--threads", default=None, type=int,
              help="Consumer threads, one SMTP session each [default: SENDWELL_SMTP_CONCURRENCY].")
def worker(threads: int | None) -> None:
    """Run a queue worker (scale-out shape: SENDWELL_QUEUE_URL=redis://…); SIGTERM stops it gracefully."""
    runtime = get_runtime()
    configure_logging(runtime.settings.log_format)
    _check_keys("worker", runtime)
    consumer = Queue(runtime).consumer(workers=threads)
    _hint_sessions("worker", runtime, consumer.workers)
    # Follow-ups too: nobody wakes this dispatcher after a commit in another process, so it
    # polls (SENDWELL_OUTBOX_POLL_SECONDS); with `serve --no-outbox` it is the only one.
    outbox = outbox_worker(runtime, poll_seconds=runtime.settings.outbox_poll_seconds)
    outbox.start()
    try:
        consumer.run()
    finally:
        outbox.stop()


def _check_keys(command: str, runtime: Any) -> None:
    """Refuse to start with keys other than the installation's; print the fingerprints (never the keys)."""
    try:
        fingerprints = check_keys(runtime.settings, runtime.engine)
    except KeyMismatch as exc:
        fail(f"sendwell {command}: {exc}")
    except Exception as exc:  # no key yet, an unreadable DKIM file: reported where it is used, as before
        click.echo(f"sendwell {command}: key fingerprints unavailable: {exc}", err=True)
        return
    click.echo(f"sendwell {command}: key fingerprints: {describe(fingerprints)}", err=True)
    if runtime.stored_fields:  # applied by get_runtime: environment > database > sendwell.env
        names = ", ".join(sorted(EDITABLE[name][0] for name in runtime.stored_fields))
        click.echo(f"sendwell {command}: settings saved in the admin (database): {names}", err=True)


def _hint_sessions(command: str, runtime: Any, sessions: int) -> None:
    """Say so when several SMTP sessions talk to a server on loopback (the setting stays as given)."""
    hint = loopback_sessions_hint(runtime.settings.smtp_url, sessions)
    if hint:
        click.echo(f"sendwell {command}: {hint}", err=True)
