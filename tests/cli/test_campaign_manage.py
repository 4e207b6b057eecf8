"""`sendwell campaigns clone|rename|archive|delete`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sendwell.campaigns.service import is_archived
from sendwell.cli.main import cli, register_commands
from sendwell.db.models import Campaign
from sendwell.db.session import transaction
from sendwell.runtime import Runtime
from tests.conftest import TEST_PEPPER, TEST_SECRET

register_commands()


def invoke(runtime: Runtime, *args: str, **kw):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["campaigns", *args], env={
        "SENDWELL_DATA_DIR": str(runtime.settings.data_dir), "SENDWELL_DATABASE_URL": runtime.settings.effective_database_url,
        "SENDWELL_SECRET_KEY": TEST_SECRET, "SENDWELL_HASH_PEPPER": TEST_PEPPER}, **kw)


def test_clone_rename_archive_and_delete(runtime) -> None:
    with transaction(runtime.factory) as s:
        draft, finished = (Campaign(name=n, subject="s", html="<p>Hi</p>", status=st)
                           for n, st in (("Spring", "draft"), ("Autumn", "finished")))
        s.add_all([draft, finished])
        s.flush()
        draft_id, finished_id = draft.id, finished.id
    cloned = invoke(runtime, "clone", str(finished_id), "--json")
    assert cloned.exit_code == 0, cloned.output
    copy = json.loads(cloned.output)
    assert copy["name"] == "Copy of Autumn" and copy["from"] == finished_id
    assert invoke(runtime, "rename", str(copy["id"]), "Winter").exit_code == 0
    refused = invoke(runtime, "delete", str(finished_id), "--yes")
    assert refused.exit_code == 1 and "only a draft can be deleted" in refused.output
    assert invoke(runtime, "delete", str(draft_id), input="n\n").exit_code == 1  # asked, and declined
    assert invoke(runtime, "delete", str(draft_id), input="y\n").exit_code == 0
    assert invoke(runtime, "archive", str(finished_id)).exit_code == 0
    with transaction(runtime.factory) as s:
        assert s.get(Campaign, copy["id"]).name == "Winter" and s.get(Campaign, draft_id) is None
        assert is_archived(s, campaign_id=finished_id)
    assert invoke(runtime, "archive", str(finished_id), "--undo").exit_code == 0
    with transaction(runtime.factory) as s:
        assert not is_archived(s, campaign_id=finished_id)
