"""Screenshots of the recipient pages in headless Chromium (docs/screenshots/), on a demo database.

    python scripts/screenshots.py DEMO_DATA_DIR     # e.g. the folder `sendwell demo` made
Needs the Debian package `chromium` (and fonts-noto-cjk for Chinese).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
LANGUAGES = ("en", "zh_Hans", "de")


def main() -> None:
    data_dir = Path(sys.argv[1]).resolve()
    os.environ["SENDWELL_DATA_DIR"] = str(data_dir)
    from sendwell.config import load_settings
    from sendwell.db.models import Contact, Event, Suppression
    from sendwell.db.session import transaction
    from sendwell.demo.smtp_server import free_port
    from sendwell.optout.tokens import SALT_PREFERENCES, SALT_UNSUBSCRIBE, TokenData, make_token
    from sendwell.runtime import Runtime

    port = free_port()
    settings = load_settings(data_dir=data_dir)
    runtime = Runtime(settings)
    with transaction(runtime.factory) as session:
        gone = session.scalar(select(Suppression.contact_id).where(Suppression.contact_id.is_not(None)).limit(1))
        campaign = session.scalar(select(Event.campaign_id).where(Event.campaign_id.is_not(None)).limit(1))
        stays = session.scalar(select(Contact.id).where(Contact.id.not_in(
            select(Suppression.contact_id).where(Suppression.contact_id.is_not(None)))).limit(1))
    keys = settings.secret_keys
    pages = {
        "unsubscribe": f"/u/{make_token(keys, SALT_UNSUBSCRIBE, TokenData(stays, campaign, None))}",
        "preferences": f"/p/{make_token(keys, SALT_PREFERENCES, TokenData(stays, campaign, None))}",
        # A GET on the link of someone already unsubscribed shows the confirmation page
        # (survey + Undo) without changing anything.
        "confirmation": f"/u/{make_token(keys, SALT_UNSUBSCRIBE, TokenData(gone, campaign, None))}",
    }
    from sendwell.demo.run import DEMO_IDENTITY

    env = dict(os.environ, **{f"SENDWELL_{k.rstrip('_').upper()}": v for k, v in DEMO_IDENTITY.items()})
    server = subprocess.Popen([str(Path(sys.executable).parent / "sendwell"), "serve", "--port", str(port),
                               "--workers", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        OUT.mkdir(parents=True, exist_ok=True)
        for lang in LANGUAGES:
            for name, path in pages.items():
                target = OUT / f"{name}-{lang}.png"
                with tempfile.TemporaryDirectory() as profile:
                    subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                    "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                                    f"--screenshot={target}", "--window-size=420,900",
                                    f"http://127.0.0.1:{port}{path}?lang={lang}"],
                                   check=True, capture_output=True, timeout=60)
                print(target.relative_to(REPO))
    finally:
        server.terminate()
        server.wait(timeout=10)
        runtime.dispose()


if __name__ == "__main__":
    main()
