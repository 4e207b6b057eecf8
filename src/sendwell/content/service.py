"""Lint and preview a campaign: the use cases behind `campaigns lint|preview|send` and the web UI.

Results are plain data (dicts, strings), ready for JSON, a template or a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendwell.config import Settings
from sendwell.content.brand import load_brand
from sendwell.content.footer import RecipientFacts
from sendwell.content.lint import (
    RESERVED_ADDRESS_ENDINGS,
    Finding,
    LintReport,
    lint_empty_variables,
    lint_rendered,
    lint_settings,
    lint_templates,
    lint_transactional,
    merge,
    render_failure,
    template_error,
)
from sendwell.content.recipients import recipient_facts
from sendwell.content.render import CompiledCampaign, Links, TemplateError
from sendwell.db.models import Campaign, Contact, TransactionalConfirmation
from sendwell.mail.mime import build_message
from sendwell.i18n import choose_language
from sendwell.segments.expression import compile_segment

# When the segment is empty, lint and preview still show one mail per footer variant.
SYNTHETIC_SAMPLES = (
    ("eu", "de", "DE", "Anna", "Licht GmbH"),
    ("uk", "en", "GB", "Oliver", "Bright Homes Ltd"),
    ("us", "en", "US", "Emily", "Lumen Supply Inc."),
    ("ca", "fr", "CA", "Julie", "Éclairage Nord inc."),
    ("other", "zh_Hans", "CN", "伟", "上海照明有限公司"),
)


class ContentError(ValueError):
    """The campaign or contact to lint or preview does not exist."""


class ComplianceError(ValueError):
    """The campaign fails the blocking compliance lint and must not be sent."""

    def __init__(self, report: LintReport) -> None:
        self.report = report
        super().__init__(
            f"campaign {report.campaign_id} fails the compliance lint ({len(report.errors)} blocking "
            f"finding{'s' if len(report.errors) != 1 else ''}); nothing was sent"
        )


@dataclass
class Sample:
    """One recipient a campaign is rendered for: a real contact or a synthetic stand-in."""

    contact: Any
    facts: RecipientFacts
    synthetic: bool = False
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = f"{self.contact.region or 'other'}/{choose_language(self.contact.language)}"


def _campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ContentError(f"no campaign with id {campaign_id}")
    return campaign


def _synthetic(index: int, region: str, language: str, country: str, first_name: str, company: str) -> Sample:
    contact = SimpleNamespace(
        id=-(index + 1), email=f"sample-{region}@example.com", first_name=first_name, last_name="Sample",
        company=company, job_title="Purchasing manager", industry="lighting", country=country, region=region,
        stage="prospect", language=language, tags=[], custom={}, source="sample data",
    )
    # No consent recorded: the strictest footer (US advertisement notice, legitimate interest).
    return Sample(contact, RecipientFacts(consent_kind=None, data_source="sample data"), synthetic=True)


LINT_SAMPLE_LIMIT = 200  # rendered samples per lint run (a few ms each)


def sample_recipients(session: Session, *, campaign: Campaign, thorough: bool = False) -> list[Sample]:
    """One contact per region × language present in the campaign's segment (synthetic if none).

    `thorough` (the lint): one per region × language × country × stage × industry, up to
    LINT_SAMPLE_LIMIT, so a template branch on any of those is rendered at least once.
    """
    segment = compile_segment(campaign.segment_expr)
    columns = [Contact.region, Contact.language]
    if thorough:
        columns += [Contact.country, Contact.stage, Contact.industry]
    first_ids = select(func.min(Contact.id).label("id")).where(segment).group_by(*columns)
    contacts = list(session.scalars(
        select(Contact).where(Contact.id.in_(select(first_ids.subquery().c.id).order_by("id")
                                             .limit(LINT_SAMPLE_LIMIT if thorough else None)))
        .order_by(Contact.id)
    ))
    facts = recipient_facts(session, contact_ids=[c.id for c in contacts])
    samples: dict[Any, Sample] = {}
    for contact in contacts:
        sample = Sample(contact, facts[contact.id])
        # `de` and `de-AT` get the same mail: one preview per label.
        samples.setdefault(contact.id if thorough else sample.label, sample)
    if not samples:
        samples = {s.label: s for s in (_synthetic(i, *row) for i, row in enumerate(SYNTHETIC_SAMPLES))}
    return sorted(samples.values(), key=lambda s: (s.label, getattr(s.contact, "id", 0)))


def _links(settings: Settings, sample: Sample, purpose: str) -> Links:
    # Never real tokens: a click on a preview must not unsubscribe anybody.
    tag = sample.label.replace("/", "-")
    return Links(unsubscribe=f"{settings.base_url}/u/{purpose}-{tag}",
                 preferences=f"{settings.base_url}/p/{purpose}-{tag}",
                 keep=f"{settings.base_url}/k/{purpose}-{tag}")


def lint_campaign(session: Session, *, settings: Settings, campaign_id: int) -> LintReport:
    """Compliance errors and readability warnings for a campaign, over its audience samples."""
    campaign = _campaign(session, campaign_id)
    found: list[tuple[Finding, str | None]] = [
        (f, None) for f in lint_templates(subject=campaign.subject, html=campaign.html, text=campaign.text)
    ]
    samples = sample_recipients(session, campaign=campaign, thorough=True)
    regions = {s.contact.region for s in samples}
    found += [(f, None) for f in lint_settings(settings, regions=regions, kind=campaign.kind,
                                               real_recipients=_reaches_real_addresses(session, campaign))]
    found += [(f, None) for f in _audience_findings(session, campaign)]
    found += [(f, None) for f in _personalisation_findings(session, settings, campaign, samples)]
    if not any(f.code == "template-syntax" for f, _ in found):
        try:
            brand = load_brand(session, base_url=settings.base_url)
            compiled = CompiledCampaign(subject=campaign.subject, html=campaign.html, text=campaign.text,
                                        settings=settings, kind=campaign.kind, brand=brand)
        except TemplateError as exc:
            found.append((template_error(str(exc)), None))
        else:
            static_unknown = any(f.code == "unknown-variable" for f, _ in found)
            lenient: CompiledCampaign | None = None
            for sample in samples:
                links = _links(settings, sample, "lint")
                try:
                    rendered = compiled.render(sample.contact, links, sample.facts)
                except TemplateError as exc:
                    failure = render_failure(exc)
                    if not (failure.code == "unknown-variable" and static_unknown):  # said once is enough
                        found.append((failure, sample.label))
                    if failure.code == "render-budget":
                        break  # each further sample could take the whole time budget again
                    if failure.code != "unknown-variable":
                        continue
                    # Unknown names render empty here, so the other checks still run in this pass.
                    lenient = lenient or CompiledCampaign(subject=campaign.subject, html=campaign.html,
                                                          text=campaign.text, settings=settings,
                                                          kind=campaign.kind, lenient=True, brand=brand)
                    try:
                        rendered = lenient.render(sample.contact, links, sample.facts)
                    except TemplateError:
                        continue
                found += [(f, sample.label) for f in lint_rendered(rendered, links)]
    labels = sorted({s.label for s in samples})
    return LintReport(campaign_id=campaign.id, samples=labels, rendered=len(samples), findings=merge(found))


def _audience_findings(session: Session, campaign: Campaign) -> list[Finding]:
    """EU/UK contacts without a recorded data source cannot be told it (GDPR Art 14(2)(f))."""
    missing = session.scalar(
        select(func.count()).select_from(Contact).where(
            compile_segment(campaign.segment_expr), Contact.region.in_(("eu", "uk")), Contact.source == ""
        )
    )
    if not missing:
        return []
    return [Finding("data-source", "warning",
                    "%(n)s EU/UK contact(s) in the segment have no recorded source; their data notice "
                    "cannot say where the data came from (GDPR Art 14(2)(f))", params={"n": missing})]


def _reaches_real_addresses(session: Session, campaign: Campaign) -> bool:
    """Whether the segment has an address outside the reserved test domains (RFC 2606, RFC 6761)."""
    email = func.lower(Contact.email)
    outside = [~email.endswith(ending) for ending in RESERVED_ADDRESS_ENDINGS]
    return session.scalar(
        select(Contact.id).where(compile_segment(campaign.segment_expr), *outside).limit(1)) is not None


def _personalisation_findings(session: Session, settings: Settings, campaign: Campaign,
                              samples: list[Sample]) -> list[Finding]:
    """Variables that print empty for some samples, and a transactional label that needs an admin."""
    found = lint_empty_variables(subject=campaign.subject, html=campaign.html, text=campaign.text,
                                 contacts=[s.contact for s in samples], links=_links(settings, samples[0], "lint"),
                                 settings=settings) if samples else []
    if campaign.kind == "transactional":
        found += lint_transactional(subject=campaign.subject, html=campaign.html, text=campaign.text,
                                    segment=campaign.segment_expr,
                                    confirmed=session.get(TransactionalConfirmation, campaign.id) is not None)
    return found


def assert_sendable(session: Session, *, settings: Settings, campaign_id: int) -> LintReport:
    """The send path's gate: the lint report, or ComplianceError when anything blocks."""
    report = lint_campaign(session, settings=settings, campaign_id=campaign_id)
    if not report.ok:
        raise ComplianceError(report)
    return report


