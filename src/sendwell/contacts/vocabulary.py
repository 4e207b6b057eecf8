"""Controlled, extendable vocabularies for contacts: industries and customer stages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendwell.db.models import Stage, Vocabulary

INDUSTRY = "industry"
STAGE = "stage"
KINDS = (INDUSTRY, STAGE)

# Built-in industries of exporters' buyers, with English and Chinese spellings seen in CRM exports.
DEFAULT_INDUSTRIES: dict[str, tuple[str, ...]] = {
    "lighting": ("led lighting", "lights", "照明", "灯具", "led照明"),
    "hardware": ("tools", "hardware & tools", "五金", "五金工具"),
    "furniture": ("furnishings", "家具"),
    "textiles": ("textile", "fabrics", "apparel", "garments", "纺织", "纺织品", "服装"),
    "packaging": ("包装", "包装材料"),
    "electronics": ("electronic components", "consumer electronics", "电子", "电子产品", "电子元器件"),
    "machinery": ("machines", "industrial equipment", "机械", "机械设备"),
    "automotive": ("auto parts", "automotive parts", "汽配", "汽车配件"),
    "building-materials": ("construction", "building materials", "建材", "建筑材料"),
    "chemicals": ("chemical", "化工", "化工产品"),
    "food": ("food & beverage", "food and beverage", "食品", "食品饮料"),
    "medical": ("medical devices", "healthcare", "医疗", "医疗器械"),
    "home-appliances": ("appliances", "household appliances", "家电", "家用电器"),
    "energy": ("solar", "renewable energy", "新能源", "光伏", "能源"),
    "agriculture": ("farming", "农业"),
    "cosmetics": ("beauty", "personal care", "化妆品", "美妆"),
    "toys": ("toys & games", "玩具"),
    "sports": ("sporting goods", "outdoor", "运动", "体育用品", "户外用品"),
    "retail": ("wholesale", "distribution", "零售", "批发", "贸易"),
    "other": ("其他", "其它"),
}

DEFAULT_STAGES: dict[str, tuple[str, ...]] = {
    Stage.NEW_LEAD.value: ("new lead", "lead", "new", "新线索", "线索", "潜在客户"),
    Stage.PROSPECT.value: ("opportunity", "意向客户", "跟进中"),
    Stage.CUSTOMER.value: ("client", "buyer", "客户", "老客户", "成交客户"),
}

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")


def slug(text: str) -> str:
    """The canonical spelling of a vocabulary word: lower case, words joined by hyphens."""
    return "-".join(text.strip().casefold().replace("_", " ").replace("-", " ").split())


@dataclass
class Vocab:
    """One vocabulary: canonical values and every accepted spelling mapped to one of them."""

    kind: str
    values: list[str] = field(default_factory=list)
    lookup: dict[str, str] = field(default_factory=dict)

    def add(self, value: str, aliases: tuple[str, ...] | list[str] = ()) -> None:
        if value not in self.values:
            self.values.append(value)
        for spelling in (value, *aliases):
            self.lookup.setdefault(spelling.casefold().strip(), value)
            self.lookup.setdefault(slug(spelling), value)

    def resolve(self, text: str) -> str | None:
        """The canonical value for a spelling, or None if it is not in the vocabulary."""
        key = text.casefold().strip()
        return self.lookup.get(key) or self.lookup.get(slug(text))

    def describe(self, limit: int = 12) -> str:
        shown = ", ".join(self.values[:limit])
        return shown + (f", … ({len(self.values)} in all)" if len(self.values) > limit else "")


def _builtin(kind: str) -> dict[str, tuple[str, ...]]:
    return DEFAULT_INDUSTRIES if kind == INDUSTRY else DEFAULT_STAGES


def load_vocabulary(session: Session | None, kind: str) -> Vocab:
    """Built-in values plus the operator's additions from the `vocabulary` table."""
    vocab = Vocab(kind)
    for value, aliases in _builtin(kind).items():
        vocab.add(value, aliases)
    # The stage words written with underscores (new_lead) must resolve too.
    if session is not None:
        for row in session.scalars(select(Vocabulary).where(Vocabulary.kind == kind).order_by(Vocabulary.id)):
            vocab.add(row.value, row.aliases or [])
    return vocab


def add_value(session: Session, *, kind: str, value: str, label: str = "", aliases: list[str] | None = None) -> Vocabulary:
    """Add a value (and its spellings) to a vocabulary; ValueError if malformed or a clash."""
    if kind not in KINDS:
        raise ValueError(f"unknown vocabulary {kind!r} (use {' or '.join(KINDS)})")
    canonical = slug(value).replace("-", "_") if kind == STAGE else slug(value)
    if not _SLUG.match(canonical):
        raise ValueError(f"{kind} {value!r}: use letters, digits and hyphens (e.g. 'solar-panels')")
    if kind == STAGE and len(canonical) > 20:
        raise ValueError(f"stage {value!r}: at most 20 characters")
    current = load_vocabulary(session, kind)
    for spelling in [value, *(aliases or [])]:
        taken = current.resolve(spelling)
        if taken is not None and taken != canonical:
            raise ValueError(f"{kind} spelling {spelling!r} already means {taken!r}")
    row = session.scalar(select(Vocabulary).where(Vocabulary.kind == kind, Vocabulary.value == canonical))
    if row is None:
        if canonical in _builtin(kind) and not aliases:
            raise ValueError(f"{kind} {canonical!r} is built in already")
        row = Vocabulary(kind=kind, value=canonical, label=label or value.strip(), aliases=list(aliases or []))
        session.add(row)
    else:
        row.aliases = sorted(set(row.aliases or []) | set(aliases or []))
        if label:
            row.label = label
    session.flush()
    return row


def list_values(session: Session, *, kind: str) -> list[dict[str, object]]:
    """Every value of a vocabulary, built-in first, with its spellings."""
    added = {r.value: r for r in session.scalars(select(Vocabulary).where(Vocabulary.kind == kind))}
    out: list[dict[str, object]] = []
    for value, aliases in _builtin(kind).items():
        extra = list(added.pop(value).aliases) if value in added else []
        out.append({"value": value, "builtin": True, "aliases": list(aliases) + extra})
    for value, row in added.items():
        out.append({"value": value, "builtin": False, "aliases": list(row.aliases or []), "label": row.label})
    return out
