"""The deployment files, checked without a Docker engine and without the network.

docker-compose.yml against the Compose Specification (the schema shipped in the
`check-jsonschema` package), the Dockerfiles' COPY sources, no default secrets, the light agent
image, the Prometheus rules and their runbooks (one of them parsed by our own parser), and the
README's production section.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ddoc.cli import up
from ddoc.platform import db
from ddoc.runbooks.parsing import runbook_parser

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ALERTS = REPO / "deploy" / "prometheus" / "ddoc-alerts.yml"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
API_DOWN_RUNBOOK = REPO / "deploy" / "prometheus" / "runbooks" / "ddoc-api-down.md"
ROLES_SCRIPT = REPO / "deploy" / "postgres-init" / "10-ddoc-roles.sh"

SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
# Secret-looking variables that may be left unset, each with why. Everything else whose name
# holds one of SECRET_WORDS must be `${VAR:?message}`.
OPTIONAL_SECRETS = {
    "DDOC_SLACK_BOT_TOKEN": "Slack is optional; empty means not configured",
    "DDOC_SLACK_SIGNING_SECRET": "Slack is optional; empty means not configured",
    "DDOC_ANTHROPIC_API_KEY": "the AI parser is optional; without it the deterministic one runs",
}
# The metric names dd0c/run exports (the alert rules may use only these, and `up`).
METRICS = {
    "ddoc_webhooks_received_total",
    "ddoc_webhooks_rejected_total",
    "ddoc_match_confidence",
    "ddoc_executions",
    "ddoc_approval_wait_seconds",
    "ddoc_escalations_total",
    "ddoc_agent_command_seconds",
    "ddoc_agent_command_failures_total",
}
SEVERITIES = {"critical", "warning", "info"}
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`, ...; `$${` is an escaped dollar.
_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}")


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    svc = compose()["services"][name]
    assert isinstance(svc, dict)
    return svc


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def variables() -> list[tuple[str, str, str]]:
    """(name, operator, argument) of every `${...}` in the compose file."""
    return [(m[1], m[2] or "", m[3]) for s in strings(compose()) for m in _VAR.finditer(s)]


def required_variables() -> set[str]:
    return {name for name, op, _ in variables() if op == ":?"}


def compose_spec_errors(document: dict[str, Any]) -> list[str]:
    ref = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(ref.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def copy_sources(args: str) -> list[str] | None:
    """The sources of a COPY/ADD (None when copying from another stage or image)."""
    parts = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = [p for p in parts if p.startswith("--")]
    if any(f.startswith("--from") for f in flags):
        return None
    paths = [p for p in parts if not p.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {args}"
    return paths[:-1]


def builds() -> list[tuple[str, Path, Path]]:
    """(service, context, Dockerfile) of every service that builds an image."""
    out = []
    for name, svc in compose()["services"].items():
        build = svc.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (COMPOSE.parent / build.get("context", ".")).resolve()
        out.append((name, context, context / build.get("dockerfile", "Dockerfile")))
    return out


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    return [rule for rule in rules if "alert" in rule]


def readme_production_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Production (docker compose)\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


# (a) the Compose Specification --------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    assert compose_spec_errors(compose()) == []


def test_the_specification_check_catches_a_misspelt_key() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["api"]["restartt"] = "always"
    errors = compose_spec_errors(broken)
    assert errors and any("restartt" in e for e in errors)


def test_compose_wiring() -> None:
    services = compose()["services"]
    for name in ("postgres", "temporal-db", "temporal", "temporal-ui", "migrate", "api", "worker"):
        assert name in services and "profiles" not in services[name], name
    assert services["agent"]["profiles"] == ["agent"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg16")
    assert service("migrate")["command"] == ["ddoc", "migrate"]
    for name in ("api", "worker"):
        deps = service(name)["depends_on"]
        assert deps.get("migrate") == {"condition": "service_completed_successfully"}, name
        assert deps.get("postgres") == {"condition": "service_healthy"}, name
        assert deps.get("temporal") == {"condition": "service_healthy"}, name
        assert "healthcheck" in service(name), name
        env = environment(service(name))
        assert env["DDOC_LOG_FORMAT"] == "json"
        assert env["DDOC_CODEC_KEYS_FILE"] == "/run/secrets/ddoc_codec_keys"
        assert env["DDOC_SECRETS_KEY_FILE"] == "/run/secrets/ddoc_secrets_key"
        assert service(name)["secrets"] == ["ddoc_codec_keys", "ddoc_secrets_key"]
    for name in ("postgres", "temporal-db", "temporal", "prometheus"):
        assert "healthcheck" in service(name), name
    # Named volumes for every database.
    assert {"ddoc-db", "temporal-db"} <= set(compose()["volumes"])


def test_database_roles() -> None:
    """migrate runs as the schema owner; API and worker as ddoc_api, a member of ddoc_app."""
    owner = environment(service("postgres"))["POSTGRES_USER"]
    assert environment(service("migrate"))["DDOC_DATABASE_URL"].startswith(f"postgresql://{owner}:")
    for name in ("api", "worker"):
        url = environment(service(name))["DDOC_DATABASE_URL"]
        assert url.startswith(f"postgresql://{up.API_DB_ROLE}:"), name
        assert url.endswith("@postgres:5432/ddoc"), name
    assert "./deploy/postgres-init:/docker-entrypoint-initdb.d:ro" in service("postgres")["volumes"]
    script = ROLES_SCRIPT.read_text()
    assert f"CREATE ROLE {db.APP_ROLE} NOLOGIN;" in script
    api_role = f"CREATE ROLE {up.API_DB_ROLE} LOGIN PASSWORD :'api_password' IN ROLE {db.APP_ROLE};"
    assert api_role in script
    assert "DDOC_API_DB_PASSWORD" in script
    assert ROLES_SCRIPT.stat().st_mode & 0o111, "the init script must be executable"


def test_agent_service_is_light_and_talks_to_temporal_only() -> None:
    agent = service("agent")
    env = environment(agent)
    assert "DDOC_DATABASE_URL" not in env
    assert env["DDOC_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["DDOC_AGENT_POLICY"] == "/etc/ddoc/policy.yaml"
    # Alerts that name no environment go to the queue this agent polls.
    for name in ("api", "worker"):
        assert environment(service(name))["DDOC_ENVIRONMENT"] == env["DDOC_ENVIRONMENT"], name
    [policy] = [v for v in agent["volumes"] if v["target"] == env["DDOC_AGENT_POLICY"]]
    assert policy["read_only"] is True


# (b) Dockerfiles and what they copy ---------------------------------------------------------


def test_every_build_dockerfile_exists() -> None:
    found = builds()
    assert {name for name, _, _ in found} >= {"migrate", "api", "worker", "agent"}
    for name, context, dockerfile in found:
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile.server", "deploy/Dockerfile.agent"])
def test_every_copy_source_exists(dockerfile: str) -> None:
    instructions = dockerfile_instructions(REPO / dockerfile)
    copies = [args for word, args in instructions if word in {"COPY", "ADD"}]
    assert copies
    for args in copies:
        for source in copy_sources(args) or []:
            assert not source.startswith(("http://", "https://")), f"{dockerfile}: ADD of a URL"
            assert any(REPO.glob(source)), f"{dockerfile}: COPY source {source} missing"
    words = [word for word, _ in instructions]
    assert "USER" in words, f"{dockerfile}: runs as root"
    user = [args for word, args in instructions if word == "USER"][-1]
    assert user not in {"root", "0"}, f"{dockerfile}: runs as root"


# (c) no default secrets ---------------------------------------------------------------------


def test_secret_variables_fail_fast() -> None:
    seen_optional = set()
    for name, op, arg in variables():
        if not any(word in name for word in SECRET_WORDS):
            continue
        if name in OPTIONAL_SECRETS:
            seen_optional.add(name)
            # Optional, but never with a value of our own.
            assert op in {"", ":-", "-"} and arg == "", f"${{{name}}} has a default secret"
            continue
        assert op == ":?", f"${{{name}{op}{arg}}} must be ${{{name}:?message}}"
    assert seen_optional == set(OPTIONAL_SECRETS), "stale entries in OPTIONAL_SECRETS"
    assert required_variables() >= {
        "DDOC_DB_PASSWORD",
        "DDOC_API_DB_PASSWORD",
        "TEMPORAL_DB_PASSWORD",
        "DDOC_CODEC_KEYS_PATH",
    }


def test_no_literal_secrets() -> None:
    """Secret-named settings and passwords in URLs come from variables, never from the file."""
    for name, svc in compose()["services"].items():
        for key, value in environment(svc).items():
            secretish = any(word in key for word in (*SECRET_WORDS, "PWD"))
            # A path to a secret, or an on/off flag (TEMPORAL_CODEC_PASS_ACCESS_TOKEN), is not one.
            if secretish and not key.endswith("_FILE") and value not in {"true", "false"}:
                assert _VAR.fullmatch(value), f"{name}.{key} is not a variable: {value!r}"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                match = _VAR.fullmatch(password)
                assert match and match[2] == ":?", f"{name}.{key}: password in URL must be :?"
    for secret in compose()["secrets"].values():
        assert _VAR.fullmatch(secret["file"])


# (d) the agent image ------------------------------------------------------------------------


def test_agent_uses_the_agent_dockerfile_without_the_server_extra() -> None:
    build = service("agent")["build"]
    assert build["dockerfile"] == "deploy/Dockerfile.agent"
    instructions = dockerfile_instructions(REPO / build["dockerfile"])
    runs = [args for word, args in instructions if word == "RUN"]
    installs = [cmd for run in runs for cmd in run.split("&&") if "pip install" in cmd]
    assert installs
    for cmd in installs:
        assert "[" not in cmd and "torch" not in cmd, f"agent image installs more: {cmd}"
    copied = [s for w, a in instructions if w == "COPY" for s in copy_sources(a) or []]
    assert not {"api", "worker", "workflows"} & set(copied)
    for name in ("api", "worker", "migrate"):
        assert service(name)["build"]["dockerfile"] == "deploy/Dockerfile.server"


# (e) alert rules ----------------------------------------------------------------------------


def test_alert_rules() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert {"DdocApiDown", "DdocWebhookRejectionRatioHigh", "DdocExecutionsStalled"} <= set(names)
    for rule in rules:
        name = rule["alert"]
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        url = rule["annotations"]["runbook_url"]
        path = url.split("#", 1)[0]
        assert not path.startswith(("/", "http")), f"{name}: runbook_url must be a repo path"
        assert (REPO / path).is_file(), f"{name}: runbook {path} missing"
        for metric in re.findall(r"\bddoc_[a-z_]+", rule["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert base in METRICS, f"{name}: unknown metric {metric}"
    [api_down] = [rule for rule in rules if rule["alert"] == "DdocApiDown"]
    assert api_down["annotations"]["runbook_url"] == "deploy/prometheus/runbooks/ddoc-api-down.md"
    assert 'up{job="ddoc-api"}' in api_down["expr"]


def test_prometheus_scrapes_what_compose_serves() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    port = environment(service("worker"))["DDOC_WORKER_METRICS_PORT"]
    assert targets["ddoc-api"] == ["api:8080"]
    assert targets["ddoc-worker"] == [f"worker:{port}"]
    # prometheus.yml names the rules by their path inside the container.
    mount = "./deploy/prometheus:/etc/prometheus/ddoc:ro"
    assert mount in service("prometheus")["volumes"]
    assert config["rule_files"] == ["/etc/prometheus/ddoc/ddoc-alerts.yml"]


# (f) the dogfood runbook --------------------------------------------------------------------


def test_api_down_runbook_parses_into_steps_with_commands() -> None:
    text = API_DOWN_RUNBOOK.read_text()
    parsed = runbook_parser(None)(text, "markdown", "ddoc-api-down.md", None)
    assert "DdocApiDown" in parsed.triggers.alerts
    commands = [step.command for step in parsed.steps if step.command]
    assert "docker compose ps api" in commands
    assert "docker compose logs --tail=200 api" in commands
    assert "curl -fsS http://localhost:8080/health" in commands
    assert "docker compose restart api" in commands
    assert parsed.quality.flags == []


# (g) the README -----------------------------------------------------------------------------


def test_readme_production_section_names_every_required_variable() -> None:
    section = readme_production_section()
    assert "docker compose up" in section
    missing = sorted(name for name in required_variables() if f"`{name}`" not in section)
    assert missing == []
    text = (REPO / "README.md").read_text()
    assert text.index("## Production (docker compose)") < text.index(
        "## Running each component alone"
    )
