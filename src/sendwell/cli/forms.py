"""`sendwell forms …`: signup forms with double opt-in (create, list, show, embed)."""

from __future__ import annotations

import click
from sqlalchemy import select

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.models import Topic
from sendwell.db.session import transaction
from sendwell.i18n import SUPPORTED
from sendwell.signup import service
from sendwell.signup.embed import embed_snippet


@click.group()
def forms() -> None:
    """Signup forms: hosted at BASE_URL/f/ID or embedded; people confirm by a mailed link (double opt-in)."""


@forms.command("create")
@click.option("--name", required=True, help="What the form is called (shown as its heading).")
@click.option("--topic", "topics", multiple=True, help="A topic slug people can choose (repeat for more).")
@click.option("--field", "fields", multiple=True,
              help=f"A field to ask besides the address: {', '.join(service.FIELDS)} or a custom name (repeat).")
@click.option("--language", type=click.Choice(SUPPORTED), default="en", show_default=True,
              help="The form's language; signups get it as their language.")
@click.option("--consent-text", default="", help="The consent wording shown (default: a standard sentence).")
@json_option
def forms_create(name: str, topics: tuple[str, ...], fields: tuple[str, ...], language: str, consent_text: str,
                 as_json: bool) -> None:
    """Create a signup form; prints its id."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            form = service.create_form(session, name=name, topics=list(topics), fields=list(fields),
                                       language=language, consent_text=consent_text)
            form_id = form.id
    except service.SignupError as exc:
        fail(str(exc))
    emit({"id": form_id}, as_json, f"created signup form {form_id}: {runtime.settings.base_url}/f/{form_id}")


@forms.command("list")
@json_option
def forms_list(as_json: bool) -> None:
    """List the signup forms with their pending, confirmed and expired signups."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        counts = service.form_counts(session)
        rows = [service.describe(f, counts.get(f.id)) for f in service.list_forms(session)]
    emit(rows, as_json, "\n".join(
        f"{r['id']}: {r['name']} ({r['language']}) — {r['counts']['pending']} pending, "
        f"{r['counts']['confirmed']} confirmed, {r['counts']['expired']} expired" for r in rows) or "no signup forms")


@forms.command("show")
@click.argument("form_id", type=int)
@json_option
def forms_show(form_id: int, as_json: bool) -> None:
    """Show one form: fields, topics, language, current consent text and its version."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            form = service.get_form(session, form_id=form_id)
            out = service.describe(form, service.form_counts(session).get(form.id))
    except service.FormNotFound:
        fail(f"no signup form {form_id}")
    out["url"] = f"{runtime.settings.base_url}/f/{form_id}"
    emit(out, as_json, "\n".join(f"{k}: {v}" for k, v in out.items()))


@forms.command("embed")
@click.argument("form_id", type=int)
def forms_embed(form_id: int) -> None:
    """Print the HTML snippet to paste into a website: a plain form posting to BASE_URL/f/ID."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            form = service.get_form(session, form_id=form_id)
            names = dict(session.execute(select(Topic.slug, Topic.name).where(Topic.slug.in_(form.topics))).all())
            snippet = embed_snippet(form, base_url=runtime.settings.base_url, topic_names=names)
    except service.FormNotFound:
        fail(f"no signup form {form_id}")
    click.echo(snippet, nl=False)
