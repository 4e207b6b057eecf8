"""Audience blocks for templates: `{% region "eu", "uk" %}…{% else %}…{% endregion %}` and friends.

Each tag compiles at parse time into a plain `{% if region in ("eu", "uk") %}` over the
top-level context variable of the same name, so it runs inside the sandbox like any other
`if` and adds nothing callable to the template's reach. Values are checked when the
campaign is compiled: a misspelt region or stage is a TemplateSyntaxError with its line.
"""

from __future__ import annotations

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from sendwell.contacts.regions import REGIONS
from sendwell.db.models import Stage
from sendwell.i18n import SUPPORTED, normalise_language

STAGES = tuple(s.value for s in Stage)
# tag → how a value written in the template is normalised to what the context holds
BLOCK_TAGS = ("region", "industry", "stage", "country", "language")


def _normalise(tag: str, value: str) -> str | None:
    """The context value a block compares with, or None when the value cannot occur."""
    text = value.strip()
    if tag == "region":
        return text.lower() if text.lower() in REGIONS else None
    if tag == "stage":
        return text.lower() if text.lower() in STAGES else None
    if tag == "country":
        return text.upper() if len(text) == 2 and text.isalpha() else None
    if tag == "language":
        return normalise_language(text)
    return text.casefold()  # industry: free text, compared case-insensitively


_EXPECTED = {
    "region": "one of " + ", ".join(REGIONS),
    "stage": "one of " + ", ".join(STAGES),
    "country": "an ISO 3166 two-letter code such as DE",
    "language": "one of " + ", ".join(SUPPORTED),
}


class AudienceBlocks(Extension):
    """`{% region … %}`, `{% industry … %}`, `{% stage … %}`, `{% country … %}`, `{% language … %}`."""

    tags = set(BLOCK_TAGS)

    def parse(self, parser: Parser) -> nodes.Node:
        token = next(parser.stream)
        tag, lineno = token.value, token.lineno
        values: list[str] = []
        while parser.stream.current.type != "block_end":
            if values:
                parser.stream.expect("comma")
            expr = parser.parse_primary()
            if not isinstance(expr, nodes.Const) or not isinstance(expr.value, str):
                parser.fail(f'{{% {tag} %}} takes quoted values, e.g. {{% {tag} "{_example(tag)}" %}}', lineno)
            normalised = _normalise(tag, expr.value)
            if normalised is None:
                parser.fail(f"{{% {tag} %}}: unknown {tag} {expr.value!r} (use {_EXPECTED[tag]})", lineno)
            values.append(normalised)
        if not values:
            parser.fail(f'{{% {tag} %}} needs at least one value, e.g. {{% {tag} "{_example(tag)}" %}}', lineno)
        body = parser.parse_statements(("name:else", f"name:end{tag}"), drop_needle=False)
        else_: list[nodes.Node] = []
        if next(parser.stream).value == "else":
            else_ = parser.parse_statements((f"name:end{tag}",), drop_needle=True)
        test = nodes.Compare(
            nodes.Name(tag, "load", lineno=lineno),
            [nodes.Operand("in", nodes.Tuple([nodes.Const(v) for v in values], "load", lineno=lineno))],
            lineno=lineno,
        )
        return nodes.If(test, body, [], else_, lineno=lineno)


def _example(tag: str) -> str:
    return {"region": "eu", "stage": "customer", "country": "DE", "language": "de"}.get(tag, "lighting")
