"""`sendwell demo`."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import click
import uvicorn

from sendwell.access.users import create_user, get_user_by_email, update_user
from sendwell.cli.common import emit, fail, json_option
from sendwell.config import load_settings
from sendwell.db.session import transaction
from sendwell.demo.run import format_summary, run_demo
from sendwell.runtime import Runtime
from sendwell.web.app import create_app
from sendwell.web.server import log_config, proxy_options
from sendwell.worker.queue import Queue


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("sendwell-demo"),
              show_default=True, help="A demo folder; recreated on every run.")
@click.option("--contacts", default=1200, show_default=True, help="How many synthetic buyers to seed.")
@click.option("--serve", "serve_after", is_flag=True,
              help="Afterwards leave the web app (with the admin) running on the demo's data; Ctrl-C stops it.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve: the address to listen on.")
@click.option("--port", default=8025, show_default=True, type=int, help="With --serve: the port to listen on.")
@json_option
def demo(data_dir: Path, contacts: int, serve_after: bool, host: str, port: int, as_json: bool) -> None:
    """Run the whole mission on the embedded default with loopback SMTP and HTTP."""
    started = time.monotonic()
    say = (lambda _msg: None) if as_json else click.echo
    try:
        result = run_demo(data_dir, contacts=contacts, say=say)
    except RuntimeError as exc:
        fail(str(exc))
    result.summary["seconds"] = round(time.monotonic() - started, 1)
    emit(result.summary, as_json, format_summary(result.summary) + f"\n(done in {result.summary['seconds']} s)")
    if serve_after:
        serve_demo(result.data_dir, host=host, port=port, as_json=as_json)


def serve_demo(data_dir: Path, *, host: str, port: int, as_json: bool) -> None:
    """Keep the web app running on the demo folder, with a fresh admin login printed once."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    # Mail sent from the admin is captured in the demo folder: nothing leaves the machine.
    runtime = Runtime(load_settings(data_dir=data_dir, smtp_url="capture", base_url=url))
    email, password = "admin@demo.sendwell.example", secrets.token_urlsafe(12)
    with transaction(runtime.factory) as session:
        existing = get_user_by_email(session, email=email)
        if existing is None:
            create_user(session, email=email, password=password, role="admin")
        else:
            update_user(session, user_id=existing.id, password=password)
    emit({"admin_url": f"{url}/admin", "email": email, "password": password}, as_json,
         f"\nWeb admin: {url}/admin\n  sign in as {email} with password {password}\n"
         f"  (mail sent from the admin is captured in {runtime.settings.capture_dir}; Ctrl-C stops the server)")
    consumer = Queue(runtime).consumer(workers=1)
    consumer.start()
    try:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning", log_config=log_config(runtime.settings.log_format),
                    **proxy_options(runtime.settings.trusted_proxies))
    finally:
        consumer.stop(graceful=True)
        runtime.dispose()
