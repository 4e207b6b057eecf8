"""Segment expressions such as `region = eu and stage in (prospect, customer)`, compiled to SQL.

Grammar (case-insensitive keywords):
    expr  := term (("and" | "or") term)*        -- "and" binds tighter than "or"
    term  := "not" term | "(" expr ")" | FIELD OP VALUE
    OP    := "=" | "!=" | "in" | "not in"
    VALUE := word | 'quoted' | "quoted" | "(" value ("," value)* ")"

A hand-written recursive-descent parser: the grammar is tiny, and a parser library would
add a dependency while giving worse error messages for our users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import Boolean

from sendwell.contacts.regions import REGIONS, parse_country
from sendwell.db.models import Contact, Stage, Subscription, Topic


class SegmentError(ValueError):
    """The expression cannot be parsed or names an unknown field or value."""


# field name -> Contact column (plain equality fields)
COLUMNS = {
    "industry": Contact.industry,
    "stage": Contact.stage,
    "country": Contact.country,
    "region": Contact.region,
    "language": Contact.language,
    "company": Contact.company,
    "job_title": Contact.job_title,
}
SPECIAL = ("tag", "topic", "email_domain")
FIELDS = tuple(COLUMNS) + SPECIAL

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>!=|=|\(|\)|,)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
      | (?P<word>[^\s=!(),'"]+)
    )""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str  # op | str | word
    text: str
    pos: int


def _tokenise(source: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise SegmentError(f"unexpected character {source[pos:].strip()[:1]!r} at position {pos + 1}")
        if match.group("op"):
            tokens.append(_Tok("op", match.group("op"), match.start("op")))
        elif match.group("sq") is not None or match.group("dq") is not None:
            text = match.group("sq") if match.group("sq") is not None else match.group("dq")
            tokens.append(_Tok("str", text, match.start()))
        else:
            tokens.append(_Tok("word", match.group("word"), match.start("word")))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenise(source)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise SegmentError(f"expression ends too early: {self.source!r}")
        self.i += 1
        return tok

    def is_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def parse(self) -> ColumnElement[bool]:
        if not self.tokens:
            return true()
        clause = self.expr()
        if self.peek() is not None:
            tok = self.peek()
            raise SegmentError(f"unexpected {tok.text!r} at position {tok.pos + 1}")  # type: ignore[union-attr]
        return clause

    def expr(self) -> ColumnElement[bool]:
        parts = [self.conj()]
        while self.is_word("or"):
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else or_(*parts)

    def conj(self) -> ColumnElement[bool]:
        parts = [self.term()]
        while self.is_word("and"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else and_(*parts)

    def term(self) -> ColumnElement[bool]:
        if self.is_word("not"):
            self.take()
            return not_(self.term())
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if tok.kind != "word":
            raise SegmentError(f"expected a field name at position {tok.pos + 1}, got {tok.text!r}")
        field = tok.text.lower()
        if field not in FIELDS:
            raise SegmentError(f"unknown segment field {tok.text!r} (known fields: {', '.join(FIELDS)})")
        op = self.operator()
        values = self.values() if op in ("in", "not in") else [self.value()]
        clause = _condition(field, values)
        return not_(clause) if op in ("!=", "not in") else clause

    def operator(self) -> str:
        tok = self.take()
        if tok.kind == "op" and tok.text in ("=", "!="):
            return tok.text
        if tok.kind == "word" and tok.text.lower() == "in":
            return "in"
        if tok.kind == "word" and tok.text.lower() == "not" and self.is_word("in"):
            self.take()
            return "not in"
        raise SegmentError(f"expected =, !=, in or not in at position {tok.pos + 1}, got {tok.text!r}")

    def value(self) -> str:
        tok = self.take()
        if tok.kind in ("word", "str"):
            return tok.text
        raise SegmentError(f"expected a value at position {tok.pos + 1}, got {tok.text!r}")

    def values(self) -> list[str]:
        self.expect("(")
        items = [self.value()]
        while self.peek() is not None and self.peek().text == "," and self.peek().kind == "op":  # type: ignore[union-attr]
            self.take()
            items.append(self.value())
        self.expect(")")
        return items

    def expect(self, text: str) -> None:
        if self.peek() is None:
            raise SegmentError(f"expected {text!r} at the end of {self.source!r}")
        tok = self.take()
        if tok.kind != "op" or tok.text != text:
            raise SegmentError(f"expected {text!r} at position {tok.pos + 1}, got {tok.text!r}")


def _condition(field: str, values: list[str]) -> ColumnElement[bool]:
    if field == "tag":
        return or_(*(TagContains(v) for v in values))
    if field == "topic":
        subscribed = (
            select(Subscription.id)
            .join(Topic, Topic.id == Subscription.topic_id)
            .where(
                Subscription.contact_id == Contact.id,
                Subscription.status == "subscribed",
                Topic.slug.in_(values),
            )
        )
        return exists(subscribed)
    if field == "email_domain":
        return or_(*(Contact.email.like("%@" + _escape_like(v.lower()), escape="\\") for v in values))
    normalised = [_normalise(field, v) for v in values]
    column = COLUMNS[field]
    return column == normalised[0] if len(normalised) == 1 else column.in_(normalised)


def _normalise(field: str, value: str) -> str:
    if field == "country":
        try:
            return parse_country(value)
        except ValueError as exc:
            raise SegmentError(f"country: {exc}") from None
    if field == "region":
        if value.lower() not in REGIONS:
            raise SegmentError(f"unknown region {value!r} (use one of {', '.join(REGIONS)})")
        return value.lower()
    if field == "stage":
        stages = [s.value for s in Stage]
        if value.lower() not in stages:
            raise SegmentError(f"unknown stage {value!r} (use one of {', '.join(stages)})")
        return value.lower()
    if field in ("industry", "language"):
        return value.lower()
    return value


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class TagContains(ColumnElement[bool]):
    """`contacts.tags` (a JSON list) contains a tag, compiled per dialect."""

    type = Boolean()
    inherit_cache = False

    def __init__(self, tag: str) -> None:
        self.tag = tag


@compiles(TagContains, "sqlite")
def _tag_sqlite(element: TagContains, compiler: Any, **kw: Any) -> str:
    param = compiler.process(_bind(element.tag), **kw)
    return f"EXISTS (SELECT 1 FROM json_each(contacts.tags) WHERE json_each.value = {param})"


@compiles(TagContains, "postgresql")
def _tag_postgresql(element: TagContains, compiler: Any, **kw: Any) -> str:
    param = compiler.process(_bind(element.tag), **kw)
    return f"(CAST(contacts.tags AS JSONB) ? {param})"


def _bind(value: str) -> ClauseElement:
    from sqlalchemy import bindparam

    return bindparam(None, value, unique=True)


def compile_segment(expression: str) -> ColumnElement[bool]:
    """The WHERE clause over `contacts` for a segment expression; SegmentError if invalid."""
    return _Parser(expression or "").parse()


def validate_segment(expression: str) -> None:
    """Raise SegmentError if the expression is invalid."""
    compile_segment(expression)


__all__ = ["SegmentError", "compile_segment", "validate_segment", "FIELDS"]
