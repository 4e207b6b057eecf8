"""The HTML snippet a website pastes to show a signup form: a plain <form> posting to /f/ID, no JavaScript."""

from __future__ import annotations

from markupsafe import escape

from sendwell.db.models import SignupForm
from sendwell.i18n import translations
from sendwell.signup.service import current_consent

HONEYPOT = "url"  # a field people never see; bots fill in every field they find
FIELD_LABELS = {"first_name": "First name", "last_name": "Last name", "company": "Company", "country": "Country",
                "industry": "Industry", "job_title": "Job title"}


def field_label(key: str) -> str:
    """The English label of a form field (translated where shown); custom fields show their own name."""
    return FIELD_LABELS.get(key) or key.replace("_", " ").capitalize()


def embed_snippet(form: SignupForm, *, base_url: str, topic_names: dict[str, str]) -> str:
    """The form as HTML in the form's language; its answer is the hosted "check your inbox" page."""
    _ = translations(form.language, "pages").gettext
    lines = [f'<form method="post" action="{escape(base_url)}/f/{form.id}" accept-charset="utf-8">',
             f'  <p><label>{escape(_("Email address"))}<br>'
             '<input type="email" name="email" required maxlength="320" autocomplete="email"></label></p>']
    for key in form.fields:
        lines.append(f'  <p><label>{escape(_(field_label(key)))}<br>'
                     f'<input type="text" name="{escape(key)}" maxlength="200"></label></p>')
    # Off-screen rather than display:none: some bots skip fields that are hidden outright.
    lines.append(f'  <p style="position:absolute;left:-10000px" aria-hidden="true"><label>'
                 f'{escape(_("Leave this field empty"))} <input type="text" name="{HONEYPOT}" tabindex="-1" '
                 'autocomplete="off"></label></p>')
    if form.topics:
        lines.append(f'  <fieldset><legend>{escape(_("What would you like to receive?"))}</legend>')
        lines += [f'    <label><input type="checkbox" name="topic" value="{escape(slug)}"> '
                  f'{escape(topic_names.get(slug, slug))}</label><br>' for slug in form.topics]
        lines.append("  </fieldset>")
    lines.append(f'  <p><label><input type="checkbox" name="consent" value="yes" required> '
                 f'{escape(current_consent(form))}</label></p>')
    lines.append(f'  <p><button type="submit">{escape(_("Sign up"))}</button></p>')
    lines.append("</form>")
    return "\n".join(lines) + "\n"
