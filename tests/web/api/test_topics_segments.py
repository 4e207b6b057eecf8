"""/topics, subscriptions and /segments with counts."""

from __future__ import annotations

from tests.web.api.conftest import assert_problem

API = "/api/v1"


def test_topics_and_subscriptions(client, admin) -> None:
    created = client.post(f"{API}/topics", headers=admin, json={"slug": "led-lighting", "name": "LED lighting"})
    assert created.status_code == 201
    assert_problem(client.post(f"{API}/topics", headers=admin, json={"slug": "led-lighting"}), 409, "slug")
    assert_problem(client.post(f"{API}/topics", headers=admin, json={"slug": "LED Lighting"}), 422, "slug")
    assert [t["slug"] for t in client.get(f"{API}/topics", headers=admin).json()] == ["led-lighting"]

    cid = client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example"}).json()["id"]
    sub = client.put(f"{API}/contacts/{cid}/subscriptions/led-lighting", headers=admin)
    assert sub.status_code == 200 and sub.json()["status"] == "subscribed"
    assert client.put(f"{API}/contacts/{cid}/subscriptions/led-lighting", headers=admin).status_code == 200
    assert [s["topic"] for s in client.get(f"{API}/contacts/{cid}/subscriptions", headers=admin).json()] == ["led-lighting"]
    assert_problem(client.put(f"{API}/contacts/{cid}/subscriptions/solar", headers=admin), 404)
    assert_problem(client.put(f"{API}/contacts/55555/subscriptions/led-lighting", headers=admin), 404)


def test_a_person_who_unsubscribed_is_not_resubscribed_by_the_api(client, admin) -> None:
    client.post(f"{API}/topics", headers=admin, json={"slug": "solar"})
    cid = client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example"}).json()["id"]
    client.put(f"{API}/contacts/{cid}/subscriptions/solar", headers=admin)
    client.post(f"{API}/contacts/{cid}/unsubscribe", headers=admin)
    assert client.get(f"{API}/contacts/{cid}/subscriptions", headers=admin).json()[0]["status"] == "unsubscribed"
    assert_problem(client.put(f"{API}/contacts/{cid}/subscriptions/solar", headers=admin), 409)


def test_segments_and_counts(client, admin) -> None:
    client.post(f"{API}/contacts/bulk-upsert", headers=admin, json=[
        {"email": "a@a.example", "country": "DE", "stage": "prospect"},
        {"email": "b@b.example", "country": "FR", "stage": "customer"},
        {"email": "c@c.example", "country": "US", "stage": "prospect"}])
    created = client.post(f"{API}/segments", headers=admin, json={"name": "EU prospects",
                                                                  "expression": "region = eu and stage = prospect"})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    # Upserted without consent: they match, but nobody has a lawful basis to be mailed yet.
    assert client.get(f"{API}/segments/{sid}/count", headers=admin).json() == {
        "count": 1, "suppressed": 0, "no_lawful_basis": 1, "reachable": 0}
    assert client.post(f"{API}/segments/count", headers=admin, json={"expression": "stage = prospect"}).json() == {
        "count": 2, "suppressed": 0, "no_lawful_basis": 2, "reachable": 0}
    assert [s["name"] for s in client.get(f"{API}/segments", headers=admin).json()] == ["EU prospects"]
    assert_problem(client.post(f"{API}/segments", headers=admin, json={"name": "EU prospects", "expression": ""}), 409, "name")
    body = assert_problem(client.post(f"{API}/segments", headers=admin, json={"name": "x", "expression": "stage = vip"}),
                          422, "expression")
    assert "vip" in body["detail"]
    assert_problem(client.post(f"{API}/segments/count", headers=admin, json={"expression": "(" * 3000}), 422)
    assert_problem(client.get(f"{API}/segments/777/count", headers=admin), 404)