def preview_campaign(
    session: Session, *, settings: Settings, campaign_id: int, contact_email: str | None = None,
    contact_id: int | None = None, region: str | None = None, language: str | None = None,
) -> list[dict[str, Any]]:
    """Rendered mails (subject, HTML, text, the whole .eml) for one contact or one per sample.

    `region` / `language` keep the samples of that region / language; when the audience has
    none, a synthetic stand-in of that region and language is rendered instead.
    """
    campaign = _campaign(session, campaign_id)
    if contact_email or contact_id is not None:
        if contact_id is not None:
            contact = session.get(Contact, contact_id)
            if contact is None:
                raise ContentError(f"no contact with id {contact_id}")
        else:
            assert contact_email is not None
            contact = session.scalar(select(Contact).where(func.lower(Contact.email) == contact_email.strip().lower()))
            if contact is None:
                raise ContentError(f"no contact with email {contact_email!r}")
        samples = [Sample(contact, recipient_facts(session, contact_ids=[contact.id])[contact.id])]
    else:
        samples = sample_recipients(session, campaign=campaign)
        if region or language:
            samples = _filter_samples(samples, region=region, language=language)
    compiled = CompiledCampaign(subject=campaign.subject, html=campaign.html, text=campaign.text,
                                settings=settings, kind=campaign.kind,
                                brand=load_brand(session, base_url=settings.base_url))
    domain = settings.sender_domain
    previews = []
    for sample in samples:
        links = _links(settings, sample, "preview")
        c = sample.contact
        try:
            rendered = compiled.render(c, links, sample.facts)
        except TemplateError as exc:
            previews.append({"label": sample.label, "contact": _contact_data(sample), "error": str(exc),
                             "findings": [render_failure(exc).as_dict()]})
            continue
        eml = build_message(
            from_header=settings.from_,
            to_name=" ".join(x for x in (c.first_name, c.last_name) if x),
            to_address=c.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<preview.{campaign.id}.{abs(c.id)}@{domain}>",
            list_unsubscribe=[links.unsubscribe, f"mailto:unsubscribe+preview@{domain}?subject=unsubscribe"],
            list_id=f"{settings.list_id_name} <{settings.list_id_name}.{domain}>",
            feedback_id=f"{campaign.id}:{campaign.kind}:{domain}",
        )
        previews.append({
            "label": sample.label,
            "contact": _contact_data(sample),
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "eml": eml.decode("ascii", "replace"),
            "size": len(eml),
            "findings": [f.as_dict() for f in merge([(f, None) for f in lint_rendered(rendered, links)])],
        })
    return previews


def _filter_samples(samples: list[Sample], *, region: str | None, language: str | None) -> list[Sample]:
    def fits(contact: Any) -> bool:
        return ((not region or (contact.region or "other") == region)
                and (not language or choose_language(contact.language) == language))

    kept = [s for s in samples if fits(s.contact)]
    if kept:
        return kept
    # Nobody in the audience fits: stand-ins show that region's footer in that language.
    rows = [row for row in SYNTHETIC_SAMPLES if not region or row[0] == region] or [
        (region or "other", "en", "", "Alex", "Sample Trading Co.")]
    return [_synthetic(i, row[0], language or row[1], *row[2:]) for i, row in enumerate(rows)]


def _contact_data(sample: Sample) -> dict[str, Any]:
    c = sample.contact
    return {"id": None if sample.synthetic else c.id, "email": c.email, "region": c.region,
            "language": choose_language(c.language), "country": c.country, "synthetic": sample.synthetic,
            "consent_kind": sample.facts.consent_kind, "data_source": sample.facts.data_source}
