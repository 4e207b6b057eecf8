"""`sendwell campaigns list|clone|rename|archive|delete`: the admin's campaign management on the command line."""

from __future__ import annotations

import click

from sendwell.campaigns.service import (
    CampaignError,
    archive_campaign,
    clone_campaign,
    delete_campaign,
    recent_campaigns,
    rename_campaign,
    sequence_steps,
)
from sendwell.cli.common import emit, fail, json_option
from sendwell.cli.context import get_runtime
from sendwell.db.session import transaction


@click.command("list")
@click.option("--archived", is_flag=True, help="The archived campaigns instead of the others.")
@click.option("--include-sequences", is_flag=True, help="Also the campaigns of sequences' mail steps.")
@json_option
def campaigns_list(archived: bool, include_sequences: bool, as_json: bool) -> None:
    """The newest campaigns first (200 at most); a sequence's step campaigns name their sequence and step."""
    runtime = get_runtime()
    with transaction(runtime.factory) as session:
        rows = recent_campaigns(session, archived=archived, include_sequences=include_sequences)
        steps = sequence_steps(session, campaign_ids=[c.id for c in rows])
        listed = [{"id": c.id, "name": c.name, "kind": c.kind, "status": c.status, "created_at": c.created_at,
                   "sequence": steps.get(c.id)} for c in rows]
    if as_json:
        emit(listed, as_json)
        return
    for c in listed:
        step = c["sequence"]
        where = f"  (sequence {step['sequence']!r} #{step['sequence_id']}, step {step['step']})" if step else ""
        click.echo(f"{c['id']:>6}  {c['status']:<10} {c['kind']:<13} {c['name']}{where}")
    if not listed:
        click.echo("no campaigns")


@click.command("clone")
@click.argument("campaign_id", type=int)
@click.option("--name", default=None, help='The copy\'s name (default "Copy of <name>").')
@json_option
def campaigns_clone(campaign_id: int, name: str | None, as_json: bool) -> None:
    """Copy a campaign's content and audience into a new draft; prints the new id."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            copy = clone_campaign(session, campaign_id=campaign_id, name=name)
            copy_id, copy_name = copy.id, copy.name
    except CampaignError as exc:
        fail(str(exc))
    emit({"id": copy_id, "name": copy_name, "from": campaign_id}, as_json, str(copy_id))


@click.command("rename")
@click.argument("campaign_id", type=int)
@click.argument("name")
@json_option
def campaigns_rename(campaign_id: int, name: str, as_json: bool) -> None:
    """Give a campaign, in any status, a new name."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            new_name = rename_campaign(session, campaign_id=campaign_id, name=name).name
    except CampaignError as exc:
        fail(str(exc))
    emit({"id": campaign_id, "name": new_name}, as_json, f"campaign {campaign_id} is now named {new_name!r}")


@click.command("archive")
@click.argument("campaign_id", type=int)
@click.option("--undo", is_flag=True, help="Take the campaign out of the archive again.")
@json_option
def campaigns_archive(campaign_id: int, undo: bool, as_json: bool) -> None:
    """Archive a finished or cancelled campaign: hidden from the admin's list, sends and report kept."""
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            archive_campaign(session, campaign_id=campaign_id, archived=not undo)
    except CampaignError as exc:
        fail(str(exc))
    emit({"id": campaign_id, "archived": not undo}, as_json,
         f"campaign {campaign_id} {'restored from the archive' if undo else 'archived'}")


@click.command("delete")
@click.argument("campaign_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def campaigns_delete(campaign_id: int, yes: bool, as_json: bool) -> None:
    """Delete a draft that never sent (anything that sent stays: archive it instead)."""
    if not yes:
        click.confirm(f"Delete draft campaign {campaign_id} for good?", abort=True)
    runtime = get_runtime()
    try:
        with transaction(runtime.factory) as session:
            delete_campaign(session, campaign_id=campaign_id)
    except CampaignError as exc:
        fail(str(exc))
    emit({"id": campaign_id, "deleted": True}, as_json, f"campaign {campaign_id} deleted")


COMMANDS = (campaigns_list, campaigns_clone, campaigns_rename, campaigns_archive, campaigns_delete)
