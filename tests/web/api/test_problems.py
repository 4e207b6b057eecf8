"""RFC 9457: every error under /api/v1 is application/problem+json, and the OpenAPI says so."""

from __future__ import annotations

from tests.web.api.conftest import assert_problem

API = "/api/v1"


def test_unknown_path_wrong_method_and_bad_json_are_problems(client, admin) -> None:
    assert_problem(client.get(f"{API}/nothing-here", headers=admin), 404)
    assert_problem(client.get(f"{API}/contacts/x%0A/consents", headers=admin), 422)
    assert_problem(client.get(f"{API}/x%0Ay", headers=admin), 404)
    assert_problem(client.put(f"{API}/contacts", headers=admin), 405)
    body = assert_problem(client.post(f"{API}/contacts", headers={**admin, "Content-Type": "application/json"},
                                      content=b"{not json"), 422)
    assert body["errors"]
    assert_problem(client.post(f"{API}/contacts", headers={**admin, "Content-Type": "application/json"},
                               content=b"\xff\xfe{"), 400)


def test_validation_problem_shape(client, admin) -> None:
    body = assert_problem(client.post(f"{API}/contacts", headers=admin, json={"email": "a@b.example", "colour": "red"}),
                          422, "colour")
    assert body["type"] == "tag:sendwell,2026:problem/validation"
    assert body["title"] == "Unprocessable Entity"
    assert body["detail"].startswith("colour:")
    assert_problem(client.get(f"{API}/contacts/0", headers=admin), 422, "path.contact_id")
    assert_problem(client.get(f"{API}/contacts/{2**63}", headers=admin), 422, "path.contact_id")


def test_openapi_is_served_and_describes_problems(client) -> None:
    doc = client.get(f"{API}/openapi.json").json()
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert "Problem" in doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code[0] in "45"}
            assert {"401", "403", "422"} <= set(errors), (method, path)
            for response in errors.values():
                assert list(response["content"]) == ["application/problem+json"], (method, path)
    # No Swagger UI: it would load scripts from a CDN; the JSON document is the reference.
    assert_problem(client.get(f"{API}/docs"), 404)


def test_an_unexpected_failure_is_a_500_problem(runtime, admin, monkeypatch) -> None:
    import warnings

    import sendwell.web.api.reports as reports
    from sendwell.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # The one mock here: a failure that a healthy database cannot be made to produce on demand.
    monkeypatch.setattr(reports, "build_report", broken)
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    body = assert_problem(client.get(f"{API}/reports", headers=admin), 500)
    assert "disk on fire" not in body["detail"]  # internals stay in the log
