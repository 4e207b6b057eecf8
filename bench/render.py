"""Per-contact render: Sendwell's full path vs a bare Jinja2 render of the same template, same run.

    .venv/bin/python bench/render.py [--seconds 3] [--rounds 3]

Contenders, interleaved in `rounds` slices so a noisy neighbour hits all alike (BENCHMARKS.md):
- ceiling: a plain (unsandboxed) Jinja2 render of the campaign body, nothing else;
- sendwell: CompiledCampaign.render — sandbox, subject + HTML, text derived from the HTML,
  the localised regional footer, css-inline — for recipients cycling through 5 regions × 5
  languages;
- lint: lint_rendered on one rendered message (what `campaigns lint` pays per sample).
Writes bench/results/render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from itertools import cycle
from pathlib import Path
from types import SimpleNamespace

from jinja2 import Environment

from sendwell.config import load_settings
from sendwell.content.footer import RecipientFacts
from sendwell.content.lint import lint_rendered
from sendwell.content.render import CompiledCampaign, Links
from sendwell.demo.run import CAMPAIGN_HTML, DEMO_IDENTITY

SUBJECT = "{{ first_name }}, our 2026 LED panels for {{ contact.company }}"
REGIONS = ("eu", "uk", "us", "ca", "other")
LANGUAGES = ("en", "de", "fr", "es", "zh-CN")


def recipients() -> list[tuple[SimpleNamespace, RecipientFacts]]:
    out = []
    for i, (region, lang) in enumerate((r, lang) for r in REGIONS for lang in LANGUAGES):
        contact = SimpleNamespace(
            id=i, email=f"buyer{i}@importer.example", first_name=f"Buyer{i}", last_name="Sample",
            company=f"Importer {i} Ltd", job_title="Purchasing", industry="lighting", country="DE",
            region=region, stage="customer" if i % 3 == 0 else "prospect", language=lang, tags=[], custom={},
            source="Canton Fair 2026",
        )
        out.append((contact, RecipientFacts("express" if i % 2 else "legitimate_interest", "Canton Fair 2026")))
    return out


def measure(fn, seconds: float) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    settings = load_settings(secret_key="bench", hash_pepper="bench", **DEMO_IDENTITY)
    bare = Environment(autoescape=True, extensions=[]).from_string(
        "<h1>{{ contact.company }}</h1><p>Dear {{ first_name }},</p><p>Our 2026 LED panel range cuts energy use "
        "by 30%.</p><p>MOQ 200 pieces, samples in 7 days. Reply to this mail for the price list.</p>" * 2
    )
    compiled = CompiledCampaign(subject=SUBJECT, html=CAMPAIGN_HTML, text="", settings=settings)
    links = Links(unsubscribe="https://mail.bright-lighting.example/u/eyJjIjoxMjN9.sig",
                  preferences="https://mail.bright-lighting.example/p/eyJjIjoxMjN9.sig")
    people = cycle(recipients())
    sample = _render(compiled, people, links)
    contenders = {
        "ceiling_bare_jinja": lambda: bare.render(contact={"company": "Importer Ltd"}, first_name="Anna"),
        "sendwell_render": lambda: _render(compiled, people, links),
        "lint_rendered": lambda: lint_rendered(sample, links),
    }
    totals = {name: [0, 0.0] for name in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            n, dt = measure(fn, args.seconds / args.rounds)
            totals[name][0] += n
            totals[name][1] += dt
    rates = {name: n / dt for name, (n, dt) in totals.items()}
    result = {
        "bench": "render",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "template_bytes": len(CAMPAIGN_HTML),
        "html_bytes_rendered": len(sample.html.encode()),
        "per_second": {k: round(v) for k, v in rates.items()},
        "ratio_render_to_bare_jinja": round(rates["sendwell_render"] / rates["ceiling_bare_jinja"], 4),
        "lint_ms_per_sample": round(1000 / rates["lint_rendered"], 3),
        "note": "shared 2-core machine; ratios matter more than absolute rates",
    }
    print(f"bare Jinja2 render (ceiling):      {rates['ceiling_bare_jinja']:>9,.0f} /s")
    print(f"Sendwell render (footer, inline):  {rates['sendwell_render']:>9,.0f} /s  "
          f"ratio {result['ratio_render_to_bare_jinja']:.3f}")
    print(f"lint of one rendered message:      {rates['lint_rendered']:>9,.0f} /s  "
          f"({result['lint_ms_per_sample']} ms per sample)")
    out = Path(__file__).with_name("results") / "render.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _render(compiled, people, links):
    contact, facts = next(people)
    return compiled.render(contact, links, facts)


if __name__ == "__main__":
    main()
