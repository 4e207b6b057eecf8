"""The brand layout: a logo, two colours and header / footer HTML put around every campaign's content.

One row (id 1) in `brand_layout`. Rendering (content/render.py) puts the header before the
campaign's own HTML and the brand footer after it; the compliance footer still comes last,
added by Sendwell. The logo is stored in the database, so every process and machine serves
the same image; mail loads it from the public base URL (`/brand/logo/<version>`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from markupsafe import escape
from sqlalchemy.orm import Session

from sendwell.db.models import BrandLayout

MAX_LOGO_BYTES = 200 * 1024  # a logo in a mail: small, or clients clip and spam filters frown
MAX_HTML_CHARS = 20_000
# Magic numbers: the upload's own bytes decide its type, never its name or the browser's word.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
               (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
LOGO_PATH = "/brand/logo/"


class BrandError(ValueError):
    """The brand layout cannot take this value; `field` names the form field.

    `template` with `%(name)s` placeholders and `params` let the admin translate the words.
    """

    def __init__(self, field: str, template: str, **params: object) -> None:
        super().__init__(f"{field}: {template % params}")
        self.field, self.template, self.params = field, template, params


@dataclass(frozen=True)
class Brand:
    """What rendering needs of the brand layout: plain values, no database object."""

    logo_url: str = ""
    colour: str = ""
    background: str = ""
    header_html: str = ""
    footer_html: str = ""

    @property
    def empty(self) -> bool:
        return not (self.logo_url or self.header_html or self.footer_html)

    def header(self, *, logo_alt: str = "") -> str:
        """The header block: logo (its alt text the sender's name) and header HTML on the brand background."""
        if not (self.logo_url or self.header_html):
            return ""
        style = "padding:16px;margin:0 0 16px 0"
        if self.background:
            style += f";background:{self.background}"
        if self.colour:
            style += f";border-bottom:3px solid {self.colour}"
        logo = (f'<img src="{escape(self.logo_url)}" alt="{escape(logo_alt or "Logo")}" '
                'style="max-height:60px;max-width:240px;border:0">'
                if self.logo_url else "")
        return f'<div class="brand-header" style="{style}">{logo}{self.header_html}</div>'

    def footer(self) -> str:
        if not self.footer_html:
            return ""
        rule = f";border-top:1px solid {self.colour}" if self.colour else ""
        return f'<div class="brand-footer" style="padding:12px 0;margin:16px 0 0 0{rule}">{self.footer_html}</div>'


def logo_type(data: bytes) -> str:
    """The media type of a PNG, JPEG or GIF image; BrandError for anything else or too large."""
    if not data:
        raise BrandError("logo", "the file is empty")
    if len(data) > MAX_LOGO_BYTES:
        raise BrandError("logo", "the image is %(size)s KB; the limit is %(limit)s KB", size=len(data) // 1024,
                         limit=MAX_LOGO_BYTES // 1024)
    for magic, media_type in _SIGNATURES:
        if data.startswith(magic):
            return media_type
    raise BrandError("logo", "only PNG, JPEG and GIF images can be used")


def _colour(field: str, value: str) -> str:
    value = value.strip()
    if value and not _COLOUR.fullmatch(value):
        raise BrandError(field, "%(value)s is not a colour like #1a5fb4", value=value[:20])
    return value.lower()


def get_layout(session: Session) -> BrandLayout | None:
    """The stored brand layout row, or None when none was saved."""
    return session.get(BrandLayout, 1)


def save_layout(session: Session, *, colour: str, background: str, header_html: str, footer_html: str,
                logo: bytes | None = None, remove_logo: bool = False, by: str = "") -> BrandLayout:
    """Store the brand layout; a new `logo` (bytes) replaces the old one, `remove_logo` drops it."""
    for field, value in (("header_html", header_html), ("footer_html", footer_html)):
        if len(value) > MAX_HTML_CHARS:
            raise BrandError(field, "longer than %(n)s characters", n=MAX_HTML_CHARS)
    layout = get_layout(session) or BrandLayout(id=1)
    layout.colour, layout.background = _colour("colour", colour), _colour("background", background)
    layout.header_html, layout.footer_html, layout.updated_by = header_html.strip(), footer_html.strip(), by
    if logo:
        layout.logo_type = logo_type(logo)
        layout.logo, layout.logo_version = logo, hashlib.sha256(logo).hexdigest()[:16]
    elif remove_logo:
        layout.logo, layout.logo_type, layout.logo_version = None, "", ""
    session.add(layout)
    session.flush()
    return layout


def load_brand(session: Session, *, base_url: str) -> Brand | None:
    """The brand layout as rendering uses it; None when there is none to apply."""
    layout = get_layout(session)
    if layout is None:
        return None
    logo_url = f"{base_url.rstrip('/')}{LOGO_PATH}{layout.logo_version}" if layout.logo else ""
    brand = Brand(logo_url=logo_url, colour=layout.colour, background=layout.background,
                  header_html=layout.header_html, footer_html=layout.footer_html)
    return None if brand.empty else brand


def logo(session: Session) -> tuple[bytes, str, str] | None:
    """The logo's bytes, media type and version, or None when there is no logo.

    Any version in the URL gets the current logo: mails sent before a change still show one.
    """
    layout = get_layout(session)
    if layout is None or not layout.logo:
        return None
    return layout.logo, layout.logo_type, layout.logo_version
