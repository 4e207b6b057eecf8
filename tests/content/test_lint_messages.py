"""Every lint finding is a translatable template with its values, and the admin catalog has it in Chinese."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import sendwell.content.lint as lint_module
import sendwell.content.service as service_module
from sendwell.content.lint import Finding, lint_templates, merge
from sendwell.i18n import translations

PLACEHOLDER = re.compile(r"%\(\w+\)[sr]")


def finding_templates() -> list[str]:
    """The message template of every `Finding(...)` written in the lint and the lint service."""
    out = []
    for module in (lint_module, service_module):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Finding" and len(node.args) >= 3:
                template = node.args[2]
                if isinstance(template, ast.Attribute) and template.attr == "template":
                    continue  # merge() copies a finding
                assert isinstance(template, ast.Constant), f"line {node.lineno}: build the message as a template"
                out.append(template.value)
    return out


TEMPLATES = finding_templates()


def test_there_are_templates_to_check() -> None:
    assert len(TEMPLATES) > 40


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t != "%(error)s"])
def test_each_finding_has_a_chinese_translation_with_the_same_placeholders(template) -> None:
    zh = translations("zh_Hans", "admin").gettext(template)
    assert zh != template, f"no zh_Hans translation for {template!r}"
    assert sorted(PLACEHOLDER.findall(zh)) == sorted(PLACEHOLDER.findall(template))


def test_the_english_message_is_the_template_with_its_values() -> None:
    [finding] = lint_templates(subject="RE: prices", html="<p>x</p>", text="")
    assert finding.template == "subject %(subject)r pretends to be a reply or forward (no thread exists)"
    assert finding.message == "subject 'RE: prices' pretends to be a reply or forward (no thread exists)"
    assert finding.as_dict()["params"] == {"subject": "RE: prices"}
    [merged] = merge([(finding, "eu/de"), (finding, "us/en")])
    assert merged.params == finding.params and merged.samples == ("eu/de", "us/en")


def test_a_template_without_values_is_its_own_message() -> None:
    assert Finding("x", "warning", "100% plain").message == "100% plain"
