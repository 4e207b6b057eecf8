"""The worker's start-up hint: several SMTP sessions per process against a server on loopback."""

from __future__ import annotations

import pytest

from sendwell.mail.transport import loopback_sessions_hint


@pytest.mark.parametrize(("url", "sessions", "hinted"), [
    ("smtp://127.0.0.1:2525", 4, True),
    ("smtps://user:secret@localhost:465", 2, True),
    ("smtp://[::1]:25", 8, True),
    ("smtp://127.0.0.2:25", 4, True),  # all of 127.0.0.0/8 is loopback
    ("smtp://127.0.0.1:2525", 1, False),  # already one session
    ("smtp://mail.example.com:587", 4, False),  # a remote server: sessions hide its latency
    ("smtp://10.0.0.5:25", 4, False),
    ("capture", 4, False),
])
def test_the_hint_names_the_setting_only_for_several_sessions_on_loopback(url, sessions, hinted) -> None:
    hint = loopback_sessions_hint(url, sessions)
    assert (hint is not None) is hinted
    if hint:
        assert "SENDWELL_SMTP_CONCURRENCY=1" in hint and f"{sessions} sessions" in hint
        assert "secret" not in hint  # never the credentials of the URL
