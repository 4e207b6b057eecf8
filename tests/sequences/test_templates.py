"""Ready-made sequences: each parses and passes the compliance lint; values fill in; the CLI lists and creates them;
the re-permission sequence never mails an unsubscribed contact and ends for those who do not confirm."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from sendwell.content.service import lint_campaign
from sendwell.db.models import Consent, Send
from sendwell.db.session import transaction
from sendwell.i18n import translations
from sendwell.optout.service import unsubscribe_contact
from sendwell.sequences.definition import DefinitionError, parse_definition
from sendwell.sequences.report import due_campaigns, enrollments, step_runs
from sendwell.sequences.service import advance, create_sequence
from sendwell.sequences.templates import list_templates, load_template, value_problems
from tests.helpers import make_contact, run_once
from tests.policy.test_cli_policy import env, run
from tests.sequences.test_sequences import dkim_key, runtime, smtp_runtime

__all__ = ["dkim_key", "env", "runtime", "smtp_runtime"]  # fixtures shared with the sequence and CLI tests

NAMES = ["customer-onboarding", "re-permission", "signup-welcome", "trade-fair"]
REQUIRED = {"re-permission": {"confirm_url": "https://bright-lighting.example/f/1"},
            "trade-fair": {"catalogue_url": "https://bright-lighting.example/catalogue"}}
# What the lint may still say of a template's mail: the test settings' own (plain-http base URL).
SETTINGS_ONLY = {"base-url-http"}


def test_four_ready_made_sequences_are_listed_with_their_values() -> None:
    listed = list_templates()
    assert [t["name"] for t in listed] == NAMES
    assert all(t["title"] and t["description"] for t in listed)
    assert listed[1]["values"]["confirm_url"] is listed[3]["values"]["catalogue_url"] is None  # must be set


def test_every_value_has_a_label_and_a_help_and_every_text_reads_in_chinese() -> None:
    zh = translations("zh_Hans", "admin")
    for template in list_templates():
        assert [f["key"] for f in template["fields"]] == list(template["values"])
        texts = [template["title"], template["description"]]
        for field in template["fields"]:
            assert field["label"] != field["key"] and field["help"].endswith(".")
            assert field["required"] is (template["values"][field["key"]] is None)
            texts += [field["label"], field["help"]]
        untranslated = [text for text in texts if zh.gettext(text) == text]
        assert untranslated == [], template["name"]
    fair = {f["key"]: f for f in list_templates()[3]["fields"]}
    assert fair["catalogue_url"]["label"] == "Catalogue link" and fair["catalogue_url"]["required"]
    assert not fair["fair"]["required"] and fair["fair"]["default"] == "the fair"


def test_value_problems_name_what_is_missing_or_not_a_number() -> None:
    assert value_problems("trade-fair") == {"catalogue_url": "this template needs a value for it"}
    assert value_problems("trade-fair", {"catalogue_url": "https://bright-lighting.example/c"}) == {}
    assert value_problems("re-permission", {"confirm_url": " ", "days": "soon"}) == {
        "confirm_url": "this template needs a value for it", "days": "a whole number, such as -30"}


@pytest.mark.parametrize("name", NAMES)
def test_each_template_parses_and_its_mails_pass_the_lint(runtime, name: str) -> None:
    data = load_template(name, REQUIRED.get(name))
    definition = parse_definition(data)
    mails = [s for s in definition.steps if s["kind"] == "mail"]
    assert len(mails) >= 2
    for step in mails:  # the recipient by contact.*: no older names, nothing unknown
        assert "{{ first_name" not in step["html"] + step["subject"]
        assert "contact." in step["html"]
    with transaction(runtime.factory) as s:
        sequence = create_sequence(s, settings=runtime.settings, data=data)  # refuses a mail the lint blocks
        reports = [lint_campaign(s, settings=runtime.settings, campaign_id=c)
                   for c in due_campaigns(s, sequence_id=sequence.id)]
    assert len(reports) == len(mails)
    for report in reports:
        assert report.ok and {f.code for f in report.findings} <= SETTINGS_ONLY, report.findings


def test_values_fill_in_typed_and_an_empty_optional_field_is_left_out() -> None:
    fair = load_template("trade-fair", {"tag": "canton-2026", "fair": "the Canton Fair",
                                        "catalogue_url": "https://bright-lighting.example/catalogue"})
    assert fair["trigger"] == {"kind": "tag_added", "tag": "canton-2026"}
    assert fair["steps"][0]["subject"] == "Thank you for visiting us at the Canton Fair"
    assert 'href="https://bright-lighting.example/catalogue"' in fair["steps"][2]["html"]
    assert load_template("signup-welcome")["trigger"] == {"kind": "signup_confirmed"}  # any form
    assert load_template("signup-welcome", {"form_id": "3"})["trigger"] == {"kind": "signup_confirmed",
                                                                              "form_id": "3"}
    lapse = load_template("re-permission", {**REQUIRED["re-permission"], "days": "-45"})
    assert lapse["trigger"] == {"kind": "date", "field": "consent_expires_at", "days": -45}
    with pytest.raises(DefinitionError, match="confirm_url"):
        load_template("re-permission")
    with pytest.raises(DefinitionError, match="days: a whole number"):
        load_template("re-permission", {**REQUIRED["re-permission"], "days": "soon"})
    with pytest.raises(DefinitionError, match=r"colour: not a value of this template \(it takes name, tag"):
        load_template("trade-fair", {"colour": "red"})
    with pytest.raises(DefinitionError, match="no ready-made sequence 'newsletter'"):
        load_template("newsletter")


def _lapsing(s, now: datetime, **kw):
    """A Canadian customer whose implied consent (CASL) lapses in 40 days."""
    contact = make_contact(s, consent="implied_purchase", country="CA", language="en", stage="customer", **kw)
    for consent in s.scalars(select(Consent).where(Consent.contact_id == contact.id)):
        consent.expires_at = now + timedelta(days=40)
    return contact


def test_re_permission_asks_before_the_lapse_never_an_unsubscribed_contact_and_ends_unless_confirmed(
        smtp_runtime, smtp_server) -> None:
    now = datetime.now(timezone.utc)
    with transaction(smtp_runtime.factory) as s:
        sequence_id = create_sequence(s, settings=smtp_runtime.settings,
                                      data=load_template("re-permission", REQUIRED["re-permission"])).id
        confirms, silent, gone = (_lapsing(s, now) for _ in range(3))
        unsubscribe_contact(s, contact_id=gone.id, method="one_click")
    with transaction(smtp_runtime.factory) as s:
        report = advance(s, settings=smtp_runtime.settings, now=now + timedelta(days=11))  # 29 days before
    for campaign_id in {c for c, _ in report["batches"]}:
        run_once(smtp_runtime, campaign_id)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted([confirms.email, silent.email])
    assert b"May we keep writing to you?" in smtp_server.messages[0].data

    with transaction(smtp_runtime.factory) as s:  # one confirms through the signup form: express consent
        s.add(Consent(contact_id=confirms.id, kind="express", source="signup form 1", obtained_at=now,
                      wording="Yes, keep me informed."))
    for days in (19, 27):
        with transaction(smtp_runtime.factory) as s:
            advance(s, settings=smtp_runtime.settings, now=now + timedelta(days=days))
    with transaction(smtp_runtime.factory) as s:
        by_contact = {e.contact_id: e for e in enrollments(s, sequence_id=sequence_id)}
        runs = {(r.enrollment_id, r.step_id): r.outcome for r in step_runs(s, sequence_id=sequence_id)}
        mailed = set(s.scalars(select(Send.contact_id).where(
            Send.campaign_id.in_(due_campaigns(s, sequence_id=sequence_id)), Send.skip_reason.is_(None))))
    assert gone.id not in mailed and (gone.id not in by_contact or by_contact[gone.id].state == "exited")
    assert mailed == {confirms.id, silent.id}
    yes, no = by_contact[confirms.id].id, by_contact[silent.id].id
    assert runs[(yes, "confirmed")] == "then" and (yes, "reminder") not in runs and (yes, "mark-confirmed") in runs
    assert runs[(no, "confirmed")] == "else" and (no, "reminder") in runs
    assert runs[(no, "confirmed-after-reminder")] == "else" and (no, "mark-confirmed") not in runs
    assert by_contact[confirms.id].state == by_contact[silent.id].state == "done"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # an adapter: the services run on both
def test_cli_lists_the_templates_and_creates_a_sequence_from_one(env, tmp_path) -> None:
    run(env, "init")
    listed = json.loads(run(env, "sequences", "templates", "--json").output)
    assert [t["name"] for t in listed] == NAMES
    assert "trade-fair" in run(env, "sequences", "templates").output
    created = run(env, "sequences", "create", "--template", "trade-fair", "--set", "name=Canton Fair 2026",
                  "--set", "tag=canton-2026", "--set", "catalogue_url=https://bright-lighting.example/c", "--json")
    sequence_id = json.loads(created.output)["id"]
    shown = json.loads(run(env, "sequences", "show", str(sequence_id), "--json").output)
    assert shown["name"] == "Canton Fair 2026" and shown["trigger"] == {"kind": "tag_added", "tag": "canton-2026"}
    # The same name again is refused; so are an unknown value, a value without "=", and a file beside a template.
    again = run(env, "sequences", "create", "--template", "trade-fair", "--set", "name=Canton Fair 2026",
                "--set", "catalogue_url=https://bright-lighting.example/c", ok=False)
    assert again.exit_code == 1 and "exists" in again.output
    bad = run(env, "sequences", "create", "--template", "trade-fair", "--set", "colour=red", ok=False)
    assert bad.exit_code == 1 and "colour" in bad.output
    assert run(env, "sequences", "create", "--template", "trade-fair", "--set", "tag", ok=False).exit_code == 2
    missing = run(env, "sequences", "create", "--template", "re-permission", ok=False)
    assert missing.exit_code == 1 and "confirm_url" in missing.output
    (tmp_path / "x.yaml").write_text("name: x\n")
    both = run(env, "sequences", "create", str(tmp_path / "x.yaml"), "--template", "trade-fair", ok=False)
    assert both.exit_code == 2 and "either" in both.output
