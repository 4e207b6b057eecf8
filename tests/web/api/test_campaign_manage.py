"""Campaign clone, rename, delete and archive over the REST API; the same service as the admin and the CLI."""

from __future__ import annotations

from sendwell.campaigns.service import is_archived
from sendwell.db.models import Campaign
from sendwell.db.session import transaction


def _campaign(runtime, **fields) -> int:
    with transaction(runtime.factory) as s:
        campaign = Campaign(**({"name": "Spring", "subject": "s", "html": "<p>Hi</p>", "status": "draft"} | fields))
        s.add(campaign)
        s.flush()
        return campaign.id


def test_clone_rename_delete_and_archive(client, auth, runtime) -> None:
    write, read = auth("campaigns:write"), auth("campaigns:read")
    draft_id, finished_id = _campaign(runtime), _campaign(runtime, name="Autumn", status="finished")
    assert client.post(f"/api/v1/campaigns/{draft_id}/clone", headers=read).status_code == 403
    cloned = client.post(f"/api/v1/campaigns/{finished_id}/clone", headers=write)
    assert cloned.status_code == 201 and cloned.json()["name"] == "Copy of Autumn" and cloned.json()["status"] == "draft"
    named = client.post(f"/api/v1/campaigns/{finished_id}/clone", json={"name": "Winter"}, headers=write)
    assert named.json()["name"] == "Winter"
    renamed = client.post(f"/api/v1/campaigns/{draft_id}/rename", json={"name": "Spring EU"}, headers=write)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Spring EU"
    assert client.post(f"/api/v1/campaigns/{draft_id}/rename", json={"name": ""}, headers=write).status_code == 422
    assert client.delete(f"/api/v1/campaigns/{finished_id}", headers=write).status_code == 409
    assert client.delete(f"/api/v1/campaigns/{draft_id}", headers=write).status_code == 204
    assert client.delete(f"/api/v1/campaigns/{draft_id}", headers=write).status_code == 404
    assert client.post(f"/api/v1/campaigns/{cloned.json()['id']}/archive", headers=write).status_code == 409
    archived = client.post(f"/api/v1/campaigns/{finished_id}/archive", headers=write)
    assert archived.json() == {"id": finished_id, "archived": True}
    with transaction(runtime.factory) as s:
        assert is_archived(s, campaign_id=finished_id) and s.get(Campaign, draft_id) is None
    assert client.post(f"/api/v1/campaigns/{finished_id}/unarchive", headers=write).json()["archived"] is False
