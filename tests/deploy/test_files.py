"""The deployment files: the compose file, the image and the systemd units run real sendwell commands."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy import files


def test_compose_runs_the_four_roles_on_postgres_and_redis() -> None:
    services = files.compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    commands = {name: services[name]["command"] for name in files.SENDWELL_SERVICES}
    assert commands["migrate"] == ["migrate"]
    assert commands["web"][:1] == ["serve"] and "--no-outbox" in commands["web"]
    assert commands["web"][commands["web"].index("--workers") + 1] == "0"
    assert commands["worker"] == ["worker"]
    assert commands["listener"][:2] == ["feedback", "listen"]
    for args in commands.values():
        files.resolve(args)  # a real subcommand with real options, or this raises


def test_compose_services_are_healthchecked_or_one_shot_and_start_in_order() -> None:
    services = files.compose()["services"]
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no" and service["healthcheck"] == {"disable": True}
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    for name in ("web", "worker", "listener"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["web"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker"]["healthcheck"]["test"][1:] == ["sendwell", "health"]


def test_compose_secrets_come_from_the_env_file_and_data_from_named_volumes() -> None:
    doc = files.compose()
    services = doc["services"]
    for name in files.SENDWELL_SERVICES:
        service = services[name]
        assert service["env_file"] == "sendwell.env", name
        assert not any(k.startswith("SENDWELL_") for k in service.get("environment", {})), name
        for volume in service["volumes"]:
            assert volume.split(":")[0] in doc["volumes"], f"{name}: {volume} is not a named volume"
        assert "dkim_key" in service["secrets"]
    assert (files.DEPLOY / doc["secrets"]["dkim_key"]["file"]).name == "dkim.pem"
    example = files.env_example()
    for key in ("SENDWELL_DATABASE_URL", "SENDWELL_QUEUE_URL", "SENDWELL_BASE_URL", "SENDWELL_SECRET_KEY",
                "SENDWELL_HASH_PEPPER", "SENDWELL_DKIM_DOMAIN", "SENDWELL_DKIM_KEY_FILE", "SENDWELL_FROM",
                "SENDWELL_COMPANY_NAME", "SENDWELL_POSTAL_ADDRESS", "SENDWELL_CONTACT_EMAIL",
                "SENDWELL_TRUSTED_PROXIES"):
        assert key in example, key
    # The secrets are left for the operator to fill in: an example key would end up in production.
    assert example["SENDWELL_SECRET_KEY"] == "" and example["SENDWELL_HASH_PEPPER"] == ""
    assert example["SENDWELL_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in example[
        "SENDWELL_DATABASE_URL"]
    assert example["SENDWELL_QUEUE_URL"].startswith("redis://redis:")


def test_compose_config_validates_when_docker_compose_is_here() -> None:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("docker compose is not installed here")
    result = subprocess.run([docker, "compose", "-f", str(files.COMPOSE), "--env-file", str(files.ENV_EXAMPLE),
                             "config", "--quiet", "--no-interpolate"], capture_output=True, text=True,
                            check=False)
    # Without deploy/sendwell.env and deploy/dkim.pem only the missing-file complaint is acceptable.
    assert result.returncode == 0 or re.search(r"sendwell\.env|dkim\.pem", result.stderr), result.stderr


def test_dockerfile_is_slim_multi_stage_non_root_with_sendwell_as_entrypoint() -> None:
    text = (files.DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    final = text.split("\nFROM ")[-1]
    assert "build-essential" not in final and "gcc" not in final  # the compiler stays in the build stage
    assert "--no-index" in final and "python -m venv" in final
    assert re.search(r"^USER sendwell$", final, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["sendwell"\]$', final, re.MULTILINE)
    assert "HEALTHCHECK" in final and "/healthz" in final
    ignore = (Path(__file__).resolve().parents[2] / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!src/"]


UNITS = ("sendwell-migrate.service", "sendwell-web.service", "sendwell-worker@.service", "sendwell-listener.service")


def test_units_run_the_same_commands_as_the_containers() -> None:
    services = files.compose()["services"]
    expected = {"sendwell-migrate.service": "migrate", "sendwell-web.service": "web",
                "sendwell-worker@.service": "worker", "sendwell-listener.service": "listener"}
    for name, service in expected.items():
        args = files.unit_command(name)
        files.resolve(args)
        # The same command and options; only the web process binds loopback (the proxy is local).
        container = services[service]["command"]
        assert [a for a in args if a not in ("127.0.0.1", "0.0.0.0")] == [
            a for a in container if a not in ("127.0.0.1", "0.0.0.0")], name


def test_units_are_hardened_restartable_and_ordered() -> None:
    for name in UNITS:
        service = files.unit(name)["Service"]
        assert service["User"] == "sendwell" and service["EnvironmentFile"] == "/etc/sendwell/sendwell.env", name
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict", name
        assert service["PrivateTmp"] == "yes" and "/var/lib/sendwell" in service["ReadWritePaths"], name
        if name == "sendwell-migrate.service":
            assert service["Type"] == "oneshot"
            continue
        assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM", name
        assert "sendwell-migrate.service" in files.unit(name)["Unit"]["After"], name
        assert "sendwell-migrate.service" in files.unit(name)["Unit"]["Requires"], name
    # Long enough for a worker to finish an SMTP transaction (SENDWELL_SMTP_TIMEOUT, 30 s) on SIGTERM.
    assert int(files.unit("sendwell-worker@.service")["Service"]["TimeoutStopSec"]) >= 60


def test_systemd_analyze_verifies_the_units(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed here")
    sendwell = Path(files.__file__).resolve().parents[2] / ".venv" / "bin" / "sendwell"
    if not sendwell.exists():
        sendwell = Path(shutil.which("sendwell") or "/bin/true")
    for name in UNITS:  # the installed path does not exist here: point ExecStart at this checkout's
        text = (files.UNITS / name).read_text().replace("/opt/sendwell/bin/sendwell", str(sendwell))
        (tmp_path / name).write_text(text)
    (tmp_path / "sendwell-worker@1.service").write_text((tmp_path / "sendwell-worker@.service").read_text())
    paths = [str(tmp_path / n) for n in UNITS if "@." not in n] + [str(tmp_path / "sendwell-worker@1.service")]
    result = subprocess.run([analyze, "verify", "--man=no", *paths], capture_output=True, text=True,
                            env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"}, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
