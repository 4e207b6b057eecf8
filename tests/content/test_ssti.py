"""Server-side template injection payloads fail safely: no code runs, a clear TemplateError."""

from __future__ import annotations

import pytest

from sendwell.content.lint import lint_templates, render_failure
from sendwell.content.render import CompiledCampaign, TemplateError
from tests.content.conftest import LINKS, recipient


def _canary_payloads(canary: str) -> list[str]:
    cmd = f"touch {canary}"
    return [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        f"{{{{ cycler.__init__.__globals__.os.popen('{cmd}').read() }}}}",
        f"{{{{ lipsum.__globals__['os'].popen('{cmd}').read() }}}}",
        f"{{{{ joiner.__init__.__globals__.os.system('{cmd}') }}}}",
        f"{{{{ namespace.__init__.__globals__.os.system('{cmd}') }}}}",
        "{{ self._TemplateReference__context }}",
        "{{ self.__init__.__globals__ }}",
        "{{ '%s'|format(self) }}",
        "{{ '%s'|format(contact.__class__) }}",
        "{{ '{0.__class__.__mro__}'.format(contact) }}",
        "{% set f = '{0.__class__.__init__.__globals__}'.format %}{{ f(contact) }}",
        "{{ '{email.__class__}'.format_map(contact) }}",
        "{{ config }}",
        "{{ config.items() }}",
        "{{ request.application.__globals__ }}",
        "{{ settings.secret_key }}",
        "{{ contact.__class__.__mro__ }}",
        "{{ contact|attr('__class__') }}",
        "{{ contact|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{{ [contact]|map(attribute='__class__')|list }}",
        "{{ contact.items.__self__.__class__ }}",
        "{{ dict.__base__.__subclasses__() }}",
        "{{ range.__self__ }}",
        "{% set x = contact.update({'email': 'victim@example.com'}) %}{{ contact.email }}",
        "{{ contact.tags.append('x') }}",
        "{% include '/etc/passwd' %}",
        "{% extends 'base.html' %}",
        "{% import 'macros.html' as m %}",
        "{% from 'x' import y %}",
        "{{ 'A' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 2 ** 100000000 }}",
        "{{ ((10 ** 60) ** 60) ** 60 }}",
        "{% for i in range(1000000000) %}x{% endfor %}",
    ]


@pytest.mark.parametrize("index", range(len(_canary_payloads("x"))))
def test_payload_fails_safely(content_settings, tmp_path, index) -> None:
    canary = tmp_path / "pwned"
    payload = _canary_payloads(str(canary))[index]
    with pytest.raises(TemplateError) as info:
        # Compile (include / extends / self fail here) and render for a contact.
        compiled = CompiledCampaign(subject="Offer", html=f"<p>{payload}</p>", text="", settings=content_settings)
        compiled.render(recipient(), LINKS)
    message = str(info.value)
    assert message and "\n" not in message.strip()
    assert any(word in message for word in ("unsafe", "undefined", "not allowed", "not available", "too large",
                                             "longer than", "Range too big", "no attribute", "exponent")), message
    assert not canary.exists()
    # The same payload as a subject or text template fails the same way.
    with pytest.raises(TemplateError):
        CompiledCampaign(subject=payload, html="<p>x</p>", text="", settings=content_settings).render(
            recipient(), LINKS)
    assert not canary.exists()


def test_the_sandbox_leaves_the_contact_unchanged(content_settings) -> None:
    contact = recipient(email="anna@licht.example")
    with pytest.raises(TemplateError):
        CompiledCampaign(subject="s", html="{% set x = contact.update({'email': 'x@evil.example'}) %}",
                         text="", settings=content_settings).render(contact, LINKS)
    assert contact.email == "anna@licht.example"


def test_lint_names_the_payload_as_unsafe_or_unknown(content_settings) -> None:
    static = lint_templates(subject="s", html="{{ config.items() }}", text="")
    assert [f.code for f in static] == ["unknown-variable"]
    with pytest.raises(TemplateError) as info:
        CompiledCampaign(subject="s", html="{{ contact.__class__ }}", text="", settings=content_settings).render(
            recipient(), LINKS)
    finding = render_failure(info.value)
    assert finding.code == "unsafe-template" and finding.rule == 24 and "__class__" in finding.message


def test_contact_data_that_looks_like_a_template_is_not_evaluated(content_settings) -> None:
    contact = recipient(first_name="{{ 7*7 }}", company="{% for x in range(3) %}loop{% endfor %}")
    rendered = CompiledCampaign(subject="Hi {{ first_name }}", html="<p>{{ contact.company }}</p>", text="",
                                settings=content_settings).render(contact, LINKS)
    assert rendered.subject == "Hi {{ 7*7 }}"
    assert "{% for x in range(3) %}loop{% endfor %}" in rendered.html and "looploop" not in rendered.html
