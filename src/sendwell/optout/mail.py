"""The short transactional mails of the opt-out flow: thank-you, magic link, double opt-in."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from email import charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, parseaddr

from markupsafe import escape

from sendwell.config import Settings
from sendwell.mail.mime import format_address
from sendwell.i18n import translations

# A handful of mails a day: the stdlib's compat32 classes are plenty here (the campaign path
# lays out its MIME by hand for speed, mail/mime.py). CRLF for SMTP and DKIM.
_SMTP_POLICY = compat32.clone(linesep="\r\n")
_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.header_encoding = charset.QP
_UTF8_QP.body_encoding = charset.QP


def gettext_for(language: str):  # type: ignore[no-untyped-def]
    """`_(msgid, **values)` for the `pages` catalog of a language."""
    catalog = translations(language, "pages")

    def _(message: str, **values: object) -> str:
        text = catalog.gettext(message)
        if not values:
            return text
        out = text % values
        # "… Co., Ltd." at the end of a sentence must not become "Ltd..".
        if any(str(v).endswith(".") for v in values.values()):
            out = out.replace("..", ".").replace(".。", "。")
        return out

    return _


def company_lines(settings: Settings) -> list[str]:
    """The company's identity and contact details (CAN-SPAM, CASL: in every mail)."""
    contact = " · ".join(x for x in (settings.contact_email, settings.contact_phone, settings.website) if x)
    return [x for x in (settings.company_name, settings.postal_address, contact) if x]


def _compose(settings: Settings, paragraphs: list[str], link_text: str, link: str) -> tuple[str, str]:
    footer = company_lines(settings)
    text = "\n\n".join(paragraphs[:1] + [f"{link_text}\n{link}"] + paragraphs[1:]) + "\n\n-- \n" + "\n".join(footer) + "\n"
    html = (
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif;line-height:1.5;color:#1f2328\">"
        + f"<p>{escape(paragraphs[0])}</p>"
        + f'<p><a href="{escape(link)}" style="font-weight:bold">{escape(link_text)}</a></p>'
        + "".join(f"<p>{escape(p)}</p>" for p in paragraphs[1:])
        + '<p style="color:#57606a;font-size:12px;border-top:1px solid #ddd;padding-top:8px">'
        + "<br>".join(str(escape(x)) for x in footer) + "</p></body></html>"
    )
    return text, html


def thank_you(settings: Settings, *, language: str, masked: str, undo_url: str) -> tuple[str, str, str]:
    """Subject, text and HTML of the one thank-you after an unsubscribe: no marketing content."""
    _ = gettext_for(language)
    subject = _("You are unsubscribed from %(company)s", company=settings.company_name)
    paragraphs = [
        _("Thank you. %(email)s will receive no more marketing mail from %(company)s; this took effect "
          "immediately.", email=masked, company=settings.company_name),
        _("This is the only mail we send about it. If you did not mean to unsubscribe, the link above "
          "undoes it."),
    ]
    text, html = _compose(settings, paragraphs, _("Undo — keep me subscribed"), undo_url)
    return subject, text, html


def magic_link(settings: Settings, *, language: str, url: str) -> tuple[str, str, str]:
    """The mail with a preference-center link, sent when someone asks for it by address."""
    _ = gettext_for(language)
    subject = _("Your subscription settings at %(company)s", company=settings.company_name)
    paragraphs = [
        _("Someone (probably you) asked to manage the mail %(company)s sends to this address.",
          company=settings.company_name),
        _("If it was not you, ignore this mail; nothing changes."),
    ]
    text, html = _compose(settings, paragraphs, _("Manage my subscription"), url)
    return subject, text, html


def confirmation(settings: Settings, *, language: str, url: str) -> tuple[str, str, str]:
    """The double opt-in mail: the only way back after a spam complaint."""
    _ = gettext_for(language)
    subject = _("Please confirm: receive mail from %(company)s again", company=settings.company_name)
    paragraphs = [
        _("You asked to receive mail from %(company)s again. Please confirm with the link below within "
          "7 days.", company=settings.company_name),
        _("If it was not you, ignore this mail; nothing changes."),
    ]
    text, html = _compose(settings, paragraphs, _("Yes, send me mail again"), url)
    return subject, text, html


def build(settings: Settings, *, to_address: str, to_name: str, subject: str, text: str, html: str,
          signer: object = None) -> tuple[bytes, str]:
    """A transactional text+HTML message (no List-Unsubscribe: it is not marketing) and its Message-ID."""
    msg = MIMEMultipart("alternative")
    from_name, from_addr = parseaddr(settings.from_)
    msg["From"] = format_address(from_name, from_addr)
    msg["To"] = format_address(to_name, to_address)
    msg["Subject"] = Header(" ".join(subject.split()), _UTF8_QP, header_name="Subject")
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    message_id = f"<optout.{secrets.token_hex(8)}@{settings.sender_domain}>"
    msg["Message-ID"] = message_id
    # RFC 3834 §5: machine-sent, so vacation responders do not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.attach(MIMEText(text, "plain", _UTF8_QP))
    msg.attach(MIMEText(html, "html", _UTF8_QP))
    data = msg.as_bytes(policy=_SMTP_POLICY)
    if signer is not None:
        data = signer.sign(data) + data  # type: ignore[attr-defined]
    return data, message_id
