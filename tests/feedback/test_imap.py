"""`feedback ingest --imap` against a real Dovecot IMAP server started on loopback for the test."""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Suppression
from sendwell.db.session import transaction
from sendwell.demo.smtp_server import free_port
from tests.conftest import TEST_PEPPER, TEST_SECRET
from tests.feedback.factories import DOMAIN, dsn, make_sent, reply, verp
from tests.helpers import make_contact

register_commands()
DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)

if DOVECOT is None and os.environ.get("CI"):
    raise RuntimeError("dovecot is not installed; scripts/services.sh should have installed it")
pytestmark = pytest.mark.skipif(DOVECOT is None or os.geteuid() != 0,
                                reason="needs dovecot (apt-get install dovecot-imapd) and root to start it")

_CONFIG = """\
base_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture
def imap_server():
    """A Dovecot instance of our own (own base_dir, own port), stopped after the test."""
    # Not under pytest's tmp folder: that is 0700 root, and the mail user (nobody) must enter it.
    root = Path(tempfile.mkdtemp(prefix="sendwell-dovecot-"))
    os.chmod(root, 0o755)
    (root / "home").mkdir()
    os.chown(root / "home", 65534, 65534)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(_CONFIG.format(root=root, port=port))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot did not start: {proc.stdout.read().decode()} {log}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(root, ignore_errors=True)


def test_ingest_unseen_mail_from_imap(runtime, imap_server) -> None:
    with transaction(runtime.factory) as session:
        gone, leaver = make_contact(session), make_contact(session)
        bounce = dsn(rcpt=gone.email, status="5.1.1", to=verp(runtime.settings, make_sent(session, gone)))
        stop = reply(sender=leaver.email, subject="Re: LED panels", body="Merci de me désinscrire.")
        hashes = (gone.email_hash, leaver.email_hash)
    client = imaplib.IMAP4("127.0.0.1", imap_server)
    client.login("bounces", "secret")
    for raw in (bounce, stop):
        status, _ = client.append("INBOX", None, None, raw.replace(b"\n", b"\r\n"))
        assert status == "OK"
    client.logout()
    env = {"SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.database_url,
           "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER,
           "SENDWELL_FROM": f"Bright <sales@{DOMAIN}>"}
    url = f"imap://bounces:secret@127.0.0.1:{imap_server}/INBOX"
    result = CliRunner().invoke(cli, ["feedback", "ingest", "--json", "--imap", url], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"source": "imap", "messages": 2,
                                         "actions": {"hard_bounce": 1, "unsubscribed": 1}}
    with transaction(runtime.factory) as session:
        reasons = dict(session.execute(select(Suppression.email_hash, Suppression.reason)).all())
    assert reasons == {hashes[0]: "hard_bounce", hashes[1]: "unsubscribe"}
    # Both are \\Seen now: a second run finds nothing new.
    again = CliRunner().invoke(cli, ["feedback", "ingest", "--json", "--imap", url], env=env, catch_exceptions=False)
    assert json.loads(again.output)["messages"] == 0


def test_wrong_imap_password_is_one_line(runtime, imap_server) -> None:
    env = {"SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.database_url,
           "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER}
    # The static passdb accepts only "secret".
    result = CliRunner().invoke(cli, ["feedback", "ingest", "--imap", f"imap://u:wrong@127.0.0.1:{imap_server}/"],
                                env=env)
    assert result.exit_code != 0 and "cannot log in" in result.output
    assert len(result.output.strip().splitlines()) == 1
