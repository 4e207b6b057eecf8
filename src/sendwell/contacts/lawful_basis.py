"""Which consent kinds allow marketing mail, per recipient country, as one SQL clause over contacts.

The defaults follow COMPLIANCE.md ("apply the strictest rule"; "model the lawful basis per
contact and per country; skip contacts without one"). Each rule names its source; see
docs/audience.md for the reasoning. Not legal advice: an operator with other advice passes
their own `rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, false, or_, select
from sqlalchemy.sql.elements import ColumnElement

from sendwell.contacts.problems import FieldProblem
from sendwell.contacts.regions import EEA_EXTRA, EU
from sendwell.db.models import Consent, ConsentKind, Contact

EXPRESS = ConsentKind.EXPRESS.value
IMPLIED_PURCHASE = ConsentKind.IMPLIED_PURCHASE.value
IMPLIED_INQUIRY = ConsentKind.IMPLIED_INQUIRY.value
SOFT_OPT_IN = ConsentKind.SOFT_OPT_IN.value
LEGITIMATE_INTEREST_B2B = ConsentKind.LEGITIMATE_INTEREST_B2B.value
LEGACY_LEGITIMATE_INTEREST = ConsentKind.LEGITIMATE_INTEREST.value

# The kinds a consent record may have (the legacy spelling is accepted on input and mapped).
KINDS = (EXPRESS, IMPLIED_PURCHASE, IMPLIED_INQUIRY, SOFT_OPT_IN, LEGITIMATE_INTEREST_B2B)
ALL_KINDS = frozenset(KINDS) | {LEGACY_LEGITIMATE_INTEREST}

# CASL s10(10): implied consent lapses; the other kinds do not expire by themselves.
LIFETIME = {
    IMPLIED_PURCHASE: timedelta(days=730),  # two years from the purchase
    IMPLIED_INQUIRY: timedelta(days=183),  # six months from the inquiry
}


def normalise_kind(value: str) -> str:
    """The canonical consent kind for an input word; ValueError naming the known kinds."""
    kind = value.strip().lower().replace("-", "_").replace(" ", "_")
    if kind == LEGACY_LEGITIMATE_INTEREST:
        return LEGITIMATE_INTEREST_B2B
    if kind not in KINDS:
        raise FieldProblem("unknown consent kind %(value)r (use one of %(kinds)s)", value=value,
                           kinds=", ".join(KINDS))
    return kind


def expiry_for(kind: str, obtained_at: datetime) -> datetime | None:
    """When a consent of this kind obtained at this time lapses (CASL s10(10)), or None."""
    lifetime = LIFETIME.get(kind)
    return obtained_at + lifetime if lifetime else None


@dataclass(frozen=True)
class Rule:
    kinds: frozenset[str]
    source: str


_EU_RULE = Rule(
    frozenset({EXPRESS, SOFT_OPT_IN}),
    "ePrivacy Directive Art 13(1)-(2): prior consent, or the existing-customer soft opt-in; "
    "Art 13(5) leaves legal persons to each member state, so the strictest reading is kept",
)

# Country code → rule. Countries not listed use DEFAULT_RULE.
DEFAULT_RULES: dict[str, Rule] = {
    **{code: _EU_RULE for code in sorted(EU | EEA_EXTRA)},
    "DE": Rule(
        frozenset({EXPRESS, SOFT_OPT_IN}),
        "UWG §7(2) no. 2: prior express consent even for B2B; §7(3): soft opt-in for existing customers",
    ),
    "FR": Rule(
        frozenset({EXPRESS, SOFT_OPT_IN, LEGITIMATE_INTEREST_B2B}),
        "CNIL: B2B mail about the recipient's profession is allowed with an opt-out (COMPLIANCE.md)",
    ),
    "GB": Rule(
        frozenset({EXPRESS, SOFT_OPT_IN, LEGITIMATE_INTEREST_B2B}),
        "PECR reg 22 covers individual subscribers, not corporate ones; reg 22(3) soft opt-in",
    ),
    "CA": Rule(
        frozenset({EXPRESS, IMPLIED_PURCHASE, IMPLIED_INQUIRY}),
        "CASL s6, s10(9)-(10): express, or implied by an existing business relationship "
        "(purchase 2 years, inquiry 6 months)",
    ),
    "AU": Rule(
        frozenset({EXPRESS, IMPLIED_PURCHASE, IMPLIED_INQUIRY, SOFT_OPT_IN}),
        "Spam Act 2003 s16 and Sch 2: express or inferred consent (existing business relationship)",
    ),
    "CN": Rule(
        frozenset({EXPRESS}),
        "互联网电子邮件服务管理办法 Art 13: commercial mail only with the recipient's express consent",
    ),
}
# CAN-SPAM (US) and other countries require no prior consent, but COMPLIANCE.md asks for a
# basis on record for every contact: any recorded, unwithdrawn, unexpired kind counts.
DEFAULT_RULE = Rule(
    frozenset(KINDS),
    "CAN-SPAM 15 USC 7704 is an opt-out regime; COMPLIANCE.md: skip contacts without a recorded basis",
)


@dataclass(frozen=True)
class LawfulBasis:
    """A rule set: per-country rules plus the rule for every other country."""

    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    default: Rule = DEFAULT_RULE

    def kinds_for(self, country: str) -> frozenset[str]:
        """The consent kinds that allow marketing to a contact in this country."""
        return self.rules.get(country.upper(), self.default).kinds

    def _groups(self) -> list[tuple[frozenset[str], list[str]]]:
        # Countries sharing one kind set share one OR branch: a handful of branches, not 40.
        groups: dict[frozenset[str], list[str]] = {}
        for country, rule in sorted(self.rules.items()):
            groups.setdefault(rule.kinds, []).append(country)
        return sorted(groups.items(), key=lambda item: item[1])

    def kind_allowed(self) -> ColumnElement[bool]:
        """Clause over Consent and Contact: this consent's kind allows marketing in the contact's country."""
        branches: list[ColumnElement[bool]] = []
        for kinds, countries in self._groups():
            if kinds:
                branches.append(and_(Contact.country.in_(countries), _kind_in(kinds)))
        listed = sorted(self.rules)
        if self.default.kinds:
            branches.append(and_(Contact.country.not_in(listed), _kind_in(self.default.kinds)))
        return or_(*branches) if branches else false()


def _kind_in(kinds: frozenset[str]) -> ColumnElement[bool]:
    values = set(kinds)
    if LEGITIMATE_INTEREST_B2B in values:
        values.add(LEGACY_LEGITIMATE_INTEREST)  # rows written before migration 0003
    return Consent.kind.in_(sorted(values))


DEFAULT = LawfulBasis()


def has_lawful_basis(now: datetime, basis: LawfulBasis = DEFAULT) -> ColumnElement[bool]:
    """True for a contact with an unwithdrawn, unexpired consent whose kind its country accepts."""
    return exists(
        select(Consent.id).where(
            Consent.contact_id == Contact.id,
            Consent.withdrawn_at.is_(None),
            or_(Consent.expires_at.is_(None), Consent.expires_at > now),
            basis.kind_allowed(),
        )
    )


def has_expired_basis(now: datetime, basis: LawfulBasis = DEFAULT) -> ColumnElement[bool]:
    """True for a contact with an unwithdrawn consent of an accepted kind that has lapsed (CASL s10(10))."""
    return exists(
        select(Consent.id).where(
            Consent.contact_id == Contact.id,
            Consent.withdrawn_at.is_(None),
            Consent.expires_at.is_not(None),
            Consent.expires_at <= now,
            basis.kind_allowed(),
        )
    )


def parse_rules(text: str, base: LawfulBasis = DEFAULT) -> LawfulBasis:
    """Overrides like `DE=express+soft_opt_in; US=*; JP=` on top of `base`; ValueError if malformed."""
    rules = dict(base.rules)
    default = base.default
    for part in filter(None, (p.strip() for p in text.replace("\n", ";").split(";"))):
        country, sep, kinds_text = part.partition("=")
        country = country.strip().upper()
        if not sep or not (country == "*" or (len(country) == 2 and country.isalpha())):
            raise ValueError(f"lawful-basis rule {part!r}: expected CC=kind+kind (or *=… for the default)")
        if kinds_text.strip() == "*":
            kinds = frozenset(KINDS)
        else:
            kinds = frozenset(normalise_kind(k) for k in kinds_text.split("+") if k.strip())
        rule = Rule(kinds, "operator setting")
        if country == "*":
            default = rule
        else:
            rules[country] = rule
    return LawfulBasis(rules=rules, default=default)
