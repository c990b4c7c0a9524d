"""The container files and what they promise, checked without a Docker engine.

No engine runs here, so the Dockerfile and docker-compose.yml are read as
text and YAML: every listener is exposed and published, the image runs as a
non-root user with a volume and a health check, compose names only settings
that exist and refuses to start without a shared secret. Then the compose
file's two nodes are started natively, with the environment compose would
give them (its interpolation rules applied), a shared data volume and the
health check as the start order: both present the same CA, share one
secret and one database.
"""

from __future__ import annotations

import re
import secrets
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mailcue_server.config import Settings
from processes import REPO_ROOT, ServeProcess, cli_env, closed_port
from services import fresh_postgres_database, redis_or_skip

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
LISTENER_PORT_FIELDS = (
    "http_port",
    "smtp_port",
    "submission_port",
    "smtps_port",
    "imap_port",
    "imaps_port",
    "pop3_port",
    "pop3s_port",
)
DEFAULT_PORTS = {int(Settings.model_fields[name].default) for name in LISTENER_PORT_FIELDS}
NODES = ("node-a", "node-b")


class ComposeError(Exception):
    """What ``docker compose`` prints when a required variable is missing."""


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substitution."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        present = variables.get(name, "")
        if operator == ":?" and not present:
            raise ComposeError(f"required variable {name} is missing a value: {argument}")
        if operator == ":-" and not present:
            return argument
        return present

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[?-])([^}]*))?\}", substitute, value)


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def node_environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    env = compose()["services"][service]["environment"]
    return {key: interpolate(str(value), variables) for key, value in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_the_image_runs_unprivileged_with_a_volume_and_a_health_check() -> None:
    instructions = dockerfile_instructions()
    by_name: dict[str, list[str]] = {}
    for name, argument in instructions:
        by_name.setdefault(name, []).append(argument)

    assert by_name["USER"][-1] not in ("root", "0")
    assert "MAILCUE_DATA_DIR=/data" in by_name["ENV"][-1]
    assert by_name["VOLUME"] == ['["/data"]']
    assert by_name["HEALTHCHECK"][-1].endswith('CMD ["mailcue", "healthcheck"]')
    assert {int(port) for port in by_name["EXPOSE"][-1].split()} == DEFAULT_PORTS
    # Installs what CI tested: the lock, then the package without resolving again.
    runs = " ".join(by_name["RUN"])
    assert "-r requirements/serve.txt" in runs
    assert "--no-deps ." in runs


def test_compose_builds_one_image_and_publishes_every_listener() -> None:
    services = compose()["services"]
    builders = [name for name, service in services.items() if "build" in service]

    assert builders == ["node-a"]
    assert services["node-a"]["image"] == services["node-b"]["image"]
    for node in NODES:
        container_ports = {int(p.split(":")[-1]) for p in services[node]["ports"]}
        assert container_ports == DEFAULT_PORTS, node
    host_ports = [p.split(":")[0] for node in NODES for p in services[node]["ports"]]
    assert len(host_ports) == len(set(host_ports)), "two nodes publish the same host port"


def test_compose_names_only_settings_that_exist() -> None:
    for node in NODES:
        for key in compose()["services"][node]["environment"]:
            assert key.startswith("MAILCUE_"), key
            assert key.removeprefix("MAILCUE_").lower() in Settings.model_fields, key


def test_compose_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(ComposeError, match="MAILCUE_SECRET_KEY"):
        node_environment("node-a", {})

    env = node_environment("node-a", {"MAILCUE_SECRET_KEY": "k" * 40})
    assert env["MAILCUE_SECRET_KEY"] == "k" * 40


def test_nodes_share_the_data_volume_and_start_one_after_the_other() -> None:
    services = compose()["services"]
    assert services["node-a"]["volumes"] == services["node-b"]["volumes"]
    assert services["node-b"]["depends_on"]["node-a"] == {"condition": "service_healthy"}


def healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailcue_server.cli", "healthcheck", "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=cli_env(Path("unused")),
    )


def wait_healthy(url: str, deadline: float = 60.0) -> None:
    """Poll ``mailcue healthcheck`` as compose does before it starts what depends on it."""
    until = time.monotonic() + deadline
    while (result := healthcheck(url)).returncode != 0:
        assert time.monotonic() < until, result.stderr
        time.sleep(0.5)
    assert result.stdout.strip() == f"healthy: {url}/api/v1/health"


def test_healthcheck_fails_on_one_line_when_nothing_answers() -> None:
    port = closed_port()

    result = healthcheck(f"http://127.0.0.1:{port}")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"unhealthy: http://127.0.0.1:{port}/api/v1/health: connection refused"
    )


def ca_fingerprint(url: str) -> str:
    body = httpx.get(f"{url}/api/v1/system/certificate", timeout=10).json()
    fingerprint: str = body["ca"]["fingerprint_sha256"]
    return fingerprint


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_two_compose_nodes_run_natively_as_one_server(tmp_path: Path) -> None:
    redis_url = await redis_or_skip()
    volume = tmp_path / "shared"  # the compose volume both nodes mount at /data
    secret = secrets.token_urlsafe(48)
    async with fresh_postgres_database() as database_url:
        envs = {}
        for node in NODES:
            env = node_environment(node, {"MAILCUE_SECRET_KEY": secret})
            # Service names resolve inside compose's network; here, to this machine's services.
            assert env.pop("MAILCUE_DATABASE_URL").startswith("postgres://")
            assert env.pop("MAILCUE_REDIS_URL").startswith("redis://redis:")
            env |= {"MAILCUE_DATABASE_URL": database_url, "MAILCUE_REDIS_URL": redis_url}
            envs[node] = cli_env(volume, **env)

        with ServeProcess(envs["node-a"], tmp_path) as node_a:
            url_a = node_a.wait_listening()
            wait_healthy(url_a)
            with ServeProcess(envs["node-b"], tmp_path) as node_b:
                url_b = node_b.wait_listening()
                wait_healthy(url_b)

                # One CA for both: clients trust one file for the whole cluster.
                assert ca_fingerprint(url_a) == ca_fingerprint(url_b)
                trust = ssl.create_default_context(cafile=str(volume / "tls" / "ca.pem"))
                trust.check_hostname = False
                for node in (node_a, node_b):
                    with smtplib.SMTP_SSL(
                        "127.0.0.1", node.listener_port("smtps"), context=trust, timeout=10
                    ) as smtps:
                        assert smtps.noop()[0] == 250

                # One secret: a token node A issued works on node B.
                login = httpx.post(
                    f"{url_a}/api/v1/auth/login",
                    json={"username": "admin", "password": env["MAILCUE_ADMIN_PASSWORD"]},
                    timeout=10,
                )
                assert login.status_code == 200, login.text
                token = login.json()["access_token"]

                # One database: mail into node A is listed by node B.
                address = f"compose-{secrets.token_hex(4)}@mailcue.local"
                with smtplib.SMTP("127.0.0.1", node_a.listener_port("smtp"), timeout=10) as smtp:
                    smtp.sendmail(
                        "app@example.com",
                        [address],
                        f"From: app@example.com\r\nTo: {address}\r\nSubject: via a\r\n\r\nhi\r\n",
                    )
                listed = httpx.get(
                    f"{url_b}/api/v1/emails",
                    params={"mailbox": address},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                assert listed.status_code == 200, listed.text
                assert [e["subject"] for e in listed.json()["emails"]] == ["via a"]
                assert node_b.terminate() == 0
            assert node_a.terminate() == 0
