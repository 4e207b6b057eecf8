"""Import of real files: GBK with Chinese headers, XLSX, bad rows and the rejected-rows file,
mapping overrides, duplicates, streaming chunks, suppression kept out, per-row consent."""

from __future__ import annotations

import csv
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from sendwell.contacts.fields import parse_mapping
from sendwell.contacts.importer import ImportFileError, import_contacts
from sendwell.contacts.vocabulary import add_value
from sendwell.db.models import Consent, Contact, Subscription
from sendwell.optout.service import unsubscribe_contact

PEPPER = b"test-pepper-0123456789"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def write(tmp_path: Path, text: str, name: str = "contacts.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def xlsx(tmp_path: Path, rows: list[list[object]], name: str = "contacts.xlsx") -> Path:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def rejected_rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_gbk_csv_with_chinese_headers(session, tmp_path) -> None:
    path = write(tmp_path, "邮箱,姓名,公司,国家,行业,客户阶段,语言,时区\n"
                           "li.wei@shop.example,Li Wei,上海贸易有限公司,中国,照明,老客户,中文,asia/shanghai\n"
                           "hans@laden.example,Hans Becker,Laden GmbH,德国,五金,意向客户,德语,Europe/Berlin\n",
                 encoding="gbk")
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express", now=NOW)
    assert result.errors == [] and result.created == 2 and result.written
    assert "gb18030" in result.file_format
    li = session.scalar(select(Contact).where(Contact.email == "li.wei@shop.example"))
    assert (li.company, li.country, li.region, li.industry, li.stage) == ("上海贸易有限公司", "CN", "cn", "lighting", "customer")
    assert (li.language, li.timezone) == ("zh", "Asia/Shanghai")
    hans = session.scalar(select(Contact).where(Contact.email == "hans@laden.example"))
    assert (hans.country, hans.industry, hans.stage, hans.language) == ("DE", "hardware", "prospect", "de")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_encodings_and_delimiters_are_detected(session, tmp_path, encoding, delimiter) -> None:
    text = delimiter.join(["E-mail", "Company", "Country"]) + "\n" + \
        delimiter.join(["eva@zürich.example", "Müller & Söhne, AG", "Schweiz"]) + "\n"
    if delimiter == ",":
        text = text.replace("Müller & Söhne, AG", '"Müller & Söhne, AG"')
    result = import_contacts(session, path=write(tmp_path, text, encoding=encoding), pepper=PEPPER)
    assert result.errors == [] and result.created == 1
    contact = session.scalar(select(Contact))
    assert (contact.email, contact.company, contact.country) == ("eva@zürich.example", "Müller & Söhne, AG", "CH")


def test_xlsx_file(session, tmp_path) -> None:
    path = xlsx(tmp_path, [
        ["Email", "First Name", "Company", "Country", "Industry", "Stage", "Phone", "Since"],
        ["buyer@möbel.example", "Jonas", "Möbel Haus", "DE", "Furniture", "customer", 4917012345678,
         datetime(2024, 5, 1)],
        [None, None, None, None, None, None, None, None],  # an empty row is skipped
        ["+cmd|' /C calc'!A0", "Eve", "", "US", "", "", None, None],
    ])
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express", skip_invalid=True,
                             rejected_path=tmp_path / "rej.csv")
    assert result.file_format.startswith("XLSX")
    assert (result.created, result.rejected, result.written) == (1, 1, True)
    contact = session.scalar(select(Contact))
    assert contact.email == "buyer@möbel.example" and contact.industry == "furniture"
    assert contact.custom == {"Phone": "4917012345678", "Since": "2024-05-01"}
    [bad] = rejected_rows(result.rejected_file)
    assert (bad["row"], bad["field"]) == ("4", "email")
    assert bad["value"].startswith("'+")  # the rejected file is itself safe to open in Excel


