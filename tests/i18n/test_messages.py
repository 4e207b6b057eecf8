"""Messages built in code: English for the CLI and API, translated in the admin; every template has a zh entry."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_file

from sendwell.i18n import translations
from sendwell.i18n.messages import coded, english, message, plain, render

SRC = Path(__file__).resolve().parents[2] / "src" / "sendwell"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def templates() -> dict[str, str]:
    """Every template marked with sendwell.i18n.messages.N_ in the code: template → the file that marks it.

    (Other modules have their own N_ for other catalogs, such as the mail footers'.)
    """
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if not re.search(r"^from sendwell\.i18n\.messages import .*\bN_\b", source, re.M):
            continue
        for _lineno, text, _comments, _context in extract_from_file("python", str(path), keywords={"N_": None}):
            found[text] = str(path.relative_to(SRC))
    return found


def test_the_producers_mark_their_templates() -> None:
    where = set(templates().values())
    for module in ("insight/alerts.py", "insight/recommendations.py", "deliverability/check.py",
                   "feedback/signals.py", "feedback/dmarc_store.py", "settings_edit.py", "hygiene/report.py",
                   "deliverability/service.py"):
        assert module in where, module


def test_every_template_has_a_chinese_translation_with_the_same_placeholders() -> None:
    catalog = translations("zh_Hans", "admin")
    missing, wrong = [], []
    for template, module in templates().items():
        translated = catalog.gettext(template)
        if translated == template:
            missing.append(f"{module}: {template}")
        elif sorted(set(PLACEHOLDER.findall(translated))) != sorted(set(PLACEHOLDER.findall(template))):
            wrong.append(f"{module}: {template} → {translated}")
    assert not missing, "no zh_Hans entry in admin-messages.po:\n" + "\n".join(missing)
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_params_that_are_messages_are_rendered_first_and_lists_are_joined() -> None:
    text = message("%(who)s: %(fixes)s. Rate %(rate)s, 0.3 %%", who=message("the %(x)s", x="provider"),
                   fixes=[message("fix %(n)s", n=1), plain("100% sure")], rate="5.00%")
    assert english(**text) == "the provider: fix 1; 100% sure. Rate 5.00%, 0.3 %"
    shout = {"%(who)s: %(fixes)s. Rate %(rate)s, 0.3 %%": "%(who)s！%(fixes)s！%(rate)s", "the %(x)s": "THE %(x)s",
             "fix %(n)s": "FIX %(n)s", "; ": "；"}
    assert render(**text, translate=lambda s: shout.get(s, s)) == "THE provider！FIX 1；100% sure！5.00%"


def test_a_translation_whose_placeholders_do_not_fit_falls_back_to_english() -> None:
    assert render("%(n)s mails", {"n": 3}, translate=lambda s: "%(count)s 封") == "3 mails"


def test_a_coded_param_is_the_code_in_english_and_its_label_for_a_reader() -> None:
    text = message("driven by %(dimension)s = %(value)s", dimension=message("region"), value=coded("region", "eu"))
    assert english(**text) == "driven by region = eu"
    assert render(**text, translate=lambda s: {"region": "地区"}.get(s, s),
                  label=lambda of, code: f"<{of}:{code}>") == "driven by 地区 = <region:eu>"
