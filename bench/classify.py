"""Benchmark: classify the labelled bounce corpus repeatedly for ~3 s on one core."""

from __future__ import annotations

import email
import email.policy
import json
import os
import platform
import sys
import time
from pathlib import Path

from sendwell.feedback.classify import classify_message

TARGET = 1_000  # messages per second, one core
DURATION = 3.0


def corpus_dir() -> Path:
    """The shared bounce corpus (SENDWELL_SHARED_DIR overrides the sibling `shared/` folder)."""
    shared = os.environ.get("SENDWELL_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "corpora" / "bounces"


def main() -> int:
    """Run the benchmark, print the figure and write bench/results/classify.json."""
    files = sorted(corpus_dir().rglob("*.eml"))
    files += sorted((Path(__file__).resolve().parents[1] / "tests" / "feedback" / "fixtures").rglob("*.eml"))
    if not files:
        print(f"no .eml files under {corpus_dir()}", file=sys.stderr)
        return 1
    raws = [f.read_bytes() for f in files]
    for raw in raws:  # warm-up: regex caches, codec lookups
        classify_message(raw)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < DURATION:
        for raw in raws:
            classify_message(raw)
        count += len(raws)
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    # Ceiling in the same run: the stdlib parser alone on the same bytes, which the classifier
    # must do anyway; the ratio is the share of time spent on parsing.
    parsed = 0
    start = time.perf_counter()
    while time.perf_counter() - start < DURATION:
        for raw in raws:
            email.message_from_bytes(raw, policy=email.policy.compat32).walk().__next__()
        parsed += len(raws)
    ceiling = parsed / (time.perf_counter() - start)
    verdict = "meets" if rate >= TARGET else "BELOW"
    print(
        f"classified {count} messages in {elapsed:.2f} s: {rate:,.0f} msg/s "
        f"(target >= {TARGET:,} msg/s: {verdict}); parse-only ceiling {ceiling:,.0f} msg/s, "
        f"ratio {rate / ceiling:.2f}"
    )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "feedback.classify_message",
        "corpus_files": len(raws),
        "corpus_bytes": sum(len(r) for r in raws),
        "messages": count,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(rate, 1),
        "parse_only_ceiling_per_second": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3),
        "target_messages_per_second": TARGET,
        "meets_target": rate >= TARGET,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    (out / "classify.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if rate >= TARGET else 2


if __name__ == "__main__":
    raise SystemExit(main())