def test_bad_rows_all_or_nothing_with_rejected_file(session, tmp_path) -> None:
    path = write(tmp_path, "email,country,stage,industry,language,timezone\n"
                           "ok@fine.example,DE,prospect,lighting,de,Europe/Berlin\n"
                           "not-an-address,DE,prospect,lighting,de,\n"
                           "x@y.example,Narnia,prospect,lighting,,\n"
                           "z@z.example,US,vip,lighting,,\n"
                           "w@z.example,US,prospect,unicorns,,\n"
                           "v@z.example,US,prospect,lighting,klingon-xx-yy,Mars/Olympus\n")
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express")
    assert not result.written and result.rejected == 5 and result.created + result.updated <= 1
    assert count(session, Contact) == 0 and count(session, Consent) == 0
    rows = rejected_rows(result.rejected_file)
    assert [(r["row"], r["field"]) for r in rows] == [
        ("3", "email"), ("4", "country"), ("5", "stage"), ("6", "industry"), ("7", "language"), ("7", "timezone")]
    assert "Narnia" in rows[1]["reason"] and "vip" in rows[2]["reason"]
    assert "vocabulary add industry" in rows[3]["reason"]
    assert result.rejected_file == str(tmp_path / "contacts.rejected.csv")


def test_skip_invalid_imports_the_good_rows(session, tmp_path) -> None:
    path = write(tmp_path, "email,country\nok@fine.example,DE\nbad@,DE\nalso@fine.example,FR\n")
    result = import_contacts(session, path=path, pepper=PEPPER, skip_invalid=True)
    assert (result.created, result.rejected, result.written) == (2, 1, True)
    assert set(session.scalars(select(Contact.email))) == {"ok@fine.example", "also@fine.example"}


def test_mapping_override(session, tmp_path) -> None:
    path = write(tmp_path, "Mail Address,Firma,Notes,Status\nkim@firma.example,Firma AG,call back,lead\n")
    with pytest.raises(ImportFileError, match="no email column"):
        import_contacts(session, path=path, pepper=PEPPER)
    mapping = parse_mapping("Mail Address=email, Firma=company, Notes=-, Status=custom.crm_status")
    result = import_contacts(session, path=path, pepper=PEPPER, mapping=mapping)
    assert result.created == 1
    contact = session.scalar(select(Contact))
    assert (contact.company, contact.custom, contact.stage) == ("Firma AG", {"crm_status": "lead"}, "new_lead")
    with pytest.raises(ImportFileError, match="unknown field 'colour'"):
        parse_mapping("Firma=colour")
    with pytest.raises(ImportFileError, match="'Fax', which is not a column"):
        import_contacts(session, path=path, pepper=PEPPER, mapping={"Fax": "email"})


def test_duplicates_merge_within_the_file_and_against_the_database(session, tmp_path) -> None:
    first = write(tmp_path, "email,company,tags\nann@a.example,A Ltd,fair\n", name="first.csv")
    import_contacts(session, path=first, pepper=PEPPER, consent="express", now=NOW)
    # Chunks of 2 rows: the duplicates fall in the same chunk and in different chunks.
    path = write(tmp_path, "email,first_name,company,tags,country\n"
                           "ANN@A.EXAMPLE,Ann,,vip,GB\n"
                           "bo@b.example,Bo,B Inc,,US\n"
                           "bo@b.example,,B Incorporated,x,\n"
                           "cy@c.example,Cy,,,\n"
                           "ann@a.example,,,late,\n"
                           "cy@c.example,,C GmbH,,DE\n")
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express", now=NOW, chunk_size=2)
    assert (result.created, result.updated, result.duplicates) == (2, 1, 3)
    # ANN@A.EXAMPLE is the stored ann@a.example: addresses match whatever their letter case,
    # and the stored spelling stays.
    ann = session.scalar(select(Contact).where(Contact.email == "ann@a.example"))
    assert (ann.first_name, ann.company, ann.country, ann.tags) == ("Ann", "A Ltd", "GB", ["fair", "late", "vip"])
    assert session.scalar(select(Contact).where(Contact.email == "ANN@a.example")) is None
    bo = session.scalar(select(Contact).where(Contact.email == "bo@b.example"))
    assert (bo.first_name, bo.company, bo.country, bo.tags) == ("Bo", "B Incorporated", "US", ["x"])
    cy = session.scalar(select(Contact).where(Contact.email == "cy@c.example"))
    assert (cy.company, cy.country, cy.region) == ("C GmbH", "DE", "eu")
    # One consent per contact per import, not per duplicate row.
    per_contact = dict(session.execute(
        select(Contact.email, func.count(Consent.id)).join(Consent).group_by(Contact.email)).all())
    assert per_contact == {"ann@a.example": 2, "bo@b.example": 1, "cy@c.example": 1}


