"""Configuration from `DDOC_*` environment variables (flags override them in the CLI).

Stdlib only: the agent worker reads the same settings and must stay a light install.
Built in a factory (`Settings.from_env`), never at import time, so tests can pass their own.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONTROL_TASK_QUEUE = "ddoc.control"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def agent_task_queue(tenant_id: str, environment: str) -> str:
    # One queue per tenant and environment: a tenant's workflow can only ever dispatch to its
    # own agents, because the queue name is built from the tenant id the workflow carries
    # (tenant ids have no dots, so no tenant's queue can be spelled with another's id).
    return f"ddoc.agent.{tenant_id}.{environment}"


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "localhost:7233"
    namespace: str = "default"
    tls: bool = False
    tls_ca_path: str | None = None
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    api_key: str | None = None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".ddoc")
    # `ddoc up`'s view of its children, for /health (ddoc/contracts/supervisor.py); None: none.
    supervisor_state: Path | None = None
    database_url: str | None = None
    temporal: TemporalSettings = dataclasses.field(default_factory=TemporalSettings)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 1
    control_task_queue: str = CONTROL_TASK_QUEUE
    tenant: str = "default"
    environment: str = "local"
    bootstrap_api_key: str | None = None
    bootstrap_webhook_token: str | None = None
    command_timeout_seconds: int = 300
    agent_offline_timeout_seconds: int = 120
    correlation_window_seconds: int = 300
    # Matching thresholds (ddoc/alerts/matching.py); None keeps the measured defaults.
    match_attach: float | None = None
    match_suggest: float | None = None
    match_margin: float | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    # Slack, for the default tenant: bot token, signing secret, incident channel, Web API URL.
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
    webhook_rate: int = 200  # per tenant and API process: requests a second on average...
    webhook_burst: int = 5000  # ...with bursts up to this many
    worker_metrics_port: int | None = None  # the worker's Prometheus port (none: not served)
    codec_keys_file: Path | None = None  # payload encryption keys (ddoc/contracts/codec.py)
    codec_cors_origins: tuple[str, ...] = ()  # the Temporal UI origins allowed to call /codec
    temporal_ui_url: str | None = None  # the Temporal Web UI: the console links executions to it

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        reader = _EnvReader(env)
        defaults = cls()
        temporal_defaults = TemporalSettings()
        return cls(
            data_dir=Path(reader.text("DDOC_DATA_DIR") or defaults.data_dir),
            supervisor_state=(
                Path(state) if (state := reader.text("DDOC_SUPERVISOR_STATE")) else None
            ),
            database_url=reader.text("DDOC_DATABASE_URL"),
            temporal=TemporalSettings(
                address=reader.text("DDOC_TEMPORAL_ADDRESS") or temporal_defaults.address,
                namespace=reader.text("DDOC_TEMPORAL_NAMESPACE") or temporal_defaults.namespace,
                tls=reader.flag("DDOC_TEMPORAL_TLS", temporal_defaults.tls),
                tls_ca_path=reader.text("DDOC_TEMPORAL_TLS_CA"),
                tls_cert_path=reader.text("DDOC_TEMPORAL_TLS_CERT"),
                tls_key_path=reader.text("DDOC_TEMPORAL_TLS_KEY"),
                api_key=reader.text("DDOC_TEMPORAL_API_KEY"),
            ),
            api_host=reader.text("DDOC_API_HOST") or defaults.api_host,
            api_port=reader.port("DDOC_API_PORT", defaults.api_port),
            api_workers=reader.integer("DDOC_API_WORKERS", defaults.api_workers, minimum=1),
            control_task_queue=reader.text("DDOC_CONTROL_TASK_QUEUE")
            or defaults.control_task_queue,
            tenant=reader.matching("DDOC_TENANT", r"[A-Za-z0-9_-]{1,64}") or defaults.tenant,
            environment=reader.text("DDOC_ENVIRONMENT") or defaults.environment,
            bootstrap_api_key=reader.text("DDOC_BOOTSTRAP_API_KEY"),
            bootstrap_webhook_token=reader.text("DDOC_BOOTSTRAP_WEBHOOK_TOKEN"),
            command_timeout_seconds=reader.integer(
                "DDOC_COMMAND_TIMEOUT", defaults.command_timeout_seconds, minimum=1
            ),
            agent_offline_timeout_seconds=reader.integer(
                "DDOC_AGENT_OFFLINE_TIMEOUT", defaults.agent_offline_timeout_seconds, minimum=1
            ),
            correlation_window_seconds=reader.integer(
                "DDOC_CORRELATION_WINDOW", defaults.correlation_window_seconds, minimum=0
            ),
            match_attach=reader.fraction("DDOC_MATCH_ATTACH"),
            match_suggest=reader.fraction("DDOC_MATCH_SUGGEST"),
            match_margin=reader.fraction("DDOC_MATCH_MARGIN"),
            pagerduty_events_url=reader.text("DDOC_PAGERDUTY_EVENTS_URL")
            or defaults.pagerduty_events_url,
            slack_bot_token=reader.text("DDOC_SLACK_BOT_TOKEN"),
            slack_signing_secret=reader.text("DDOC_SLACK_SIGNING_SECRET"),
            slack_channel=reader.text("DDOC_SLACK_CHANNEL"),
            slack_api_url=_slash(reader.text("DDOC_SLACK_API_URL") or defaults.slack_api_url),
            log_level=(reader.text("DDOC_LOG_LEVEL") or defaults.log_level).upper(),
            log_format=reader.choice("DDOC_LOG_FORMAT", ("text", "json"), defaults.log_format),
            webhook_rate=reader.integer("DDOC_WEBHOOK_RATE", defaults.webhook_rate, minimum=1),
            webhook_burst=reader.integer("DDOC_WEBHOOK_BURST", defaults.webhook_burst, minimum=1),
            worker_metrics_port=reader.port("DDOC_WORKER_METRICS_PORT", 0) or None,
            codec_keys_file=Path(keys) if (keys := reader.text("DDOC_CODEC_KEYS_FILE")) else None,
            temporal_ui_url=(reader.text("DDOC_TEMPORAL_UI_URL") or "").rstrip("/") or None,
            codec_cors_origins=tuple(
                o.strip()
                for o in (reader.text("DDOC_CODEC_CORS_ORIGINS") or "").split(",")
                if o.strip()
            ),
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "DDOC_DATABASE_URL is not set (e.g. postgresql://user:pass@host:5432/ddoc); "
                "`ddoc up` sets it for the embedded database"
            )
        return self.database_url


def _slash(url: str) -> str:
    # slack_sdk joins the method name onto the base URL: it must end with "/".
    return url if url.endswith("/") else url + "/"


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def matching(self, name: str, pattern: str) -> str | None:
        raw = self.text(name)
        if raw is not None and not re.fullmatch(pattern, raw):
            raise ConfigError(f"{name} must match {pattern}, got {raw!r}")
        return raw

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        raw = (self.text(name) or default).lower()
        if raw not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return raw

    def port(self, name: str, default: int) -> int:
        value = self.integer(name, default, minimum=1)
        if value > 65535:
            raise ConfigError(f"{name} must be a TCP port (1-65535), got {value}")
        return value

    def fraction(self, name: str) -> float | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} must be between 0 and 1, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
