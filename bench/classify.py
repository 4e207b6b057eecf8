"""Benchmark: classifier accuracy on the labelled bounce corpora, and its speed on one core against the parser."""

from __future__ import annotations

import csv
import email
import email.policy
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sendwell.feedback.classify import classify_message, coarse_kind

TARGET = 2_000  # messages per second, one core
DURATION = 3.0
CORPORA = ("bounces", "bounces-extra")
KINDS = ("hard", "soft", "complaint", "auto_reply", "other")


def shared_dir() -> Path:
    """The shared folder (SENDWELL_SHARED_DIR overrides the sibling `shared/` folder)."""
    shared = os.environ.get("SENDWELL_SHARED_DIR")
    return Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True)
class Sample:
    """One labelled message of a corpus."""

    corpus: str
    filename: str
    raw: bytes
    expected: str
    recipients: frozenset[str]


def load_samples(base: Path | None = None) -> list[Sample]:
    """Every labelled message of both corpora that is present on disk."""
    root = (base or shared_dir()) / "corpora"
    samples: list[Sample] = []
    for corpus in CORPORA:
        labels = root / corpus / "labels.csv"
        if not labels.is_file():
            continue
        with labels.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                path = root / corpus / row["filename"]
                rcpts = frozenset(r for r in (row.get("recipients") or "").split("|") if r)
                samples.append(Sample(corpus, row["filename"], path.read_bytes(), row["expected_kind"], rcpts))
    return samples


def score(samples: list[Sample]) -> dict[str, object]:
    """Kind accuracy (fine kinds folded onto the labels' five), per kind, confusion, recipients, soft↔hard."""
    confusion: Counter[tuple[str, str]] = Counter()
    rcpt_total = rcpt_ok = 0
    misses: list[dict[str, str]] = []
    for sample in samples:
        result = classify_message(sample.raw)
        got = coarse_kind(result.category)
        confusion[(sample.expected, got)] += 1
        if got != sample.expected:
            misses.append({"file": f"{sample.corpus}/{sample.filename}", "expected": sample.expected,
                           "got": result.category, "status": result.status or "", "reason": result.reason})
        if sample.recipients:
            rcpt_total += 1
            rcpt_ok += set(result.recipients) == sample.recipients
    total = sum(confusion.values())
    correct = sum(n for (want, got), n in confusion.items() if want == got)
    per_kind = {}
    for kind in KINDS:
        n = sum(c for (want, _), c in confusion.items() if want == kind)
        if n:
            per_kind[kind] = {"n": n, "accuracy": round(confusion[(kind, kind)] / n, 4)}
    return {
        "messages": total,
        "accuracy": round(correct / total, 4) if total else 0.0,
        "per_kind": per_kind,
        "confusion": {f"{want}->{got}": n for (want, got), n in sorted(confusion.items())},
        "recipient_labels": rcpt_total,
        "recipient_extraction": round(rcpt_ok / rcpt_total, 4) if rcpt_total else None,
        "soft_as_hard": confusion[("soft", "hard")],
        "hard_as_soft": confusion[("hard", "soft")],
        "misses": misses,
    }


def _print_score(title: str, result: dict[str, object]) -> None:
    print(f"{title}: {result['messages']} messages, kind accuracy {result['accuracy']:.1%}, "
          f"soft->hard {result['soft_as_hard']}, hard->soft {result['hard_as_soft']}, "
          f"recipients {result['recipient_extraction']}")
    for kind, figures in result["per_kind"].items():  # type: ignore[union-attr]
        print(f"  {kind:<11} n={figures['n']:<4} accuracy {figures['accuracy']:.1%}")


def _print_confusion(result: dict[str, object]) -> None:
    table = result["confusion"]
    print("confusion (rows: label, columns: classifier)")
    print("  " + " " * 11 + "".join(f"{k:>11}" for k in KINDS))
    for want in KINDS:
        cells = [table.get(f"{want}->{got}", 0) for got in KINDS]  # type: ignore[union-attr]
        if any(cells):
            print(f"  {want:<11}" + "".join(f"{n:>11}" for n in cells))


def speed(raws: list[bytes]) -> tuple[float, float]:
    """(classified msg/s, parse-only msg/s) on this one process, measured back to back."""
    for raw in raws:  # warm-up: regex caches, codec lookups
        classify_message(raw)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < DURATION:
        for raw in raws:
            classify_message(raw)
        count += len(raws)
    rate = count / (time.perf_counter() - start)
    # Ceiling in the same run: the stdlib parser alone on the same bytes, which the classifier
    # must do anyway; the ratio is the share of time spent on parsing.
    parsed = 0
    start = time.perf_counter()
    while time.perf_counter() - start < DURATION:
        for raw in raws:
            email.message_from_bytes(raw, policy=email.policy.compat32).walk().__next__()
        parsed += len(raws)
    return rate, parsed / (time.perf_counter() - start)


def main() -> int:
    """Run accuracy and speed, print them and write bench/results/classify.json."""
    samples = load_samples()
    if not samples:
        print(f"no labelled corpus under {shared_dir() / 'corpora'}", file=sys.stderr)
        return 1
    together = score(samples)
    separately = {c: score([s for s in samples if s.corpus == c]) for c in CORPORA}
    _print_score("both corpora", together)
    for corpus, result in separately.items():
        if result["messages"]:
            _print_score(corpus, result)
    _print_confusion(together)
    for miss in together["misses"]:  # type: ignore[union-attr]
        print(f"  miss {miss['file']}: want {miss['expected']}, got {miss['got']} ({miss['status']}, {miss['reason']})")
    rate, ceiling = speed([s.raw for s in samples])
    verdict = "meets" if rate >= TARGET else "BELOW"
    print(f"speed: {rate:,.0f} msg/s on one core (target >= {TARGET:,}: {verdict}); "
          f"parse-only ceiling {ceiling:,.0f} msg/s, ratio {rate / ceiling:.2f}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "feedback.classify_message",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "together": together,
        "separately": separately,
        "messages_per_second": round(rate, 1),
        "parse_only_ceiling_per_second": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3),
        "target_messages_per_second": TARGET,
        "meets_target": rate >= TARGET,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    (out / "classify.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if rate >= TARGET else 2


if __name__ == "__main__":
    raise SystemExit(main())
