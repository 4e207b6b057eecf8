"""CSV import: header aliases, validation that names row and field, all-or-nothing, suppression kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from sendwell.contacts.fields import ImportFileError
from sendwell.contacts.importer import import_contacts
from sendwell.contacts.service import export_contacts
from sendwell.db.models import Consent, Contact, Subscription
from sendwell.optout.service import unsubscribe_contact

PEPPER = b"test-pepper-0123456789"


def write(tmp_path: Path, text: str, name: str = "contacts.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_english_headers_and_normalisation(session, tmp_path) -> None:
    path = write(tmp_path, "E-mail,First Name,Last Name,Company,Job Title,Country,Industry,Stage,Language,Tags\n"
                           "Anna.Mueller@Licht-Haus.EXAMPLE,Anna,Müller,Licht Haus GmbH,Buyer,Germany,Lighting,Prospect,de-DE,fair;vip\n"
                           "bob@acme.example,Bob,Smith,Acme Inc.,Owner,US,hardware,customer,en,\n")
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express", topic="led")
    assert (result.created, result.updated, result.errors) == (2, 0, [])
    anna = session.scalar(select(Contact).where(Contact.email == "Anna.Mueller@licht-haus.example"))
    assert anna is not None
    assert (anna.country, anna.region, anna.industry, anna.stage, anna.language) == ("DE", "eu", "lighting", "prospect", "de-DE")
    assert anna.tags == ["fair", "vip"]
    bob = session.scalar(select(Contact).where(Contact.email == "bob@acme.example"))
    assert (bob.region, bob.stage) == ("us", "customer")
    assert session.scalar(select(func.count()).select_from(Consent)) == 2
    assert session.scalar(select(func.count()).select_from(Subscription)) == 2


def test_chinese_headers_and_gb18030(session, tmp_path) -> None:
    path = write(tmp_path, "邮箱,姓名,公司,国家,行业,客户阶段\n"
                           "li.wei@shop.example,Li Wei,上海贸易,英国,furniture,老客户\n",
                 encoding="gb18030")
    result = import_contacts(session, path=path, pepper=PEPPER)
    assert result.errors == [] and result.created == 1
    contact = session.scalar(select(Contact))
    assert (contact.first_name, contact.last_name, contact.company) == ("Li", "Wei", "上海贸易")
    assert (contact.country, contact.region, contact.stage) == ("GB", "uk", "customer")


def test_unknown_columns_become_custom_fields(session, tmp_path) -> None:
    path = write(tmp_path, "email,WhatsApp\nx@y.example,+49 170 1234567\n")
    result = import_contacts(session, path=path, pepper=PEPPER)
    assert result.custom_columns == ["WhatsApp"]
    assert session.scalar(select(Contact)).custom == {"WhatsApp": "+49 170 1234567"}


def test_bad_rows_are_named_and_nothing_is_written(session, tmp_path) -> None:
    good = write(tmp_path, "email,country\nkeep@me.example,FR\n", name="first.csv")
    import_contacts(session, path=good, pepper=PEPPER)
    session.commit()
    bad = write(tmp_path, "email,country,stage\n"
                          "ok@fine.example,DE,prospect\n"
                          "not-an-address,DE,prospect\n"
                          "keep@me.example,Narnia,prospect\n"
                          "z@z.example,US,vip\n", name="bad.csv")
    result = import_contacts(session, path=bad, pepper=PEPPER)
    messages = [str(e) for e in result.errors]
    assert messages[0].startswith("row 3, field 'email'")
    assert messages[1].startswith("row 4, field 'country'") and "Narnia" in messages[1]
    assert messages[2].startswith("row 5, field 'stage'") and "vip" in messages[2]
    session.rollback()
    emails = set(session.scalars(select(Contact.email)))
    assert emails == {"keep@me.example"}
    assert session.scalar(select(Contact.country)) == "FR"


def test_missing_email_header_is_a_clear_error(session, tmp_path) -> None:
    path = write(tmp_path, "name,company\nAnna,X\n")
    with pytest.raises(ImportFileError, match="no email column"):
        import_contacts(session, path=path, pepper=PEPPER)


def test_dry_run_writes_nothing(session, tmp_path) -> None:
    path = write(tmp_path, "email\na@b.example\n")
    result = import_contacts(session, path=path, pepper=PEPPER, dry_run=True)
    assert result.created == 1
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_reimport_never_resubscribes_and_export_leaves_opt_outs_out(session, tmp_path) -> None:
    """COMPLIANCE rules 17 and 18."""
    path = write(tmp_path, "email\nleaver@buyer.example\nstayer@buyer.example\n")
    import_contacts(session, path=path, pepper=PEPPER, consent="express")
    leaver = session.scalar(select(Contact).where(Contact.email == "leaver@buyer.example"))
    unsubscribe_contact(session, contact_id=leaver.id, method="one_click")
    session.commit()
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express")
    session.commit()
    assert result.suppressed == 1
    out = tmp_path / "export.csv"
    assert export_contacts(session, path=out) == 1
    text = out.read_text()
    assert "stayer@buyer.example" in text and "leaver@buyer.example" not in text


def test_implied_consent_gets_its_casl_expiry(session, tmp_path) -> None:
    path = write(tmp_path, "email\na@b.example\n")
    import_contacts(session, path=path, pepper=PEPPER, consent="implied_inquiry")
    consent = session.scalar(select(Consent))
    assert 180 <= (consent.expires_at - consent.obtained_at).days <= 184


def test_the_import_page_cache_is_its_own_and_only_while_it_runs(session, tmp_path) -> None:
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        pytest.skip("a SQLite connection setting")
    cache_size = lambda: connection.exec_driver_sql("PRAGMA cache_size").scalar()  # noqa: E731
    before = cache_size()
    seen: list[int] = []
    path = write(tmp_path, "email\n" + "".join(f"b{i}@shop{i}.example\n" for i in range(5)))
    import_contacts(session, path=path, pepper=PEPPER, chunk_size=2,
                    on_progress=lambda *_: seen.append(cache_size()))
    assert seen and set(seen) == {-65536}
    assert cache_size() == before != -65536
    # A failing import gives the connection back as it found it, too.
    bad = write(tmp_path, "email\nnot-an-address\n", name="bad.csv")
    import_contacts(session, path=bad, pepper=PEPPER)
    assert cache_size() == before
