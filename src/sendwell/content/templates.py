"""Saved mail templates: a name, a subject and HTML that a new campaign starts from; plus the built-in starters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import MailTemplate

STARTERS_DIR = Path(__file__).parent / "starters"
MAX_NAME = 200
MAX_SUBJECT = 500
MAX_HTML = 1_000_000


class MailTemplateError(ValueError):
    """The template cannot be stored or found as asked."""


@dataclass(frozen=True)
class Starter:
    """A built-in starter template shipped as a file (content/starters/<slug>.html)."""

    slug: str
    name: str
    subject: str
    html: str


def starters() -> list[Starter]:
    """The built-in starters; each file's first line is `<!-- name | subject -->`."""
    found = []
    for path in sorted(STARTERS_DIR.glob("*.html")):
        first, _, html = path.read_text(encoding="utf-8").partition("\n")
        name, _, subject = first.removeprefix("<!--").removesuffix("-->").partition("|")
        found.append(Starter(slug=path.stem, name=name.strip(), subject=subject.strip(), html=html.strip() + "\n"))
    return found


def starter(slug: str) -> Starter:
    """One built-in starter by its slug."""
    for s in starters():
        if s.slug == slug:
            return s
    raise MailTemplateError(f"no built-in template {slug!r}")


def _checked(name: str, subject: str, html: str) -> tuple[str, str, str]:
    name = name.strip()
    if not name:
        raise MailTemplateError("the template needs a name")
    if len(name) > MAX_NAME or len(subject) > MAX_SUBJECT or len(html) > MAX_HTML:
        raise MailTemplateError("the template is too long")
    if not html.strip():
        raise MailTemplateError("the template has no HTML")
    return name, subject, html


def create_template(session: Session, *, name: str, subject: str = "", html: str, by: str = "") -> MailTemplate:
    """Store a new template."""
    name, subject, html = _checked(name, subject, html)
    template = MailTemplate(name=name, subject=subject, html=html, created_by=by, updated_by=by)
    session.add(template)
    session.flush()
    return template


def get_template(session: Session, *, template_id: int) -> MailTemplate:
    """The template with this id; MailTemplateError when there is none."""
    template = session.get(MailTemplate, template_id)
    if template is None:
        raise MailTemplateError(f"no template with id {template_id}")
    return template


def update_template(session: Session, *, template_id: int, name: str, subject: str = "", html: str,
                    by: str = "") -> MailTemplate:
    """Change a template's name, subject and HTML."""
    template = get_template(session, template_id=template_id)
    template.name, template.subject, template.html = _checked(name, subject, html)
    template.updated_by = by
    session.flush()
    return template


def delete_template(session: Session, *, template_id: int) -> None:
    """Delete a template; campaigns made from it keep their own copy of the HTML."""
    session.delete(get_template(session, template_id=template_id))
    session.flush()


def list_templates(session: Session) -> list[MailTemplate]:
    """Every saved template, most recently changed first."""
    return list(session.scalars(select(MailTemplate).order_by(MailTemplate.updated_at.desc(), MailTemplate.id.desc())))
