"""The Prometheus multiprocess folder stays bounded: CLI calls leave no files, a sender's are folded in at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from tests.conftest import TEST_PEPPER, TEST_SECRET

SENDWELL = str(Path(sys.executable).parent / "sendwell")


def _count(folder: Path) -> float:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return registry.get_sample_value("sendwell_smtp_send_seconds_count") or 0.0


def test_cli_calls_leave_the_folder_as_it_was(tmp_path: Path, db_url: str) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    (folder / "histogram_archive.db").write_bytes(b"")  # whatever is there already stays
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder), SENDWELL_DATA_DIR=str(tmp_path / "data"),
               SENDWELL_DATABASE_URL=db_url, SENDWELL_SECRET_KEY=TEST_SECRET, SENDWELL_HASH_PEPPER=TEST_PEPPER,
               SENDWELL_QUEUE_URL="")
    before = sorted(os.listdir(folder))
    # `init` and `health` load the web app (and /metrics with it), `campaigns` the delivery engine.
    for args in (["init"], ["health"], ["campaigns", "status", "999"], ["migrate"], ["health"]):
        proc = subprocess.run([SENDWELL, *args], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == (1 if args[0] == "campaigns" else 0), proc.stderr
    assert sorted(os.listdir(folder)) == before


SENDER = textwrap.dedent("""
    from sendwell.delivery.instruments import smtp_timer
    for _ in range({n}):
        with smtp_timer():
            pass
""")


def test_a_senders_files_are_folded_into_one_archive_at_exit(tmp_path: Path) -> None:
    """Each process that sent leaves nothing of its own; the total still adds up (no counter goes back)."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for n in (3, 4, 5):
        subprocess.run([sys.executable, "-c", SENDER.format(n=n)], env=env, check=True, timeout=60)
    assert [f for f in os.listdir(tmp_path) if f.endswith(".db")] == ["histogram_archive.db"]
    assert _count(tmp_path) == 12
