"""`sendwell demo` runs the whole mission against real loopback servers."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.cli.main import cli, register_commands
from sendwell.demo.run import format_summary

register_commands()


def test_demo_runs_the_mission(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "demo"), "--contacts", "300", "--json"],
                                env={"SENDWELL_SECRET_KEY": None, "SENDWELL_DATABASE_URL": None},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    first, second = summary["campaigns"]
    assert first["states"]["sent"] > 100
    optout = summary["optout"]
    # 6 one-click before the second campaign, then each web method once more (demo/optout.py),
    # and one fair visitor after the sequence's thank-you (demo/sequence.py); the ARF complaint
    # adds one opt-out with method complaint.
    insight = summary["insight"]
    # …and the badly targeted campaign's leavers unsubscribe on the page (the insight step).
    assert summary["unsubscribed"] == {"one_click": 9, "page": 2 + insight["leavers"], "preference_center": 1,
                                       "complaint": 1}
    assert optout["resubscribed"] == 1 and optout["preferences_changed"] == 4
    assert sum(optout["reasons"].values()) == 11 and optout["reasons"]["too_many"] == 4
    assert optout["thank_you_sent"] == 10  # 11 web leavers; the one who clicked Undo first gets none
    assert optout["magic_links_sent"] == 1
    # Feedback: a hard bounce and a complaint suppress; the soft bounce, the delay and the
    # 5.7.515 sender-fault rejection do not (the hard-bounced send is marked failed).
    feedback = summary["feedback"]
    assert feedback["actions"] == {"hard_bounce": 1, "soft_bounce": 1, "delay": 1, "sender_fault": 1, "complaint": 1}
    assert feedback["suppressed"] == {"hard_bounce": 1, "complaint": 1} and feedback["alerts"] == 1
    delivered_first = first["states"]["sent"] + first["states"]["failed"]
    assert first["states"]["failed"] == 1
    # Suppression wins over every other reason; the same-day follow-up also meets the
    # prospects' default cap (1 per 7 days), so they are skipped as frequency_cap.
    skipped = second["skipped"]
    assert {k: skipped[k] for k in ("unsubscribed", "bounced", "complained")} == {
        "unsubscribed": 6, "bounced": 1, "complained": 1}
    assert set(skipped) == {"unsubscribed", "bounced", "complained", "frequency_cap"}
    assert second["states"]["sent"] == delivered_first - 8 - skipped["frequency_cap"]
    # The demo's own policy step: a capped prospect and a paused customer, with their reasons.
    assert [c["skip_reason"] for c in summary["policy"]["contacts"]] == ["frequency_cap", "paused"]
    assert summary["policy"]["campaign"]["skipped"] == {"frequency_cap": 1, "paused": 1}
    assert summary["checks"] == {"get_status": 200, "repeat_post_status": 200}
    assert summary["mails_received"] == (delivered_first + second["states"]["sent"]
                                         + optout["thank_you_sent"] + optout["magic_links_sent"]
                                         + insight["sent"] + insight["thank_you_sent"]
                                         + summary["hygiene"]["sent"]
                                         + summary["sequence"]["sent"] + summary["sequence"]["thank_you_sent"])
    # Insight: the spike on the badly targeted campaign, what drove it, and the advice.
    assert insight["leavers"] >= 5 and insight["thank_you_sent"] == insight["leavers"]
    critical = [a for a in insight["alerts"] if a["severity"] == "critical"]
    assert critical and critical[0]["kind"] == "unsubscribe_spike"
    assert (critical[0]["driver"]["dimension"], critical[0]["driver"]["value"]) == ("industry", "furniture")
    assert insight["recommendations"][0]["code"] == "review_targeting"
    assert insight["recommendations"][0]["evidence"]["industry"] == "furniture"
    assert len(list((tmp_path / "demo" / "received").glob("*.eml"))) == summary["mails_received"]
    # Content: both sent campaigns pass the compliance lint; the careless draft is refused.
    assert [c["ok"] for c in summary["lint"]["campaigns"]] == [True, True]
    assert {line.split(" ")[3] for line in summary["lint"]["refused"]["findings"]} == {
        "unsubscribe-hidden:", "deceptive-subject:"}
    assert summary["lint"]["previews"] == len(list((tmp_path / "demo" / "previews").glob("*.eml"))) > 1
    assert summary["api"] == {"upsert_status": 201, "engagement_status": 201, "unsubscribed_is_suppressed": True,
                              "wrong_scope_status": 403,
                              "metrics_mails_sent": first["states"]["sent"] + second["states"]["sent"]}
    # Audience: topics, several consent kinds, an XLSX import, a saved segment, export, erasure.
    audience = summary["audience"]
    assert audience["topics"] == ["led-lighting", "smart-home", "product-launches"]
    assert set(audience["consent_kinds"]) == {"express", "implied_inquiry", "implied_purchase",
                                              "legitimate_interest_b2b", "soft_opt_in"}
    assert audience["xlsx_imported"] == 36
    # DE B2B legitimate interest, lapsed CA inquiries and CN soft opt-in have no basis.
    assert audience["fair_leads"]["no_lawful_basis"] == 9
    assert " and " in audience["segment"]["expression"] and audience["segment"]["matching"] > 0
    # Export leaves every suppressed address out: all opt-outs (less the one undone) and the hard bounce.
    suppressed = (sum(summary["unsubscribed"].values()) - summary["optout"]["resubscribed"]
                  + summary["feedback"]["suppressed"]["hard_bounce"])
    assert audience["exported"] == audience["contacts_before_export"] - suppressed
    assert audience["erasure"]["reimport_kept_out"] == 1 and audience["erasure"]["reimport_created"] == 0
    # Hygiene: one hygiene pass mails last year's quiet leads once (never the one who clicked
    # recently nor the one who unsubscribed); the keep-me GET changes nothing, the POST keeps;
    # a pass 31 days on suppresses the unanswered with reason sunset.
    hygiene = summary["hygiene"]
    assert hygiene["asked"] == hygiene["sent"] == 4
    assert (hygiene["keep_get_status"], hygiene["keep_post_status"]) == (200, 200)
    assert hygiene["kept"] == ["a.dubois@lumiere-lyon.example"]
    assert hygiene["sunset"] == ["info@lichthaus-berlin.example", "j.smith@gmial.com",
                                 "m.rossi@illuminazione-rossi.example"]
    assert hygiene["flagged"]["role_address"] >= 1 and hygiene["flagged"]["typo_suspected"] >= 1
    pass1, pass2 = hygiene["reports"]
    assert pass1["jobs"]["sunset"]["entered"] == 4 and pass2["jobs"]["sunset"]["sunset"] == 3
    assert pass2["jobs"]["sunset"]["kept"] == 1
    # The ready-made trade-fair sequence over ten simulated days: everyone thanked, the one who
    # unsubscribed after it gets no catalogue, those who clicked it become prospects and get the
    # sample offer, the others end at the branch.
    fair = summary["sequence"]
    steps = {s["id"]: s for s in fair["steps"] if s["kind"] == "mail"}
    assert list(steps) == ["thanks", "catalogue", "samples"] and fair["visitors"] > 5
    assert (steps["thanks"]["sent"], steps["thanks"]["unsubscribed"]) == (fair["visitors"], 1)
    assert (steps["catalogue"]["sent"], steps["catalogue"]["clicked"]) == (fair["visitors"] - 1, 4)
    assert steps["samples"]["sent"] == fair["prospects"] == fair["clicked"] == 4
    assert fair["exited"] == ["unsubscribed"] and fair["done"] == fair["visitors"] - 1
    assert fair["sent"] == 2 * fair["visitors"] - 1 + 4 and fair["thank_you_sent"] == 1
    shown = format_summary(summary)
    assert "Sequence " in shown and f"catalogue    sent {fair['visitors'] - 1}, clicked 4, unsubscribed 0" in shown



def test_demo_refuses_to_wipe_a_folder_it_did_not_make(tmp_path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "precious")])
    assert result.exit_code != 0 and "not a demo folder" in result.output
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
