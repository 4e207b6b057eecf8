"""The demo's content part: lint the campaigns it sent, preview one mail per region × language,
and show the send gate refusing a non-compliant draft."""

from __future__ import annotations

from typing import Any

from sendwell.campaigns.service import create_campaign
from sendwell.content.service import ComplianceError, assert_sendable, lint_campaign, preview_campaign
from sendwell.db.session import transaction
from sendwell.runtime import Runtime

# What a careless template might do: a fake reply subject and a footer hidden by CSS.
NON_COMPLIANT_HTML = """\
<style>.sendwell-footer { display: none }</style>
<p>Dear {{ contact.first_name }}, following up on our call: prices go up next week.</p>
"""


def content_demo(runtime: Runtime, campaign_ids: list[int], say: Any = print) -> dict[str, Any]:
    """Lint results of the sent campaigns, preview files, and the refusal of a bad draft."""
    settings = runtime.settings
    previews_dir = settings.data_dir / "previews"
    previews_dir.mkdir(parents=True, exist_ok=True)
    with transaction(runtime.factory) as session:
        reports = [lint_campaign(session, settings=settings, campaign_id=cid) for cid in campaign_ids]
        previews = preview_campaign(session, settings=settings, campaign_id=campaign_ids[0])
        draft = create_campaign(session, settings=settings, name="Careless draft (never sent)",
                                subject="RE: our call", html=NON_COMPLIANT_HTML, segment="region = us")
        try:
            assert_sendable(session, settings=settings, campaign_id=draft.id)
            refused: list[str] = []
        except ComplianceError as exc:
            refused = [f.line() for f in exc.report.errors]
        draft_id = draft.id
    for preview in previews:
        stem = f"campaign-{campaign_ids[0]}-{preview['label'].replace('/', '-')}"
        (previews_dir / f"{stem}.eml").write_text(preview["eml"], encoding="ascii")
        (previews_dir / f"{stem}.html").write_text(preview["html"], encoding="utf-8")
    say(f"11. Lint: {', '.join(_short(r) for r in reports)}; the send gate refused draft {draft_id} "
        f"({len(refused)} blocking findings); {len(previews)} previews (one per region × language) in {previews_dir}")
    return {
        "campaigns": [{"id": r.campaign_id, "ok": r.ok, "errors": len(r.errors), "warnings": [f.line() for f in
                                                                                             r.warnings],
                       "samples": len(r.samples), "rendered": r.rendered} for r in reports],
        "refused": {"id": draft_id, "findings": refused},
        "previews_dir": str(previews_dir),
        "previews": len(previews),
    }


def _short(report: Any) -> str:
    return f"campaign {report.campaign_id} {'passes' if report.ok else 'FAILS'} ({len(report.warnings)} warnings)"


def format_content_summary(content: dict[str, Any]) -> list[str]:
    """Lines for the demo's closing summary."""
    lines = []
    for row in content["campaigns"]:
        verdict = "passes the compliance lint" if row["ok"] else f"FAILS the compliance lint ({row['errors']})"
        count = len(row["warnings"])
        lines.append(f"Lint, campaign {row['id']}: {verdict} over {row['rendered']} sample renders "
                     f"({row['samples']} region × language groups); {count} readability warning{'s' * (count != 1)}")
        lines.extend(f"    {w}" for w in row["warnings"])
    lines.append(f"Lint, draft {content['refused']['id']}: refused by the send gate:")
    lines.extend(f"    {line}" for line in content["refused"]["findings"])
    lines.append(f"Previews (.eml/.html): {content['previews_dir']}")
    return lines