def test_reimport_of_a_suppressed_address_keeps_it_out(session, tmp_path) -> None:
    """COMPLIANCE rule 18: re-importing never resubscribes."""
    path = write(tmp_path, "email,company\nleaver@buyer.example,Old Co\nstayer@buyer.example,Stay Co\n")
    import_contacts(session, path=path, pepper=PEPPER, consent="express", topic="led")
    leaver = session.scalar(select(Contact).where(Contact.email == "leaver@buyer.example"))
    unsubscribe_contact(session, contact_id=leaver.id, method="one_click")
    session.flush()
    again = write(tmp_path, "email,company\nleaver@buyer.example,New Co\nstayer@buyer.example,Stay Co\n", name="again.csv")
    result = import_contacts(session, path=again, pepper=PEPPER, consent="express", topic="led")
    assert (result.suppressed, result.updated, result.rejected) == (1, 1, 0) and result.written
    session.refresh(leaver)
    assert leaver.company == "Old Co"
    consents = session.scalars(select(Consent).where(Consent.contact_id == leaver.id)).all()
    assert len(consents) == 1 and consents[0].withdrawn_at is not None  # no fresh consent slipped in
    sub = session.scalar(select(Subscription).where(Subscription.contact_id == leaver.id))
    assert sub.status == "unsubscribed"
    [kept] = rejected_rows(result.rejected_file)
    assert kept["reason"].startswith("kept out")


def test_consent_kind_source_wording_and_casl_dates(session, tmp_path) -> None:
    path = write(tmp_path, "email,country,consent,consent date\n"
                           "a@ca.example,CA,implied_purchase,2025-06-01\n"
                           "b@ca.example,CA,,\n"
                           "c@fr.example,FR,legitimate interest,\n")
    result = import_contacts(session, path=path, pepper=PEPPER, consent="implied_inquiry",
                             consent_source="trade_fair", source="Canton Fair 2026",
                             wording="Yes, send me your catalogue", now=NOW)
    assert result.consents == 3
    rows = {c.contact.email: c for c in session.scalars(select(Consent))}
    a, b, c = rows["a@ca.example"], rows["b@ca.example"], rows["c@fr.example"]
    assert a.kind == "implied_purchase" and a.obtained_at == datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert a.expires_at == datetime(2027, 6, 1, tzinfo=timezone.utc)  # CASL: 2 years from the purchase
    assert b.kind == "implied_inquiry" and b.expires_at == NOW + timedelta(days=183)
    assert c.kind == "legitimate_interest_b2b" and c.expires_at is None
    assert {x.source_kind for x in rows.values()} == {"trade_fair"}
    assert a.source == "import:Canton Fair 2026" and a.wording == "Yes, send me your catalogue"
    assert len(a.wording_hash) == 64


def test_unknown_consent_kind_is_a_clear_error(session, tmp_path) -> None:
    path = write(tmp_path, "email\na@b.example\n")
    with pytest.raises(ImportFileError, match="--consent: unknown consent kind 'maybe'"):
        import_contacts(session, path=path, pepper=PEPPER, consent="maybe")


