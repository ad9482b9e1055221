"""Which Slack workspace belongs to which tenant, and its credentials.

The default tenant's Slack comes from the environment (`DDOC_SLACK_*`). Any tenant can have its
own in its settings (`PATCH /settings {"slack": {…}}`, admin), each secret either referenced by
the name of an environment variable of the API and worker processes:

    {"team_id": "T024BE7LD", "channel": "C0INCIDENTS",
     "bot_token_env": "SLACK_BOT_TOKEN_ACME", "signing_secret_env": "SLACK_SIGNING_SECRET_ACME"}

or given itself, `"bot_token": "xoxb-…"`, `"signing_secret": "…"`: then it is stored encrypted
in the secrets table (ddoc/platform/secrets.py) and the settings keep a reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import text
from sqlmodel import Session

from ddoc.contracts.settings import Settings
from ddoc.platform import secrets, tenancy

SETTINGS_KEY = "slack"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_SECRETS = ("bot_token", "signing_secret")


class SlackSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class SlackConfig:
    """Slack for one tenant."""

    tenant_id: str
    bot_token: str
    channel: str
    api_url: str = "https://slack.com/api/"
    signing_secret: str | None = None
    team_id: str | None = None

    @property
    def can_post(self) -> bool:
        return bool(self.bot_token and self.channel)

    def client(self) -> WebClient:
        return WebClient(token=self.bot_token, base_url=self.api_url, timeout=10)


def default_config(settings: Settings) -> SlackConfig | None:
    """The default tenant's Slack, from DDOC_SLACK_*: the API needs the signing secret, the
    worker the bot token and channel (`can_post`)."""
    if not (settings.slack_bot_token or settings.slack_signing_secret):
        return None
    return SlackConfig(
        tenant_id=settings.tenant,
        bot_token=settings.slack_bot_token or "",
        channel=settings.slack_channel or "",
        api_url=settings.slack_api_url,
        signing_secret=settings.slack_signing_secret,
    )


def validate(raw: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - {"team_id", "channel", *_SECRETS, *(f"{k}_env" for k in _SECRETS)})
    if unknown:
        raise SlackSettingsError(f"unknown slack keys: {', '.join(unknown)}")
    for key in ("team_id", "channel"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SlackSettingsError(f"slack.{key} is required")
    for secret in _SECRETS:
        named, given = raw.get(f"{secret}_env"), raw.get(secret)
        if (named is None) == (given is None):
            raise SlackSettingsError(
                f"slack needs {secret}_env (an environment variable's name) or {secret} (the "
                "secret itself, stored encrypted), one of them"
            )
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise SlackSettingsError(f"slack.{secret} must be the secret, a string")
        if named is not None and (not isinstance(named, str) or not _ENV_NAME.match(named)):
            raise SlackSettingsError(
                f"slack.{secret}_env names an environment variable (like SLACK_BOT_TOKEN_ACME); "
                f"to give the secret itself, use slack.{secret} (stored encrypted)"
            )
    return raw


def _secret(raw: Mapping[str, Any], name: str, env: Mapping[str, str]) -> str | None:
    """A Slack secret of the tenant's settings: given (and revealed: `reveal_settings`) or
    named by an environment variable."""
    given = raw.get(name)
    if isinstance(given, str):
        return given or None
    return env.get(str(raw.get(f"{name}_env", ""))) or None


def configured(
    tenant_id: str,
    tenant_settings: Mapping[str, Any],
    default: SlackConfig | None,
    env: Mapping[str, str] | None = None,
) -> SlackConfig | None:
    """The tenant's Slack: its own settings first, else the environment's default tenant. The
    settings' secrets must be revealed already (`for_tenant`, `for_team` do)."""
    env = os.environ if env is None else env
    raw = tenant_settings.get(SETTINGS_KEY)
    if isinstance(raw, dict):
        token = _secret(raw, "bot_token", env)
        if not token:
            return None
        return SlackConfig(
            tenant_id=tenant_id,
            bot_token=token,
            channel=str(raw.get("channel")),
            api_url=default.api_url if default else "https://slack.com/api/",
            signing_secret=_secret(raw, "signing_secret", env),
            team_id=str(raw.get("team_id")),
        )
    if default is not None and default.tenant_id == tenant_id:
        return default
    return None


def _revealed(session: Session, tenant_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return secrets.reveal_settings(session, tenant_id, settings, only=(SETTINGS_KEY,))


def for_tenant(session: Session, tenant_id: str, default: SlackConfig | None) -> SlackConfig | None:
    return configured(
        tenant_id, _revealed(session, tenant_id, tenancy.settings(session, tenant_id)), default
    )


def for_team(
    session: Session, team_id: str | None, default: SlackConfig | None
) -> SlackConfig | None:
    """The Slack config of the tenant that owns this workspace; the default tenant's when no
    tenant claims it."""
    if team_id:
        row = session.execute(
            text(
                "SELECT id, settings FROM tenants WHERE settings -> 'slack' ->> 'team_id' = :team"
            ),
            {"team": team_id},
        ).first()
        if row is not None:
            return configured(str(row[0]), _revealed(session, str(row[0]), dict(row[1])), default)
    return default


def tenants_with_slack(session: Session, default: SlackConfig | None) -> list[str]:
    rows = session.execute(text("SELECT id FROM tenants WHERE settings ? 'slack'")).all()
    found = [str(r[0]) for r in rows]
    if default is not None and default.can_post and default.tenant_id not in found:
        found.append(default.tenant_id)
    return found
