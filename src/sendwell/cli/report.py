"""`sendwell report`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction
from sendwell.insight.alerts import Thresholds, check_recent
from sendwell.insight.report import build_report, render_html, write_csv


@click.command()
@click.option("--campaign", "campaign_id", type=int, default=None, help="One campaign; default all.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="Also write the rates as CSV.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML report with charts.")
@json_option
def report(campaign_id: int | None, csv_file: Path | None, html_file: Path | None, as_json: bool) -> None:
    """Unsubscribe, complaint and bounce rates by campaign and audience, reasons, alerts, advice.

    With --campaign also its opens and clicks (people and machines apart) and its links."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            # Opt-outs that arrived since the last scheduler run count in this report's alerts.
            check_recent(session, thresholds=Thresholds.from_settings(runtime.settings))
            data = build_report(session, campaign_id=campaign_id)
    except ValueError as exc:
        fail(str(exc))
    if csv_file:
        write_csv(data, csv_file)
    if html_file:
        html_file.write_text(render_html(data, company=runtime.settings.company_name), encoding="utf-8")
    if as_json:
        emit(data, True)
        return
    _print_rich(data)


def _print_rich(data: dict) -> None:
    # Clicks by people, and beside them by machines (link scanners); opens only where the pixel was on.
    engagement = [("clicked", "clicks"), ("machine_clicked", "machine\nclicks")]
    if data.get("opens_tracked"):
        engagement += [("opened", "opens"), ("machine_opened", "machine\nopens")]
    console = Console(width=max(Console().width, 110 + 10 * (len(engagement) - 2)))

    def rates_table(title: str, first: str, rows: list[dict]) -> Table:
        table = Table(title=title, title_justify="left", padding=(0, 1))
        table.add_column(first, min_width=12, max_width=34, overflow="ellipsis")
        for col in ("sent", "unsubs", "rate", "complaints", "bounces", *(name for _, name in engagement)):
            # Figures never shrink into "0.0…": the methods column wraps and the names give way instead.
            table.add_column(col, justify="right", no_wrap=True, min_width=max(6, *map(len, col.split("\n"))))
        table.add_column("unsubscribed by method", min_width=12, overflow="fold")
        for r in rows:
            methods = ", ".join(f"{k} {v}" for k, v in r["unsubscribed_by_method"].items())
            table.add_row(str(r["key"]), str(r["delivered"]), str(r["unsubscribed"]), f"{r['unsubscribe_rate']:.2%}",
                          str(r["complained"]), str(r["hard_bounced"]), *(str(r.get(key, 0)) for key, _ in engagement),
                          methods)
        return table

    console.print(rates_table("Campaigns", "campaign", data["campaigns"]))
    if data.get("engagement"):
        _print_engagement(console, data["engagement"], opens=bool(data.get("opens_tracked")))
    for dim in ("region", "stage", "industry"):
        console.print(rates_table(f"By {dim}", dim, data["by"][dim]))
    counts = data["reasons"]["counts"].get("all", {})
    if counts:
        console.print("Why people left: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    for alert in data["alerts"]:
        console.print(f"[bold]{alert['severity']}[/bold]: {alert['message']}", highlight=False)
    for rec in data["recommendations"]:
        console.print(f"→ [bold]{rec['title']}[/bold]: {rec['why']}", highlight=False)


def _print_engagement(console: Console, figures: dict, *, opens: bool) -> None:
    """One campaign's opens and clicks: people and machines, unique and total; the machines' signs; each link."""
    # Without the open pixel there are no opens: the tables then speak of clicks only.
    table = Table(title="Opens and clicks" if opens else "Clicks", title_justify="left", padding=(0, 1))
    for col in ("", "people", "their opens/clicks" if opens else "their clicks", "rate", "mails machines fetched",
                "machine fetches"):
        table.add_column(col, justify="right" if col else "left")
    for name in (("opens", "clicks") if opens else ("clicks",)):
        f = figures[name]
        table.add_row(name, str(f["people"]), str(f["people_total"]), f"{f['rate']:.2%}", str(f["machines"]),
                      str(f["machines_total"]))
    console.print(table)
    if figures["machine_reasons"]:
        signs = Table(title="How the machines were recognised", title_justify="left", padding=(0, 1))
        keys = ("clicked", "opened", "clicked_total", "opened_total") if opens else ("clicked", "clicked_total")
        signs.add_column("sign")
        for key in keys:
            signs.add_column(key.replace("_total", "").replace("clicked", "clicks").replace("opened", "opens")
                             if key.endswith("_total") else f"mails {key}", justify="right")
        for r in figures["machine_reasons"]:
            signs.add_row(r["label"], *(str(r[key]) for key in keys))
        console.print(signs)
    if figures["links"]:
        links = Table(title="Links", title_justify="left", padding=(0, 1))
        links.add_column("link", overflow="fold", min_width=30)
        for col in ("people", "clicks", "click rate", "share", "machine clicks"):
            links.add_column(col, justify="right", no_wrap=True)
        for k in figures["links"]:
            name = f"{k['label']}\n{k['url']}" if k["label"] else k["url"]
            links.add_row(name, str(k["people"]), str(k["people_total"]), f"{k['click_rate']:.2%}", f"{k['share']:.0%}",
                          str(k["machines"]))
        console.print(links)
