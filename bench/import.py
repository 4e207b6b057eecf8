"""Benchmark: import N generated contact rows (default 1,000,000) with validation, against the
database's raw loader measured in the same run (`sqlite3 .import`, PostgreSQL `COPY`).

    .venv/bin/python bench/import.py [--rows N] [--backends sqlite,postgresql] [--pg-url URL]

Each import runs in a child process, so its peak memory (max RSS) is its own. Target
(BENCHMARKS.md): our import ≤ 3 × the raw loader's time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 3.0
HEADERS = ["email", "first_name", "last_name", "company", "job_title", "country", "industry", "stage",
           "language", "tags"]
COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "PL", "GB", "US", "CA", "AU", "Germany", "France", "美国", "日本", "BR"]
INDUSTRIES = ["lighting", "hardware", "furniture", "textiles", "packaging", "electronics", "照明", "家具"]
STAGES = ["new_lead", "prospect", "customer", "lead", "客户"]
LANGUAGES = ["en", "de", "fr", "es", "zh-Hans", "en-GB", "pt-BR"]


def generate(path: Path, rows: int, seed: int = 2026) -> None:
    """Write `rows` synthetic contacts, with the spread of values a real export has."""
    rng = random.Random(seed)
    firsts = ["Anna", "Lukas", "Emma", "Noah", "Li", "Wei", "Sofia", "Jean", "Olivia", "Hiro"]
    lasts = ["Müller", "Smith", "Rossi", "García", "Wang", "Dubois", "Nowak", "Tanaka", "Silva", "Jones"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        for i in range(rows):
            first, last = rng.choice(firsts), rng.choice(lasts)
            writer.writerow([
                f"buyer{i}@importer{i % 50_000}.example", first, last, f"{last} Trading {i % 997}",
                "Purchasing Manager", rng.choice(COUNTRIES), rng.choice(INDUSTRIES), rng.choice(STAGES),
                rng.choice(LANGUAGES), "canton-fair;sample" if i % 3 == 0 else "",
            ])


def _child(backend: str, url: str, path: str) -> None:
    """Run the import in this (child) process and print its figures as JSON."""
    from sendwell.contacts.importer import import_contacts
    from sendwell.db.migrate import upgrade
    from sendwell.db.session import make_engine, make_session_factory, transaction

    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    start = time.perf_counter()
    with transaction(factory) as session:
        result = import_contacts(session, path=Path(path), pepper=b"bench-pepper", consent="express",
                                 source="bench", topic="bench", rejected_path=False)
    elapsed = time.perf_counter() - start
    engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": elapsed, "created": result.created, "rejected": result.rejected,
                      "consents": result.consents, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "max_rss_mb": usage.ru_maxrss / 1024}))


def run_ours(backend: str, url: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", backend, url, str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_sqlite(path: Path, workdir: Path) -> float:
    """sqlite3 CLI `.import` of the same file into a table with the same columns."""
    db = workdir / "raw.db"
    db.unlink(missing_ok=True)
    columns = ", ".join(f"{h} TEXT" for h in HEADERS)
    script = f"CREATE TABLE raw ({columns});\n.import --csv --skip 1 {path} raw\n"
    start = time.perf_counter()
    subprocess.run(["sqlite3", str(db)], input=script, text=True, check=True)
    return time.perf_counter() - start


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def raw_postgresql(path: Path, url: str) -> float:
    """PostgreSQL COPY … FROM STDIN (CSV) of the same file into a table with the same columns."""
    import psycopg

    columns = ", ".join(f"{h} TEXT" for h in HEADERS)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_import_bench")
        conn.execute(f"CREATE TABLE raw_import_bench ({columns})")
        start = time.perf_counter()
        with conn.cursor() as cur, path.open("rb") as fh:
            with cur.copy("COPY raw_import_bench FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while block := fh.read(1 << 20):
                    copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE raw_import_bench")
    return elapsed


def _pg_fresh(admin_url: str, name: str) -> str:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return plain.rsplit("/", 1)[0] + f"/{name}"


def _pg_drop(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    """Run the benchmark, print the figures and write bench/results/import.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("SENDWELL_TEST_PG_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    if shutil.which("sqlite3") is None and "sqlite" in args.backends:
        print("the sqlite3 command is missing: apt-get install -y sqlite3", file=sys.stderr)
        return 1
    results: dict[str, object] = {"benchmark": "contacts.import", "rows": args.rows,
                                  "target_ratio": TARGET_RATIO, "python": platform.python_version(),
                                  "cpus": os.cpu_count(), "backends": {}}
    with tempfile.TemporaryDirectory(prefix="sendwell-bench-import-") as tmp:
        work = Path(tmp)
        csv_path = work / "contacts.csv"
        start = time.perf_counter()
        generate(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - start:.1f} s")
        for backend in [b for b in args.backends.split(",") if b]:
            if backend == "sqlite":
                raw = raw_sqlite(csv_path, work)
                ours = run_ours("sqlite", f"sqlite:///{work / 'sendwell.db'}", csv_path)
            elif backend == "postgresql":
                name = f"sendwell_bench_import_{os.getpid()}"
                url = _pg_fresh(args.pg_url, name)
                try:
                    raw = raw_postgresql(csv_path, url)
                    ours = run_ours("postgresql", url, csv_path)
                finally:
                    _pg_drop(args.pg_url, name)
            else:
                print(f"unknown backend {backend!r}", file=sys.stderr)
                return 1
            load = _load()
            ratio = ours["seconds"] / raw
            verdict = "meets" if ratio <= TARGET_RATIO else "ABOVE"
            print(f"{backend:>10}: raw loader {raw:6.1f} s ({args.rows / raw:,.0f} rows/s); "
                  f"sendwell import {ours['seconds']:6.1f} s ({args.rows / ours['seconds']:,.0f} rows/s, "
                  f"peak RSS {ours['max_rss_mb']:.0f} MB, {ours['consents']:,} consents); "
                  f"ratio {ratio:.2f} (target <= {TARGET_RATIO}: {verdict}); "
                  f"import CPU {ours['cpu_seconds']:.1f} s; load average {load}")
            results["backends"][backend] = {  # type: ignore[index]
                "raw_loader_seconds": round(raw, 3),
                "import_seconds": round(ours["seconds"], 3),
                "ratio": round(ratio, 2),
                "meets_target": ratio <= TARGET_RATIO,
                "peak_rss_mb": round(ours["max_rss_mb"], 1),
                "import_cpu_seconds": round(ours["cpu_seconds"], 2),
                "load_average": load,
                "created": ours["created"],
                "rejected": ours["rejected"],
            }
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "import.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
