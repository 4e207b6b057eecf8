"""Segment rules, as text or JSON, parsed to a small tree and compiled to parameterised SQL.

One cohesive thing: the grammar, its parser and its compiler to SQL belong together.

Text grammar (case-insensitive keywords):
    expr  := conj ("or" conj)*                  -- "and" binds tighter than "or"
    conj  := term ("and" term)*
    term  := "not" term | "(" expr ")"
           | ("opened" | "clicked" | "engaged") "within" NUMBER ["days"]
           | FIELD OP VALUE
           | "@" (word | 'quoted' | "quoted")       -- a saved segment, by name
    OP    := "=" | "!=" | "in" | "not in"
    VALUE := word | 'quoted' | "quoted" | "(" value ("," value)* ")"
    FIELD := industry | stage | country | region | language | company | job_title | tag
           | topic | email_domain | consent | hygiene | custom.<name>

JSON form of the same rules:
    {"and": [...]} | {"or": [...]} | {"not": {...}}
    | {"field": "industry", "op": "in", "value": ["furniture", "lighting"]}
    | {"engagement": "clicked", "within_days": 180}
    | {"segment": "Trade fair buyers"}

A saved segment is named with `@`: `@eu-prospects`, or quoted when its name has spaces,
`@'Trade fair buyers'`. The service (resolve_segment) replaces references by the saved rules
before anything is compiled or stored, so a compiled rule never depends on a saved one.

Values only ever reach SQL as bound parameters. A hand-written recursive-descent parser:
the grammar is tiny, and a parser library would add a dependency while giving worse error
messages for our users.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from sqlalchemy import and_, bindparam, exists, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import Boolean

from sendwell.contacts.fields import parse_language
from sendwell.contacts.lawful_basis import normalise_kind
from sendwell.contacts.regions import REGIONS, parse_country
from sendwell.contacts.vocabulary import INDUSTRY, STAGE, Vocab, load_vocabulary, slug
from sendwell.db.models import AddressFlag, Consent, Contact, Event, Reengagement, Subscription, Topic
from sendwell.i18n.messages import N_, english, message


class SegmentError(ValueError):
    """The expression cannot be parsed or names an unknown field or value.

    `template` has %(name)s placeholders filled from `params` (sendwell.i18n.messages): str(exc) is the
    English text, and the admin shows `template` translated. Without params the text is taken as it is.
    """

    def __init__(self, template: str, **params: Any) -> None:
        super().__init__(english(template, params) if params else template)
        self.template = template if params else template.replace("%", "%%")
        self.params = params


def _place(where: str) -> Any:
    """A place in a rule as a message param: "position 9" is words to translate, a JSON path is shown as it is."""
    found = re.fullmatch(r"position (\d+)", where)
    return message(N_("position %(pos)s"), pos=int(found[1])) if found else where


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
SPECIAL = ("tag", "topic", "email_domain", "consent", "hygiene")
# `hygiene = …` (docs/hygiene.md): the sunset flow's states and address cleaning's flags.
HYGIENE_STATES = ("reengagement", "unasked")
HYGIENE_FLAGS = ("role_address", "disposable", "typo_suspected", "no_mx")
HYGIENE_VALUES = HYGIENE_STATES + HYGIENE_FLAGS
FIELDS = tuple(COLUMNS) + SPECIAL + ("custom.<name>",)
ENGAGEMENTS = ("opened", "clicked", "engaged")
OPERATORS = ("=", "!=", "in", "not in")
MAX_DAYS = 36500
_CUSTOM_NAME = re.compile(r"^[^\s\"'=!(),]{1,100}$")


# ------------------------------------------------------------------ the tree
@dataclass(frozen=True)
class Cond:
    field: str
    op: str
    values: tuple[str, ...]
    pos: str = ""  # "position 12" or "$.and[1]" for messages
    value_pos: tuple[str, ...] = ()  # where each value is, for messages about a bad value


@dataclass(frozen=True)
class Engagement:
    kind: str
    days: int
    pos: str = ""


@dataclass(frozen=True)
class Ref:
    name: str
    pos: str = ""


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Union[Cond, Engagement, Ref, And, Or, Not]


@dataclass
class Vocabularies:
    """Industries and stages to check values against; strict when loaded from the database."""

    industries: Vocab
    stages: Vocab
    strict: bool = False

    @classmethod
    def builtin(cls) -> Vocabularies:
        return cls(load_vocabulary(None, INDUSTRY), load_vocabulary(None, STAGE), strict=False)

    @classmethod
    def from_session(cls, session: Any) -> Vocabularies:
        return cls(load_vocabulary(session, INDUSTRY), load_vocabulary(session, STAGE), strict=True)


# ------------------------------------------------------------------ text form
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>!=|=|\(|\)|,)
      | @(?:'(?P<rsq>[^']*)'|"(?P<rdq>[^"]*)"|(?P<rword>[^\s=!(),'"]+))
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
            bad = source[pos:].strip()[:1]
            where = pos + len(source[pos:]) - len(source[pos:].lstrip()) + 1
            template = (N_("unexpected character %(char)r at position %(pos)s (a quote that is never closed?)")
                        if bad in "'\"" else N_("unexpected character %(char)r at position %(pos)s"))
            raise SegmentError(template, char=bad, pos=where)
        if match.group("op"):
            tokens.append(_Tok("op", match.group("op"), match.start("op")))
        elif match.group(0).lstrip().startswith("@"):
            name = next(g for g in (match.group("rsq"), match.group("rdq"), match.group("rword")) if g is not None)
            tokens.append(_Tok("ref", name, match.start() + len(match.group(0)) - len(match.group(0).lstrip())))
        elif match.group("sq") is not None or match.group("dq") is not None:
            group = "sq" if match.group("sq") is not None else "dq"
            tokens.append(_Tok("str", match.group(group), match.start(group) - 1))  # the opening quote
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
            raise SegmentError(N_("expression ends too early at position %(pos)s"), pos=len(self.source.rstrip()) + 1)
        self.i += 1
        return tok

    def is_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def parse(self) -> Node | None:
        if not self.tokens:
            return None
        node = self.expr()
        tok = self.peek()
        if tok is not None:
            raise SegmentError(N_("unexpected %(token)r at position %(pos)s (missing 'and' or 'or'?)"), token=tok.text,
                               pos=tok.pos + 1)
        return node

    def expr(self) -> Node:
        parts = [self.conj()]
        while self.is_word("or"):
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conj(self) -> Node:
        parts = [self.term()]
        while self.is_word("and"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def term(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Not(self.term())
        tok = self.take()
        if tok.kind == "op" and tok.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if tok.kind == "ref":
            return Ref(tok.text.strip(), f"position {tok.pos + 1}")
        if tok.kind != "word":
            raise SegmentError(N_("expected a field name at position %(pos)s, got %(token)r"), pos=tok.pos + 1, token=tok.text)
        word = tok.text.lower()
        where = f"position {tok.pos + 1}"
        if word in ENGAGEMENTS:
            return self.engagement(word, where)
        field = _field_name(tok.text, where)
        op = self.operator()
        values = self.values() if op in ("in", "not in") else [self.value()]
        return Cond(field, op, tuple(v for v, _ in values), where, tuple(f"position {p + 1}" for _, p in values))

    def engagement(self, kind: str, where: str) -> Engagement:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() != "within":
            raise SegmentError(N_("expected 'within' after %(kind)r at position %(pos)s, got %(token)r"), kind=kind,
                               pos=tok.pos + 1, token=tok.text)
        tok = self.take()
        if tok.kind != "word" or not tok.text.isdigit() or not 0 < int(tok.text) <= MAX_DAYS:
            raise SegmentError(N_("expected a number of days (1 to %(max)s) at position %(pos)s, got %(token)r"),
                               max=MAX_DAYS, pos=tok.pos + 1, token=tok.text)
        days = int(tok.text)
        if self.is_word("days", "day", "d"):
            self.take()
        return Engagement(kind, days, where)

    def operator(self) -> str:
        tok = self.take()
        if tok.kind == "op" and tok.text in ("=", "!="):
            return tok.text
        if tok.kind == "word" and tok.text.lower() == "in":
            return "in"
        if tok.kind == "word" and tok.text.lower() == "not" and self.is_word("in"):
            self.take()
            return "not in"
        raise SegmentError(N_("expected =, !=, in or not in at position %(pos)s, got %(token)r"), pos=tok.pos + 1,
                           token=tok.text)

    def value(self) -> tuple[str, int]:
        tok = self.take()
        if tok.kind in ("word", "str"):
            return tok.text, tok.pos
        raise SegmentError(N_("expected a value at position %(pos)s, got %(token)r"), pos=tok.pos + 1, token=tok.text)

    def values(self) -> list[tuple[str, int]]:
        self.expect("(")
        items = [self.value()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text == ",":
            self.take()
            items.append(self.value())
        self.expect(")")
        return items

    def expect(self, text: str) -> None:
        if self.peek() is None:
            raise SegmentError(N_("expected %(text)r at position %(pos)s (the end)"), text=text,
                               pos=len(self.source.rstrip()) + 1)
        tok = self.take()
        if tok.kind != "op" or tok.text != text:
            raise SegmentError(N_("expected %(text)r at position %(pos)s, got %(token)r"), text=text, pos=tok.pos + 1,
                               token=tok.text)


def _field_name(raw: str, where: str) -> str:
    field = raw.lower()
    if field.startswith("custom."):
        name = raw[7:]
        if not _CUSTOM_NAME.match(name):
            raise SegmentError(N_("custom field name %(name)r at %(where)s: use the column name, e.g. custom.WhatsApp"),
                               name=name, where=_place(where))
        return "custom." + name
    if field not in COLUMNS and field not in SPECIAL:
        raise SegmentError(N_("unknown segment field %(field)r at %(where)s (known fields: %(known)s)"), field=raw,
                           where=_place(where), known=", ".join(FIELDS))
    return field


# ------------------------------------------------------------------ JSON form
def _from_json(obj: Any, path: str = "$") -> Node:
    if not isinstance(obj, dict):
        raise SegmentError(N_('%(path)s: expected an object such as {"field": …, "op": …, "value": …}'), path=path)
    keys = set(obj)
    for combinator, cls in (("and", And), ("or", Or)):
        if keys == {combinator}:
            items = obj[combinator]
            if not isinstance(items, list) or not items:
                raise SegmentError(N_("%(path)s.%(key)s: expected a non-empty list"), path=path, key=combinator)
            return cls(tuple(_from_json(x, f"{path}.{combinator}[{i}]") for i, x in enumerate(items)))
    if keys == {"not"}:
        return Not(_from_json(obj["not"], f"{path}.not"))
    if keys == {"segment"}:
        if not isinstance(obj["segment"], str) or not obj["segment"].strip():
            raise SegmentError(N_("%(path)s.segment: expected the name of a saved segment"), path=path)
        return Ref(obj["segment"].strip(), path)
    if keys == {"engagement", "within_days"}:
        kind, days = obj["engagement"], obj["within_days"]
        if kind not in ENGAGEMENTS:
            raise SegmentError(N_("%(path)s.engagement: use one of %(known)s, got %(kind)r"), path=path,
                               known=", ".join(ENGAGEMENTS), kind=kind)
        if not isinstance(days, int) or isinstance(days, bool) or not 0 < days <= MAX_DAYS:
            raise SegmentError(N_("%(path)s.within_days: expected a whole number of days (1 to %(max)s), got %(days)r"),
                               path=path, max=MAX_DAYS, days=days)
        return Engagement(kind, days, path)
    if keys in ({"field", "op", "value"}, {"field", "value"}):
        field, op, value = obj["field"], obj.get("op", "="), obj["value"]
        if not isinstance(field, str):
            raise SegmentError(N_("%(path)s.field: expected a field name, got %(field)r"), path=path, field=field)
        if op not in OPERATORS:
            raise SegmentError(N_("%(path)s.op: use one of %(known)s, got %(op)r"), path=path, known=", ".join(OPERATORS),
                               op=op)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise SegmentError(N_("%(path)s.value: expected a string or a non-empty list of strings, got %(value)r"),
                               path=path, value=value)
        if op in ("=", "!=") and len(values) != 1:
            raise SegmentError(N_("%(path)s: op %(op)r takes one value; use 'in' for a list"), path=path, op=op)
        where = [f"{path}.value[{i}]" for i in range(len(values))] if isinstance(value, list) else [f"{path}.value"]
        return Cond(_field_name(field, path), op, tuple(values), path, tuple(where))
    raise SegmentError(N_("%(path)s: cannot read %(json)s "
                          "(expected and / or / not, field+op+value, or engagement+within_days)"),
                       path=path, json=json.dumps(obj, ensure_ascii=False)[:80])


def to_json(node: Node | None) -> Any:
    """The JSON form of a parsed rule (None for "everyone")."""
    if node is None:
        return None
    if isinstance(node, And):
        return {"and": [to_json(n) for n in node.items]}
    if isinstance(node, Or):
        return {"or": [to_json(n) for n in node.items]}
    if isinstance(node, Not):
        return {"not": to_json(node.item)}
    if isinstance(node, Engagement):
        return {"engagement": node.kind, "within_days": node.days}
    if isinstance(node, Ref):
        return {"segment": node.name}
    value: Any = list(node.values) if node.op in ("in", "not in") else node.values[0]
    return {"field": node.field, "op": node.op, "value": value}


def to_text(node: Node | None) -> str:
    """The readable text form of a parsed rule."""
    if node is None:
        return ""
    if isinstance(node, (And, Or)):
        word = " and " if isinstance(node, And) else " or "
        return word.join(_paren(n, node) for n in node.items)
    if isinstance(node, Not):
        return "not " + _paren(node.item, node)
    if isinstance(node, Engagement):
        return f"{node.kind} within {node.days} days"
    if isinstance(node, Ref):
        return reference(node.name)
    quoted = [_quote(v) for v in node.values]
    if node.op in ("in", "not in"):
        return f"{node.field} {node.op} ({', '.join(quoted)})"
    return f"{node.field} {node.op} {quoted[0]}"


def _paren(child: Node, parent: Node) -> str:
    text = to_text(child)
    needs = isinstance(child, (And, Or)) and (isinstance(parent, Not) or type(child) is not type(parent))
    return f"({text})" if needs else text


def reference(name: str) -> str:
    """How a rule names a saved segment: `@eu-prospects`, `@'Trade fair buyers'`."""
    return "@" + _quote(name)


def _quote(value: str) -> str:
    if re.fullmatch(r"[^\s=!(),'\"]+", value) and value.lower() not in ("and", "or", "not", "in"):
        return value
    return f"'{value}'" if "'" not in value else f'"{value}"'


def parse(expression: str | dict[str, Any] | list[Any] | None) -> Node | None:
    """The rule tree of a text or JSON expression (a JSON string starting with `{` counts)."""
    if expression is None:
        return None
    if isinstance(expression, (dict, list)):
        return _from_json(expression)
    text = expression.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SegmentError(N_("invalid JSON at position %(pos)s: %(problem)s"), pos=exc.pos + 1,
                               problem=exc.msg) from None
        return _from_json(obj)
    return _Parser(expression).parse()


# ------------------------------------------------------------------ to SQL
def _compile(node: Node, now: datetime, vocab: Vocabularies) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_compile(n, now, vocab) for n in node.items))
    if isinstance(node, Or):
        return or_(*(_compile(n, now, vocab) for n in node.items))
    if isinstance(node, Not):
        return not_(_compile(node.item, now, vocab))
    if isinstance(node, Engagement):
        return _engaged(node.kind, now - timedelta(days=node.days))
    if isinstance(node, Ref):
        raise SegmentError(N_("the saved segment %(name)s at %(where)s is only known where saved "
                              "segments are looked up (a campaign, a count)"),
                           name=reference(node.name), where=_place(node.pos))
    for index, value in enumerate(node.values):
        if any(ord(ch) < 32 and ch not in "\t" for ch in value):
            where = node.value_pos[index] if index < len(node.value_pos) else node.pos
            raise SegmentError(N_("the value at %(where)s contains a control character"), where=_place(where))
    clause = _condition(node, now, vocab)
    return not_(clause) if node.op in ("!=", "not in") else clause


def _engaged(kind: str, since: datetime) -> ColumnElement[bool]:
    kinds = ("opened", "clicked") if kind == "engaged" else (kind,)
    # People only: opens by image proxies and clicks by link scanners carry machine = true.
    event = exists(
        select(Event.id).where(Event.contact_id == Contact.id, Event.kind.in_(kinds), Event.occurred_at >= since,
                               Event.machine.is_(False))
    )
    if kind == "engaged":
        return or_(and_(Contact.last_engaged_at.is_not(None), Contact.last_engaged_at >= since), event)
    return event


def _condition(node: Cond, now: datetime, vocab: Vocabularies) -> ColumnElement[bool]:
    field, values = node.field, list(node.values)
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
    if field == "consent":
        kinds = [_normalise(node, i, vocab) for i in range(len(values))]
        return exists(
            select(Consent.id).where(
                Consent.contact_id == Contact.id,
                Consent.kind.in_(kinds + (["legitimate_interest"] if "legitimate_interest_b2b" in kinds else [])),
                Consent.withdrawn_at.is_(None),
                or_(Consent.expires_at.is_(None), Consent.expires_at > now),
            )
        )
    if field == "hygiene":
        return or_(*(_hygiene(_normalise(node, i, vocab)) for i in range(len(values))))
    if field.startswith("custom."):
        # A missing key counts as empty, so `custom.x != v` includes contacts without x.
        cell = func.coalesce(Contact.custom[field[7:]].as_string(), "")
        return cell == values[0] if len(values) == 1 else cell.in_(values)
    normalised = [_normalise(node, i, vocab) for i in range(len(values))]
    if field == "language":
        # BCP 47: `language = de` matches de, de-AT and de-CH.
        return or_(*(or_(Contact.language == v, Contact.language.like(_escape_like(v) + "-%", escape="\\"))
                     for v in normalised))
    column = COLUMNS[field]
    return column == normalised[0] if len(normalised) == 1 else column.in_(normalised)


def _hygiene(value: str) -> ColumnElement[bool]:
    if value in HYGIENE_STATES:
        # In the sunset flow now (an open re-engagement); `unasked`: not yet in a reconfirmation campaign.
        where = [Reengagement.contact_id == Contact.id, Reengagement.resolved_at.is_(None)]
        if value == "unasked":
            where.append(Reengagement.campaign_id.is_(None))
        return exists(select(Reengagement.id).where(*where))
    return exists(select(AddressFlag.id).where(AddressFlag.contact_id == Contact.id, AddressFlag.flag == value))


def _at(problem: ValueError, where: str) -> SegmentError:
    # "unknown X 'v' (use …)" → "unknown X 'v' at position 9 (use …)"
    head, sep, tail = str(problem).partition(" (")
    return SegmentError(N_("%(problem)s at %(where)s%(more)s"), problem=head, where=_place(where), more=sep + tail)


def _normalise(node: Cond, index: int, vocab: Vocabularies) -> str:
    field, value = node.field, node.values[index]
    where = node.value_pos[index] if index < len(node.value_pos) else node.pos
    if field == "country":
        try:
            return parse_country(value)
        except ValueError as exc:
            raise _at(exc, where) from None
    if field == "region":
        if value.lower() not in REGIONS:
            raise SegmentError(N_("unknown region %(value)r at %(where)s (use one of %(known)s)"), value=value,
                               where=_place(where), known=", ".join(REGIONS))
        return value.lower()
    if field in ("stage", "industry"):
        words = vocab.stages if field == "stage" else vocab.industries
        found = words.resolve(value)
        if found is not None:
            return found
        if vocab.strict or (field == "stage" and not re.fullmatch(r"[a-z0-9_]{1,20}", value.lower())):
            raise SegmentError(N_("unknown %(field)s %(value)r at %(where)s (known: %(known)s)"), field=field, value=value,
                               where=_place(where), known=words.describe())
        return slug(value).replace("-", "_") if field == "stage" else slug(value)
    if field == "hygiene":
        if value.lower() not in HYGIENE_VALUES:
            raise SegmentError(N_("unknown hygiene value %(value)r at %(where)s (use one of %(known)s)"), value=value,
                               where=_place(where), known=", ".join(HYGIENE_VALUES))
        return value.lower()
    if field == "consent":
        try:
            return normalise_kind(value)
        except ValueError as exc:
            raise _at(exc, where) from None
    if field == "language":
        try:
            return parse_language(value)
        except ValueError as exc:
            raise _at(exc, where) from None
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
    return bindparam(None, value, unique=True)


def compile_segment(
    expression: str | dict[str, Any] | None,
    *,
    now: datetime | None = None,
    vocabularies: Vocabularies | None = None,
) -> ColumnElement[bool]:
    """The WHERE clause over `contacts` for a segment expression (text or JSON); SegmentError if invalid."""
    node = parse(expression or "")
    if node is None:
        return true()
    return _compile(node, now or datetime.now(timezone.utc), vocabularies or Vocabularies.builtin())


def validate_segment(expression: str, *, vocabularies: Vocabularies | None = None) -> None:
    """Raise SegmentError if the expression is invalid."""
    compile_segment(expression, vocabularies=vocabularies)


__all__ = ["FIELDS", "Ref", "SegmentError", "Vocabularies", "compile_segment", "parse", "reference", "to_json",
           "to_text", "validate_segment"]
