"""Editing the sender identity and the frequency policy in the admin: validated, stored in the
database (not sendwell.env), applied at once; the environment still wins; the page says where
each value comes from; sendwell.env is still read for what the database does not hold."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sendwell.config import CONFIG_FILE_NAME, load_settings, read_config_file, write_config_values
from sendwell.db.models import StoredSetting
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from sendwell.settings_edit import SettingsError, refresh_from_file, stored_values, update_settings
from tests.web.admin.conftest import page_csrf


def stored(runtime) -> dict[str, str]:
    with runtime.factory() as session:
        return stored_values(session)


def update(runtime, changes: dict[str, str]):
    with transaction(runtime.factory) as session:
        return update_settings(runtime.settings, changes, session)


@pytest.fixture(autouse=True)
def _no_sendwell_env(monkeypatch) -> None:
    # The CI environment could set any of these; the tests decide.
    for name in ("SENDWELL_COMPANY_NAME", "SENDWELL_POSTAL_ADDRESS", "SENDWELL_STAGE_CAPS", "SENDWELL_FROM",
                 "SENDWELL_SEND_WINDOW", "SENDWELL_WEBSITE"):
        monkeypatch.delenv(name, raising=False)


def test_admin_changes_identity_and_caps_and_they_apply_at_once(as_role, runtime) -> None:
    client = as_role("admin")
    token = page_csrf(client, "/admin/settings")
    saved = client.post("/admin/settings", data={
        "csrf_token": token, "company_name": "Ningbo Bright Lighting Group", "postal_address": "1 Harbour Road, Ningbo",
        "stage_caps": "new_lead=1/30d,prospect=1/14d,customer=2/30d", "website": "https://bright-lighting.example"})
    assert saved.status_code == 200 and "Saved." in saved.text
    assert 'value="Ningbo Bright Lighting Group"' in saved.text
    s = runtime.settings
    assert (s.company_name, s.postal_address) == ("Ningbo Bright Lighting Group", "1 Harbour Road, Ningbo")
    assert s.stage_caps == "new_lead=1/30d,prospect=1/14d,customer=2/30d"
    saved_rows = stored(runtime)
    assert saved_rows["company_name"] == "Ningbo Bright Lighting Group"
    assert saved_rows["website"] == "https://bright-lighting.example"
    assert not s.config_file.exists() or "company_name" not in read_config_file(s.config_file)  # not in sendwell.env
    with runtime.factory() as session:
        row = session.scalars(select(StoredSetting).where(StoredSetting.key == "SENDWELL_COMPANY_NAME")).one()
    assert row.updated_by == "admin@bright-lighting.example" and row.updated_at is not None
    # The page labels the stored values as such.
    assert 'data-from-db="company_name"' in saved.text and 'data-from-db="contact_email"' not in saved.text
    # A new process on the same database applies them at start.
    other = Runtime(load_settings(data_dir=s.data_dir, database_url=s.effective_database_url))
    try:
        assert sorted(other.load_stored_settings()) == ["company_name", "postal_address", "stage_caps", "website"]
        assert other.settings.postal_address == "1 Harbour Road, Ningbo"
    finally:
        other.dispose()
    again = client.post("/admin/settings", data={"csrf_token": token, "company_name": "Ningbo Bright Lighting Group"})
    assert "Nothing changed." in again.text


def test_a_bad_value_is_named_and_nothing_is_saved(as_role, runtime) -> None:
    client = as_role("admin")
    token = page_csrf(client, "/admin/settings")
    before = runtime.settings.company_name
    bad = client.post("/admin/settings", data={"csrf_token": token, "company_name": "New name",
                                               "stage_caps": "prospect=lots"})
    assert bad.status_code == 400 and "SENDWELL_STAGE_CAPS" in bad.text and 'aria-invalid="true"' in bad.text
    assert 'value="prospect=lots"' in bad.text  # what was typed stays in the form
    assert runtime.settings.company_name == before  # all or nothing
    assert stored(runtime) == {}
    for field, value, words in [("postal_address", "  ", "required"), ("from_", "no address", "not a name and address"),
                                ("website", "ftp://x", "not an http(s) URL"), ("send_window", "someday", "SEND_WINDOW"),
                                ("company_name", "A\nB", "one line")]:
        answer = client.post("/admin/settings", data={"csrf_token": token, field: value})
        assert answer.status_code == 400 and words in answer.text, (field, answer.text[:300])


def test_the_environment_wins_and_the_page_says_so(as_role, runtime, monkeypatch) -> None:
    monkeypatch.setenv("SENDWELL_COMPANY_NAME", "From the environment Ltd.")
    client = as_role("admin")
    page = client.get("/admin/settings").text
    assert 'data-from-env="company_name"' in page and 'name="company_name"' in page
    with pytest.raises(SettingsError, match="set in the environment"):
        update(runtime, {"company_name": "Other"})
    assert stored(runtime) == {}


def test_only_admins_edit_settings(as_role) -> None:
    marketer = as_role("marketer")
    assert marketer.post("/admin/settings", data={"csrf_token": page_csrf(marketer),
                                                  "company_name": "Mine now"}).status_code == 403


def test_sendwell_env_is_still_read_and_labelled_but_the_database_wins(as_role, runtime) -> None:
    """Values an older release wrote to sendwell.env from the admin stay in force until saved here."""
    path = runtime.settings.config_file
    write_config_values(path, {"postal_address": "9 Quay Street, Ningbo", "website": "https://old.example"})
    other = load_settings(data_dir=runtime.settings.data_dir)
    assert other.postal_address == "9 Quay Street, Ningbo"
    refresh_from_file(other)  # remember the file as it is
    write_config_values(path, {"postal_address": "10 Quay Street, Ningbo"})
    reloaded, applied = refresh_from_file(other)
    assert applied == ["postal_address"] and reloaded.postal_address == "10 Quay Street, Ningbo"
    assert other.postal_address == "9 Quay Street, Ningbo"  # a new object; the old one is never changed
    assert refresh_from_file(reloaded) is None  # unchanged file: nothing to do
    # The page says which values come from this machine's file.
    runtime.replace_settings(runtime.settings.replace(website="https://old.example"))
    page = as_role("admin").get("/admin/settings").text
    assert 'data-from-file="website"' in page and 'data-from-file="company_name"' not in page
    # Saved in the admin, the database wins over the file on the next scan (and at start).
    update(runtime, {"website": "https://new.example"})
    write_config_values(path, {"website": "https://newer-in-the-file.example"})
    scanning = Runtime(reloaded.replace(database_url=runtime.settings.effective_database_url))
    try:
        assert "website" in scanning.refresh_settings()
        assert scanning.settings.website == "https://new.example"
        assert scanning.refresh_settings() == []
    finally:
        scanning.dispose()


def test_saving_builds_new_settings_and_leaves_the_old_object_alone(runtime) -> None:
    before = runtime.settings
    new, changed = update(runtime, {"stage_caps": "prospect=1/14d", "company_name": before.company_name})
    assert changed == {"stage_caps": "prospect=1/14d"}
    assert new is not before and before.stage_caps != "prospect=1/14d"
    assert new.stage_cap_rules["prospect"].window == 14 * 86400  # parsed from the new text
    with runtime.factory() as session:
        assert update_settings(new, {"stage_caps": "prospect=1/14d"}, session) == (new, {})  # same object
    assert stored(runtime) == {"stage_caps": "prospect=1/14d"}  # only what changed is stored


LINE_BREAKS = ["\r", "\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
INJECTED = "Acme\u2028SENDWELL_WEBHOOK_URLS=https://evil.example"


def test_a_unicode_line_break_cannot_add_a_setting_through_the_form(as_role, runtime) -> None:
    client = as_role("admin")
    token = page_csrf(client, "/admin/settings")
    answer = client.post("/admin/settings", data={"csrf_token": token, "company_name": INJECTED})
    assert answer.status_code == 400 and "SENDWELL_COMPANY_NAME" in answer.text and "line break" in answer.text
    assert stored(runtime) == {}
    assert not runtime.settings.config_file.exists()


@pytest.mark.parametrize("separator", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_every_line_separator_is_refused_and_named(runtime, separator) -> None:
    with pytest.raises(SettingsError, match="SENDWELL_POSTAL_ADDRESS.*line break") as refused:
        update(runtime, {"postal_address": f"1 Harbour Road{separator}SENDWELL_SECRET_KEY=x"})
    assert refused.value.field == "postal_address"
    assert stored(runtime) == {}


@pytest.mark.parametrize("separator", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_the_env_file_writer_never_lets_a_value_become_a_second_setting(tmp_path, separator) -> None:
    path = tmp_path / CONFIG_FILE_NAME
    value = f"Acme{separator}SENDWELL_WEBHOOK_URLS=https://evil.example"
    write_config_values(path, {"company_name": value, "dkim_selector": "s1"})
    assert read_config_file(path) == {"company_name": value, "dkim_selector": "s1"}
    assert load_settings(data_dir=tmp_path).webhook_urls == ""


def test_the_env_file_keeps_quotes_backslashes_and_plain_values(tmp_path) -> None:
    path = tmp_path / CONFIG_FILE_NAME
    path.write_text('SENDWELL_SECRET_KEY=abc\nSENDWELL_COMPANY_NAME="Old Ltd."\r\n# a comment\n')
    tricky = {"from_": "Bright Lighting <sales@example.com>", "postal_address": 'Unit "7" \\ Quay # 2 \t'}
    write_config_values(path, tricky)
    assert read_config_file(path) == {"secret_key": "abc", "company_name": "Old Ltd.", **tricky}
    assert "SENDWELL_SECRET_KEY=abc" in path.read_text().split("\n") and "# a comment" in path.read_text()
