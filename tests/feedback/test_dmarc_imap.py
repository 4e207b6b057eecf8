"""DMARC aggregate reports read from a real Dovecot IMAP mailbox by `feedback ingest --imap`."""

from __future__ import annotations

import imaplib
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import DmarcRecord, DmarcReport
from sendwell.db.session import transaction
from tests.feedback.dmarc_reports import cli_env, google, microsoft, report_mail, zipped
from tests.feedback.factories import DOMAIN
from tests.feedback.test_imap import DOVECOT, imap_server  # noqa: F401 - the fixture, by its name

register_commands()
# The fixture starts a Dovecot process.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(DOVECOT is None, reason="needs dovecot (apt-get install dovecot-imapd)")]


def test_reports_in_an_imap_mailbox_are_stored_once_and_marked_seen(runtime, imap_server) -> None:  # noqa: F811
    laughs = (b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
              b"<feedback><report_metadata><org_name>&b;</org_name></report_metadata></feedback>")
    hostile = report_mail("google.com", "laughs", zipped("r.xml", laughs), f"google.com!{DOMAIN}!1!2.zip",
                          "application/zip", "noreply-dmarc-support@google.com")
    client = imaplib.IMAP4("127.0.0.1", imap_server)
    client.login("dmarc", "secret")
    for raw in (google(), microsoft(), google(), hostile):
        status, _ = client.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))
        assert status == "OK"
    client.logout()
    env = cli_env(runtime)
    url = f"imap://dmarc:secret@127.0.0.1:{imap_server}/INBOX"
    result = CliRunner().invoke(cli, ["feedback", "ingest", "--json", "--imap", url], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"source": "imap", "messages": 4, "actions": {
        "dmarc_duplicate": 1, "dmarc_refused": 1, "dmarc_stored": 2}}
    with transaction(runtime.factory) as s:
        assert s.scalar(select(func.count()).select_from(DmarcReport)) == 2
        assert s.scalar(select(func.count()).select_from(DmarcRecord)) == 5
        assert set(s.scalars(select(DmarcReport.source))) == {"imap"}
    again = CliRunner().invoke(cli, ["feedback", "ingest", "--json", "--imap", url], env=env, catch_exceptions=False)
    assert json.loads(again.output)["messages"] == 0
