"""The hygiene scheduler: one pass per interval across every process, and the CLI command."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from sqlalchemy import func, select, update

from sendwell.bootstrap import initialise
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import HygieneRun, SchedulerLease
from sendwell.db.session import transaction
from sendwell.flows import run_hygiene_if_due
from sendwell.hygiene.scheduler import JOB
from sendwell.runtime import Runtime
from tests.conftest import make_settings
from tests.helpers import make_contact

register_commands()
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def _runs(runtime) -> int:
    with transaction(runtime.factory) as s:
        return s.scalar(select(func.count()).select_from(HygieneRun)) or 0


def test_two_schedulers_racing_run_one_pass(runtime, settings) -> None:
    # Two processes' schedulers (separate engines, as two machines would have) ask at once.
    other = Runtime(settings)
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def ask(name: str, rt: Runtime) -> None:
        start.wait()
        results[name] = run_hygiene_if_due(rt.factory, settings=rt.settings, holder=name, now=NOW)

    try:
        threads = [threading.Thread(target=ask, args=(n, rt)) for n, rt in (("a", runtime), ("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other.dispose()
    assert sorted(r is not None for r in results.values()) == [False, True]
    assert _runs(runtime) == 1
    # Not due again until the interval (24 h by default) has passed, whoever asks.
    assert run_hygiene_if_due(runtime.factory, settings=settings, holder="b", now=NOW + 23 * HOUR) is None
    assert run_hygiene_if_due(runtime.factory, settings=settings, holder="b", now=NOW + 24 * HOUR) is not None
    assert _runs(runtime) == 2


def test_a_holder_that_died_is_replaced_after_its_lease(runtime, settings) -> None:
    assert run_hygiene_if_due(runtime.factory, settings=settings, holder="a", now=NOW) is not None
    with transaction(runtime.factory) as s:
        # As if "a" took the next turn and died mid-pass: the lease stays taken.
        s.execute(update(SchedulerLease).where(SchedulerLease.name == JOB)
                  .values(holder="a", lease_until=NOW + 25 * HOUR))
    assert run_hygiene_if_due(runtime.factory, settings=settings, holder="b", now=NOW + 24 * HOUR) is None
    assert run_hygiene_if_due(runtime.factory, settings=settings, holder="b", now=NOW + 25 * HOUR + HOUR) is not None


def test_interval_zero_turns_the_scheduler_off(tmp_path, db_url) -> None:
    rt = Runtime(make_settings(tmp_path / "d", database_url=db_url, hygiene_interval_hours=0))
    try:
        assert run_hygiene_if_due(rt.factory, settings=rt.settings, now=NOW) is None
        assert _runs(rt) == 0
    finally:
        rt.dispose()


def test_the_worker_scan_runs_the_pass(runtime, settings) -> None:
    from sendwell.worker.queue import Queue

    queue = Queue(runtime)
    assert queue.hygiene() is not None
    assert queue.hygiene() is None  # the same process asking again within the interval
    assert _runs(runtime) == 1


# ---------------------------------------------------------------- CLI
def _cli(tmp_path, db_url, *args):
    env = {"SENDWELL_DATA_DIR": str(tmp_path / "cli"), "SENDWELL_DATABASE_URL": db_url,
           "SENDWELL_SECRET_KEY": "test-secret-key-0123456789", "SENDWELL_HASH_PEPPER": "test-pepper-0123456789"}
    return CliRunner().invoke(cli, list(args), env=env)


def test_cli_hygiene_run_as_of_dry_run_and_json(tmp_path, runtime, db_url) -> None:
    initialise(make_settings(tmp_path / "cli", database_url=db_url))
    with transaction(runtime.factory) as s:
        make_contact(s, email="info@lamps.example", paused_until=NOW - HOUR)
    out = _cli(tmp_path, db_url, "hygiene", "run", "--as-of", "2026-11-25", "--dry-run", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["dry_run"] and report["as_of"] == "2026-11-25T00:00:00+00:00"
    assert report["jobs"]["addresses"]["flagged"]["role_address"] == 1
    assert report["jobs"]["pauses"]["resumed"] == 0  # the pause ends at 03:00, after the as-of time
    table = _cli(tmp_path, db_url, "hygiene", "run", "--as-of", "2026-11-26T00:00:00Z")
    assert table.exit_code == 0, table.output
    assert "Hygiene pass as of 2026-11-26 00:00:00 UTC" in table.output and "pauses ended" in table.output
    runs = _cli(tmp_path, db_url, "hygiene", "runs", "--json")
    assert [r["dry_run"] for r in json.loads(runs.output)] == [False, True]


def test_cli_hygiene_run_refuses_a_bad_date(tmp_path, db_url) -> None:
    out = _cli(tmp_path, db_url, "hygiene", "run", "--as-of", "next tuesday")
    assert out.exit_code != 0
    assert "--as-of 'next tuesday' is not a date (YYYY-MM-DD) or an ISO 8601 time" in out.output
