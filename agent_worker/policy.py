"""The agent's local policy: what it will run, for how long, with which environment.

The file lives on the agent's host (`DDOC_AGENT_POLICY=/etc/ddoc/policy.yaml`); nothing the SaaS
sends can override it. Stdlib + PyYAML only (the agent is a light install). Format:

    allow: ["^kubectl (get|describe|logs) ", "^df "]   # if non-empty, a command must match one
    deny: ["rm -rf /", "(^|\\s)shutdown(\\s|$)"]         # any match denies; checked first, wins
    max_timeout_seconds: 600                            # a request's timeout is capped to this
    inherit_env: false          # pass the agent's own environment on? (default: a minimal one)
    env: {KUBECONFIG: /etc/ddoc/kubeconfig}             # injected into every command
    secrets:                                            # injected as env vars AND redacted
      PGPASSWORD: {file: /etc/ddoc/pgpass}              # read at load time (trailing newline cut)
      API_TOKEN: {env: LOCAL_API_TOKEN}                 # from the agent's own environment

Patterns are Python regular expressions, matched with `re.search` against the command text, and
again against the text with each `${DDOC_VAR_X}` reference (quoted or not, or `$DDOC_VAR_X`)
replaced by the value the request carries; the command is denied if either form is denied.
Secret values never appear inline in the file. Any problem raises PolicyError naming the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddoc.contracts.redact import MIN_SECRET_LENGTH

KEYS = ("allow", "deny", "max_timeout_seconds", "inherit_env", "env", "secrets")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VAR_REF = re.compile(r"\"\$\{(DDOC_VAR_\w+)\}\"|\$\{(DDOC_VAR_\w+)\}|\$(DDOC_VAR_\w+)")


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message names the field."""


@dataclass(frozen=True)
class AgentPolicy:
    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()
    max_timeout_seconds: int = 3600
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = False


def substitute_vars(command: str, env: Mapping[str, str]) -> str:
    """The command as it would read with each `${DDOC_VAR_X}` reference replaced by its value."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, command)


def decide(policy: AgentPolicy, command: str, env: Mapping[str, str] | None = None) -> str | None:
    """None when the command may run; otherwise the reason it is denied."""
    forms = [("command", command)]
    if env:
        substituted = substitute_vars(command, env)
        if substituted != command:
            forms.append(("command with its variable values substituted", substituted))
    for label, text in forms:
        for pattern in policy.deny:
            if pattern.search(text):
                return f"{label} matches deny pattern {pattern.pattern!r}"
    if policy.allow:
        for label, text in forms:
            if not any(pattern.search(text) for pattern in policy.allow):
                return f"{label} matches no allow pattern"
    return None


def load_policy(path: Path, environ: Mapping[str, str] | None = None) -> AgentPolicy:
    environ = os.environ if environ is None else environ
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise PolicyError(f"agent policy {path}: cannot read it: {err}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"agent policy {path}: not valid YAML: {err}") from None
    try:
        return _parse(raw, path.parent, environ)
    except PolicyError as err:
        raise PolicyError(f"agent policy {path}: {err}") from None


def _parse(raw: Any, base_dir: Path, environ: Mapping[str, str]) -> AgentPolicy:
    if raw is None:
        raise PolicyError("the file is empty (write `{}` to allow every command)")
    if not isinstance(raw, dict):
        raise PolicyError("the top level must be a mapping of " + ", ".join(KEYS))
    unknown = sorted(str(k) for k in raw if k not in KEYS)
    if unknown:
        raise PolicyError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    max_timeout = raw.get("max_timeout_seconds", 3600)
    if isinstance(max_timeout, bool) or not isinstance(max_timeout, int) or max_timeout < 1:
        raise PolicyError(f"max_timeout_seconds must be a positive integer, not {max_timeout!r}")
    inherit_env = raw.get("inherit_env", False)
    if not isinstance(inherit_env, bool):
        raise PolicyError(f"inherit_env must be true or false, not {inherit_env!r}")
    env = _env(raw.get("env", {}))
    secrets = _secrets(raw.get("secrets", {}), base_dir, environ)
    both = sorted(set(env) & set(secrets))
    if both:
        raise PolicyError(f"env and secrets both set {', '.join(both)}")
    return AgentPolicy(
        allow=_patterns("allow", raw.get("allow", [])),
        deny=_patterns("deny", raw.get("deny", [])),
        max_timeout_seconds=max_timeout,
        env=env,
        secrets=secrets,
        inherit_env=inherit_env,
    )


def _patterns(key: str, value: Any) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"{key} must be a list of regular expressions")
    compiled = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{key}[{i}] must be a non-empty string, not {item!r}")
        try:
            compiled.append(re.compile(item))
        except re.error as err:
            raise PolicyError(
                f"{key}[{i}] is not a valid regular expression {item!r}: {err}"
            ) from None
    return tuple(compiled)


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError("env must be a mapping of NAME: value")
    env: dict[str, str] = {}
    for name, item in value.items():
        _check_name("env", name)
        if not isinstance(item, str):
            raise PolicyError(f"env.{name} must be a string (quote it), not {item!r}")
        env[name] = item
    return env


def _secrets(value: Any, base_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError("secrets must be a mapping of NAME: {file: PATH} or NAME: {env: VAR}")
    secrets: dict[str, str] = {}
    for name, source in value.items():
        _check_name("secrets", name)
        where = f"secrets.{name}"
        if not isinstance(source, dict):
            raise PolicyError(
                f"{where}: inline values are not allowed; use {{file: PATH}} or {{env: VAR}}"
            )
        kind = next(iter(source), None)
        if set(source) not in ({"file"}, {"env"}) or not isinstance(source[kind], str):
            raise PolicyError(f"{where} must be exactly one of {{file: PATH}} or {{env: VAR}}")
        if "file" in source:
            file = base_dir / Path(source["file"]).expanduser()
            try:
                secret = file.read_text().rstrip("\r\n")
            except OSError as err:
                raise PolicyError(f"{where}: cannot read secret file {file}: {err}") from None
        else:
            var = source["env"]
            if var not in environ:
                raise PolicyError(f"{where}: environment variable {var} is not set")
            secret = environ[var]
        if len(secret) < MIN_SECRET_LENGTH:
            raise PolicyError(
                f"{where}: the value is shorter than {MIN_SECRET_LENGTH} characters, "
                "too short to redact reliably"
            )
        secrets[name] = secret
    return secrets


def _check_name(key: str, name: Any) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise PolicyError(f"{key}: {name!r} is not a valid environment variable name")
