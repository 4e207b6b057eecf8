"""The audience part of `sendwell demo`: topics, several consent kinds, an XLSX import with Chinese
headers, a lawful basis per country, a saved multi-condition segment, export and erasure."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from sqlalchemy import func, select

from sendwell.contacts.importer import import_contacts
from sendwell.contacts.records import ensure_topic
from sendwell.contacts.service import erase_contact, export_contacts
from sendwell.db.models import Consent, Contact
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.segments.service import count_segment, create_segment

TOPICS = {
    "led-lighting": "LED lighting",
    "smart-home": "Smart home controls",
    "product-launches": "Product launches only",
}
SEGMENT_NAME = "eu-buyers-not-clicking"
SEGMENT = ("industry in (furniture, lighting) and stage in (prospect, customer) and region = eu "
           "and consent in (express, soft_opt_in) and not clicked within 180 days")
# (country, consent kind, days since the consent) — a spread that shows each country's rule.
FAIR_BUYERS = [
    ("DE", "express", 10), ("DE", "legitimate_interest_b2b", 10), ("DE", "soft_opt_in", 40),
    ("FR", "legitimate_interest_b2b", 20), ("GB", "legitimate_interest_b2b", 30),
    ("CA", "implied_purchase", 300), ("CA", "implied_inquiry", 30), ("CA", "implied_inquiry", 250),
    ("US", "legitimate_interest_b2b", 5), ("CN", "soft_opt_in", 15), ("CN", "express", 15),
    ("IT", "soft_opt_in", 60),
]


def _write_fair_xlsx(path: Path, now: datetime, copies: int = 3) -> int:
    """A trade-fair lead sheet as a sales team in China keeps it: Chinese headers, a consent column."""
    rng = random.Random(7)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("展会线索")
    sheet.append(["邮箱", "姓名", "公司", "国家", "行业", "客户阶段", "语言", "同意类型", "同意日期", "标签"])
    rows = 0
    for n in range(copies):
        for i, (country, kind, days) in enumerate(FAIR_BUYERS):
            industry = rng.choice(["照明", "家具", "lighting", "furniture"])
            sheet.append([f"fair{n}-{i}@buyer-{country.lower()}{i}.example", f"Buyer {n}{i}",
                          f"{country} Import Co {i}", country, industry, rng.choice(["意向客户", "客户"]),
                          {"DE": "de-DE", "FR": "fr", "CN": "zh-Hans-CN", "IT": "it"}.get(country, "en"),
                          kind, (now - timedelta(days=days)).date().isoformat(), "canton-fair-2026"])
            rows += 1
    book.save(path)
    return rows


def run_audience_demo(runtime: Runtime, data_dir: Path, unsubscribed: list[str], say: Any = print) -> dict[str, Any]:
    """Seed topics and consent kinds, import an XLSX, save and count a segment, export, erase."""
    now = datetime.now(timezone.utc)
    pepper = runtime.settings.pepper
    xlsx = data_dir / "canton-fair-leads.xlsx"
    _write_fair_xlsx(xlsx, now)
    with transaction(runtime.factory) as session:
        for slug, name in TOPICS.items():
            ensure_topic(session, slug=slug, name=name)
        imported = import_contacts(session, path=xlsx, pepper=pepper, source="Canton Fair 2026 lead sheet",
                                   consent_source="trade_fair", topic="smart-home",
                                   wording="Yes, send me product news from Ningbo Bright Lighting",
                                   region_map=runtime.settings.region_overrides, now=now)
        consent_kinds = dict(session.execute(
            select(Consent.kind, func.count()).group_by(Consent.kind).order_by(Consent.kind)).all())
        create_segment(session, name=SEGMENT_NAME, expression=SEGMENT, replace=True)
        segment_counts = count_segment(session, expression="@" + SEGMENT_NAME, now=now)
        fair_counts = count_segment(session, expression="tag = canton-fair-2026 and topic = smart-home", now=now)
    say(f"12. Imported {imported.created} trade-fair leads from {xlsx.name} (Chinese headers, "
        f"{len(set(k for _, k, _ in FAIR_BUYERS))} consent kinds); lawful basis per country leaves "
        f"{fair_counts['reachable']} of {fair_counts['matching']} reachable")
    say(f"13. Saved segment @{SEGMENT_NAME}: {segment_counts['matching']} match, "
        f"{segment_counts['reachable']} reachable now")

    export_path = data_dir / "contacts-export.xlsx"
    with transaction(runtime.factory) as session:
        exported = export_contacts(session, path=export_path)
        total = session.scalar(select(func.count()).select_from(Contact)) or 0
    erased: dict[str, Any] = {}
    if unsubscribed:
        with transaction(runtime.factory) as session:
            result = erase_contact(session, email=unsubscribed[0], pepper=pepper)
        again = data_dir / "reimport-erased.csv"
        again.write_text(f"email,company\n{unsubscribed[0]},Re-imported Ltd\n", encoding="utf-8")
        with transaction(runtime.factory) as session:
            reimport = import_contacts(session, path=again, pepper=pepper, consent="express", rejected_path=False)
        erased = {"address": unsubscribed[0], "found": result.found,
                  "suppression_reason": result.suppression_reason,
                  "reimport_kept_out": reimport.suppressed, "reimport_created": reimport.created}
    say(f"14. Exported {exported} of {total} contacts to {export_path.name} (suppressed left out); "
        f"erased {erased.get('address', 'nobody')} and a re-import kept it out")
    return {
        "topics": list(TOPICS),
        "xlsx_imported": imported.created,
        "consent_kinds": consent_kinds,
        "fair_leads": fair_counts,
        "segment": {"name": SEGMENT_NAME, "expression": SEGMENT, **segment_counts},
        "exported": exported,
        "contacts_before_export": total,
        "export_file": str(export_path),
        "erasure": erased,
    }


def format_audience(audience: dict[str, Any]) -> list[str]:
    """Lines for the demo's closing summary."""
    seg = audience["segment"]
    fair = audience["fair_leads"]
    lines = [
        f"Audience: topics {', '.join(audience['topics'])}; consents by kind "
        + ", ".join(f"{k} {v}" for k, v in audience["consent_kinds"].items()),
        f"    trade-fair XLSX: {audience['xlsx_imported']} imported, {fair['reachable']} reachable, "
        f"{fair['no_lawful_basis']} without a lawful basis for their country (or lapsed)",
        f"    segment @{seg['name']}: {seg['matching']} match, {seg['reachable']} reachable — {seg['expression']}",
        f"    export: {audience['exported']} of {audience['contacts_before_export']} contacts (suppressed left out)",
    ]
    if audience["erasure"]:
        er = audience["erasure"]
        lines.append(f"    erased {er['address']} (suppression kept: {er['suppression_reason']}); "
                     f"re-import kept out {er['reimport_kept_out']}")
    return lines
