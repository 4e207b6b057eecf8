"""Property tests: import rows and segment expressions never crash; they give a correct result or a
clear error; values that look like SQL stay inert."""

from __future__ import annotations

import csv
import io
import string
from datetime import datetime, timezone

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from sendwell.contacts.fields import normalise_email, normalise_email_slow
from sendwell.contacts.importer import ImportFileError, import_contacts
from sendwell.db.models import Contact
from sendwell.segments.expression import SegmentError, compile_segment, parse, to_json, to_text

PEPPER = b"test-pepper-0123456789"
NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)
FIXTURES = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
local_parts = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join)
labels = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)
domains = st.tuples(st.lists(labels, min_size=1, max_size=3),
                    st.sampled_from(["com", "de", "example", "co", "test", "local", "c1", "xn--p1ai", "Com"]))
ascii_addresses = st.builds(lambda lp, d: f"{lp}@{'.'.join(d[0] + [d[1]])}", local_parts, domains)


def _outcome(fn, value):
    try:
        return "ok", fn(value)
    except ValueError:
        return "error", None


@given(st.one_of(ascii_addresses, st.text(max_size=40)))
@example("Anna.Mueller@Licht-Haus.EXAMPLE")
@example("a@b--c.com")
@example("x@xn--bcher-kva.de")
@example("a@localhost")
@settings(max_examples=400, deadline=None)
def test_fast_email_path_agrees_with_email_validator(address) -> None:
    assert _outcome(normalise_email, address) == _outcome(normalise_email_slow, address)


SQLISH = st.sampled_from(["'; DROP TABLE contacts; --", "\" OR 1=1 --", "x' OR '1'='1", "%", "_", "\\",
                          "=cmd|' /C calc'!A0", "@SUM(1)", "+1", "\x00", "é\u200b", "Robert'); --"])
cells = st.one_of(st.text(max_size=30), SQLISH)
rows = st.lists(st.fixed_dictionaries({
    "email": st.one_of(ascii_addresses, cells),
    "company": cells,
    "country": st.one_of(st.sampled_from(["DE", "Germany", "德国", "US", "", "Narnia", "cn"]), cells),
    "industry": st.one_of(st.sampled_from(["lighting", "照明", "Furniture", "", "unicorns"]), cells),
    "stage": st.one_of(st.sampled_from(["prospect", "客户", "", "vip"]), cells),
    "language": st.one_of(st.sampled_from(["de", "zh-Hans-CN", "English", "", "xx-yy-zz-1"]), cells),
    "tags": cells,
    "Notes": cells,
}), min_size=1, max_size=8)


@given(rows=rows, delimiter=st.sampled_from([",", ";", "\t"]), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
@FIXTURES
def test_import_rows_give_a_correct_result_or_clear_errors(session, tmp_path_factory, rows, delimiter, encoding) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    try:
        data = buf.getvalue().encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    path = tmp_path_factory.mktemp("prop") / "rows.csv"
    path.write_bytes(data)
    before = session.scalar(select(func.count()).select_from(Contact))
    try:
        result = import_contacts(session, path=path, pepper=PEPPER, consent="express", now=NOW)
    except ImportFileError as exc:
        assert str(exc)  # a file-level problem, said in words
        return
    after = session.scalar(select(func.count()).select_from(Contact))
    if result.rejected:
        assert not result.written and after == before  # all or nothing
        assert all(e.row >= 2 and e.field and e.message for e in result.errors)
    else:
        assert result.written
        stored = set(session.scalars(select(Contact.email)))
        for row in rows:
            if any(v.strip() for v in row.values()):
                assert normalise_email(row["email"]) in stored
    # Whatever the cells held, the tables are still there.
    assert session.execute(text("SELECT count(*) FROM contacts")).scalar() == after
    session.rollback()


FIELD_WORDS = st.sampled_from(["industry", "stage", "country", "region", "language", "company", "tag",
                               "topic", "email_domain", "consent", "custom.tier", "job_title"])
VALUES = st.one_of(st.sampled_from(["eu", "DE", "prospect", "lighting", "express", "de", "gold", "x.example"]),
                   SQLISH, st.text(max_size=12))


def _quoted(value: str) -> str:
    return "'" + value + "'" if "'" not in value else '"' + value.replace('"', "") + '"'


conditions = st.one_of(
    st.builds(lambda f, v: f"{f} = {_quoted(v)}", FIELD_WORDS, VALUES),
    st.builds(lambda f, vs: f"{f} in ({', '.join(_quoted(v) for v in vs)})", FIELD_WORDS, st.lists(VALUES, min_size=1, max_size=3)),
    st.builds(lambda k, n: f"{k} within {n} days", st.sampled_from(["opened", "clicked", "engaged"]),
              st.integers(1, 400)),
)
expressions = st.recursive(conditions, lambda inner: st.one_of(
    st.builds(lambda a, b: f"{a} and {b}", inner, inner),
    st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
    st.builds(lambda a: f"not ({a})", inner),
), max_leaves=5)


@given(expr=st.one_of(expressions, st.text(max_size=40)))
@example(expr="company = '; DROP TABLE contacts; --'")
@example(expr="company = \"x' OR '1'='1\"")
@example(expr="industry = '\x00'")
@FIXTURES
def test_segment_expressions_compile_and_run_or_fail_clearly(session, expr) -> None:
    try:
        clause = compile_segment(expr, now=NOW)
    except SegmentError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    # It runs on the real database, and injection attempts in values stay values.
    session.execute(select(func.count()).select_from(Contact).where(clause)).scalar()
    assert session.execute(text("SELECT count(*) FROM contacts")).scalar() is not None
    # The text and JSON forms round-trip to the same tree.
    node = parse(expr)
    assert _flat(to_json(parse(to_text(node)))) == _flat(to_json(node))
    assert to_json(parse(to_json(node))) == to_json(node)
    session.rollback()


def _flat(tree):
    """`a or (b or c)` and `a or b or c` are the same rule."""
    if isinstance(tree, dict):
        for key in ("and", "or"):
            if key in tree:
                items = []
                for item in (_flat(x) for x in tree[key]):
                    items.extend(item[key] if isinstance(item, dict) and key in item else [item])
                return {key: items}
        if "not" in tree:
            return {"not": _flat(tree["not"])}
    return tree
