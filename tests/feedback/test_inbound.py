"""process_inbound: routing by envelope recipient to bounces, mailto opt-outs and replies."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sendwell.db.models import Event, Suppression
from sendwell.feedback.inbound import asks_to_stop, process_inbound, route_of
from sendwell.optout.tokens import make_mailto_token
from tests.feedback.factories import DOMAIN, arf, dsn, make_sent, reply, verp
from tests.helpers import make_contact


def _suppression(session, contact) -> str | None:
    return session.scalar(select(Suppression.reason).where(Suppression.email_hash == contact.email_hash))


def _events(session, contact) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.contact_id == contact.id).order_by(Event.id)))


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"from_": f"Ningbo Bright Lighting <sales@{DOMAIN}>"})


def test_routes(settings) -> None:
    assert route_of(f"bounce+12.abc@{DOMAIN}", settings) == "bounce"
    assert route_of(f"Unsubscribe+x-y-z@{DOMAIN.upper()}", settings) == "mailto"
    assert route_of(f"sales@{DOMAIN}", settings) == "reply"
    assert route_of("bounce+12.abc@elsewhere.example", settings) == "foreign"


def test_mailto_token_unsubscribes_once(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    token = make_mailto_token(settings.secret_keys, contact.id, send.campaign_id)
    raw = reply(sender=contact.email, subject="unsubscribe", body="", to=f"unsubscribe+{token}@{DOMAIN}")
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"unsubscribe+{token}@{DOMAIN}"], settings=settings)
    assert (result.route, result.action, result.contact_id) == ("mailto", "unsubscribed", contact.id)
    assert _suppression(session, contact) == "unsubscribe"
    [event] = _events(session, contact)
    assert (event.kind, event.method, event.campaign_id) == ("unsubscribed", "mailto", send.campaign_id)
    [again] = process_inbound(session, raw=raw, rcpt_to=[f"unsubscribe+{token}@{DOMAIN}"], settings=settings)
    assert again.action == "already_unsubscribed" and len(_events(session, contact)) == 1


def test_mailto_token_survives_case_folding(session, settings) -> None:
    contact = make_contact(session)
    token = make_mailto_token(settings.secret_keys, contact.id, None).upper()
    [result] = process_inbound(session, raw=b"Subject: x\n\n", rcpt_to=[f"UNSUBSCRIBE+{token}@{DOMAIN}"],
                               settings=settings)
    assert result.action == "unsubscribed"


@pytest.mark.parametrize("token", ["1-0-aaaaaaaaaaaaaaaa", "zz", "", "1-1-" + "b" * 16])
def test_forged_mailto_token_changes_nothing(session, settings, token) -> None:
    contact = make_contact(session, email="someone@example.org")
    raw = reply(sender="attacker@evil.example", subject="unsubscribe", body="unsubscribe")
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"unsubscribe+{token}@{DOMAIN}"] if token else
                               [f"unsubscribe+x@{DOMAIN}"], settings=settings)
    assert result.action in ("forged_token", "unknown_contact")
    assert _suppression(session, contact) is None and _events(session, contact) == []


REPLIES = [
    ("en", "Re: LED panels", "Please unsubscribe me from this list.\n\nThanks"),
    ("en-command", "Re: LED panels", "STOP"),
    ("en-subject", "Remove me", ""),
    ("zh", "回复: LED panels", "请不要再发邮件给我，谢谢。"),
    ("zh-td", "Re: LED", "退订"),
    ("de", "AW: LED panels", "Bitte tragen Sie mich aus Ihrem Verteiler aus. Bitte abmelden.\n\nMfG"),
    ("fr", "RE: LED panels", "Merci de me désinscrire de votre liste.\n\nCordialement"),
    ("es", "RE: LED panels", "Por favor, quiero darme de baja de esta lista."),
    ("es-cancel", "Cancelar suscripción", "Gracias"),
]


@pytest.mark.parametrize(("lang", "subject", "body"), REPLIES, ids=[r[0] for r in REPLIES])
def test_reply_asking_to_stop_unsubscribes_for_review(session, settings, lang, subject, body) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    quoted = "\n\nOn Mon, 3 Mar 2026, Ningbo Bright Lighting wrote:\n> New LED panels\n> Unsubscribe: https://x\n"
    raw = reply(sender=contact.email, subject=subject, body=body + quoted, in_reply_to=send.message_id)
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert (result.route, result.action) == ("reply", "unsubscribed")
    assert _suppression(session, contact) == "unsubscribe"
    [event] = _events(session, contact)
    assert (event.method, event.data["review"], event.campaign_id) == ("reply", True, send.campaign_id)


def test_reply_quoting_our_footer_is_not_an_unsubscribe(session, settings) -> None:
    contact = make_contact(session)
    body = ("Thanks, please send the price list for 600x600 panels.\n\n"
            "-----Original Message-----\nFrom: Ningbo Bright Lighting\n"
            "Unsubscribe from these mails: https://mail.example/u/x\n")
    raw = reply(sender=contact.email, subject="Re: LED panels", body=body)
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "ignored"
    assert _suppression(session, contact) is None and _events(session, contact) == []


OUT_OF_OFFICE = [
    ("en", "Out of Office: LED panels", "I am out of the office until 12 March with limited access to email."),
    ("de", "Abwesenheitsnotiz: LED panels", "Ich bin bis zum 12. März nicht im Büro. In dringenden Fällen "
     "wenden Sie sich bitte an meine Kollegin."),
    ("fr", "Réponse automatique : LED panels", "Je suis absent du bureau jusqu'au 12 mars."),
    ("es", "Respuesta automática: LED panels", "Estaré fuera de la oficina hasta el 12 de marzo."),
    ("zh", "自动回复: LED panels", "您好，我目前休假，将于3月12日返回办公室。"),
]


@pytest.mark.parametrize(("lang", "subject", "body"), OUT_OF_OFFICE, ids=[r[0] for r in OUT_OF_OFFICE])
def test_out_of_office_is_recorded_not_an_unsubscribe(session, settings, lang, subject, body) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    # Even a notice that mentions "unsubscribe" further down is an auto-reply, not an opt-out.
    body += "\n\nTo unsubscribe from our newsletter click here."
    raw = reply(sender=contact.email, subject=subject, body=body, in_reply_to=send.message_id,
                extra="Auto-Submitted: auto-replied\n" if lang == "en" else "")
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "auto_reply", result
    assert _suppression(session, contact) is None
    assert [e.kind for e in _events(session, contact)] == ["auto_reply"]


def test_reply_from_another_address_unsubscribes_the_contact_mailed(session, settings) -> None:
    contact = make_contact(session, email="j.smith@importer.example")
    send = make_sent(session, contact)
    raw = reply(sender="john@importer.example", subject="Re: LED", body="unsubscribe", in_reply_to=send.message_id)
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert (result.action, result.contact_id) == ("unsubscribed", contact.id)


def test_stop_request_from_a_stranger_changes_nothing(session, settings) -> None:
    contact = make_contact(session)
    raw = reply(sender="stranger@example.net", subject="unsubscribe", body="unsubscribe")
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "unknown_contact" and _suppression(session, contact) is None


def test_bounce_to_the_verp_envelope_suppresses(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    address = verp(settings, send)
    # The DSN's headers were mangled by a gateway; the envelope still carries the VERP address.
    raw = dsn(rcpt="mangled@gateway.example", status="5.1.1", to="undisclosed-recipients:;")
    [result] = process_inbound(session, raw=raw, rcpt_to=[address], settings=settings)
    assert (result.route, result.action, result.contact_id) == ("bounce", "hard_bounce", contact.id)
    assert _suppression(session, contact) == "hard_bounce"
    assert _events(session, contact)[0].data["raw_ref"].startswith("sha256:")


def test_complaint_to_the_bounce_address(session, settings) -> None:
    contact = make_contact(session)
    send = make_sent(session, contact)
    raw = arf(rcpt=contact.email, message_id=send.message_id)
    [result] = process_inbound(session, raw=raw, rcpt_to=[f"bounce@{DOMAIN}"], settings=settings)
    assert result.action == "complaint" and _suppression(session, contact) == "complaint"


def test_bounce_sent_to_the_from_address_needs_our_message_id(session, settings) -> None:
    contact, other = make_contact(session), make_contact(session)
    send = make_sent(session, contact)
    with_id = dsn(rcpt=contact.email, status="5.1.1", message_id=send.message_id, to=f"sales@{DOMAIN}")
    [result] = process_inbound(session, raw=with_id, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "hard_bounce"
    without = dsn(rcpt=other.email, status="5.1.1", to=f"sales@{DOMAIN}")
    [result] = process_inbound(session, raw=without, rcpt_to=[f"sales@{DOMAIN}"], settings=settings)
    assert result.action == "unmatched" and _suppression(session, other) is None


def test_foreign_recipient_is_refused(session, settings) -> None:
    contact = make_contact(session)
    raw = reply(sender=contact.email, subject="unsubscribe", body="unsubscribe")
    [result] = process_inbound(session, raw=raw, rcpt_to=["sales@elsewhere.example"], settings=settings)
    assert result.action == "refused" and _suppression(session, contact) is None


def test_negative_wording_is_not_a_stop_request() -> None:
    assert not asks_to_stop("Re: LED panels", "Please send samples. Don't send the catalogue yet.")
    assert not asks_to_stop("Re: Stop wasting energy", "Interesting, what is the MOQ?")
    assert not asks_to_stop("Re: Unsubscribe anytime", "Price?", original_subject="Unsubscribe anytime")
    assert asks_to_stop("Re: LED panels", "> old text\nunsubscribe")
    assert not asks_to_stop("Re: LED panels", "I don't want to unsubscribe, just use my new address.")
    assert not asks_to_stop("AW: LED", "Bitte nicht abmelden, wir sind weiter interessiert.")
    assert not asks_to_stop("RE: LED", "Je ne veux pas me désinscrire.")
    assert not asks_to_stop("RE: LED", "No quiero darme de baja.")
    assert asks_to_stop("Re: LED", "Please do not email me again.")
    assert asks_to_stop("Re: LED", "不要再发了")
    assert asks_to_stop("Re: LED", "No me envíen más correos.")
    assert asks_to_stop("Re: LED", "No, please unsubscribe me.")
    assert asks_to_stop("Re: LED", "Not interested, remove me from your list")