def test_added_industries_and_stages_are_accepted(session, tmp_path) -> None:
    path = write(tmp_path, "email,industry,stage\na@b.example,Solar Panels,key account\n")
    first = import_contacts(session, path=path, pepper=PEPPER)
    assert first.rejected == 1 and [e.field for e in first.errors] == ["industry", "stage"]
    add_value(session, kind="industry", value="solar-panels", aliases=["太阳能板"])
    add_value(session, kind="stage", value="Key Account")
    result = import_contacts(session, path=path, pepper=PEPPER)
    assert result.written
    contact = session.scalar(select(Contact))
    assert (contact.industry, contact.stage) == ("solar-panels", "key_account")
    with pytest.raises(ValueError, match="already means 'lighting'"):
        add_value(session, kind="industry", value="lamps", aliases=["照明"])


def test_region_map_override(session, tmp_path) -> None:
    path = write(tmp_path, "email,country\nhk@x.example,Hong Kong\nch@x.example,CH\n")
    import_contacts(session, path=path, pepper=PEPPER, region_map={"HK": "cn", "CH": "eu"})
    regions = dict(session.execute(select(Contact.country, Contact.region)).all())
    assert regions == {"HK": "cn", "CH": "eu"}


def test_dry_run_writes_nothing_but_counts(session, tmp_path) -> None:
    path = write(tmp_path, "email\na@b.example\nc@d.example\n")
    result = import_contacts(session, path=path, pepper=PEPPER, dry_run=True, consent="express", topic="t")
    assert (result.created, result.written) == (2, False)
    assert count(session, Contact) == 0 and count(session, Consent) == 0


def test_a_non_table_file_is_a_clear_error(session, tmp_path) -> None:
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    with pytest.raises(ImportFileError, match="old Excel .xls"):
        import_contacts(session, path=tmp_path / "old.xls", pepper=PEPPER)
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ImportFileError, match="empty"):
        import_contacts(session, path=tmp_path / "empty.csv", pepper=PEPPER)


def test_streaming_many_chunks_with_progress(session, tmp_path) -> None:
    lines = ["email,country,industry"] + [f"u{i}@d{i % 7}.example,DE,lighting" for i in range(2500)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    seen: list[tuple[int, int | None, int]] = []
    result = import_contacts(session, path=path, pepper=PEPPER, consent="express", chunk_size=300,
                             on_progress=lambda done, total, rows: seen.append((done, total, rows)))
    assert result.created == 2500 and count(session, Consent) == 2500
    assert len(seen) == 9 and seen[-1][2] == 2500 and seen[-1][0] == seen[-1][1]


def test_nul_bytes_in_cells_are_dropped(session, tmp_path) -> None:
    path = write(tmp_path, "email,company\nnul@x.example,Bad\x00Co\n")
    result = import_contacts(session, path=path, pepper=PEPPER)
    assert result.written and session.scalar(select(Contact.company)) == "BadCo"


def peak_rss_since_reset() -> int:
    """This process's peak resident memory in bytes since the last reset (Linux clear_refs)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def xlsx_bomb(tmp_path: Path, padding: int) -> Path:
    """A real workbook whose sheet XML carries a `padding`-byte inline string: tiny packed, huge unpacked."""
    plain = xlsx(tmp_path, [["email", "company"], ["bomb@x.example", "PLACEHOLDER"]], name="plain.xlsx")
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename != "xl/worksheets/sheet1.xml":
                target.writestr(member, data)
                continue
            head, _, tail = data.partition(b"<c r=\"B2\"")
            tail = tail[tail.index(b"</c>") + 4:]
            with target.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
                out.write(head + b'<c r="B2" t="inlineStr"><is><t>')
                for _ in range(padding // (1 << 20)):
                    out.write(b"A" * (1 << 20))
                out.write(b"</t></is></c>" + tail)
    return path


def test_an_xlsx_decompression_bomb_is_refused_before_it_is_unpacked(session, tmp_path) -> None:
    path = xlsx_bomb(tmp_path, 64 << 20)
    assert path.stat().st_size < 200_000
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the peak so the figure below is this import's
    before = peak_rss_since_reset()
    with pytest.raises(ImportFileError, match=r"bomb\.xlsx.*decompression bomb.*sheet1\.xml"):
        import_contacts(session, path=path, pepper=PEPPER)
    assert peak_rss_since_reset() - before < 20 << 20
    assert count(session, Contact) == 0
