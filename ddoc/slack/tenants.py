"""Which Slack workspace belongs to which tenant, and its credentials.

The default tenant's Slack comes from the environment (`DDOC_SLACK_*`). Any tenant can have its
own in its settings (`PATCH /settings {"slack": {…}}`, admin), secrets referenced by the name of
an environment variable of the API and worker processes, never stored:

    {"team_id": "T024BE7LD", "channel": "C0INCIDENTS",
     "bot_token_env": "SLACK_BOT_TOKEN_ACME", "signing_secret_env": "SLACK_SIGNING_SECRET_ACME"}
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
from ddoc.platform import tenancy

SETTINGS_KEY = "slack"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


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
    unknown = sorted(set(raw) - {"team_id", "channel", "bot_token_env", "signing_secret_env"})
    if unknown:
        raise SlackSettingsError(f"unknown slack keys: {', '.join(unknown)}")
    for key in ("team_id", "channel", "bot_token_env", "signing_secret_env"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SlackSettingsError(f"slack.{key} is required")
    for key in ("bot_token_env", "signing_secret_env"):
        if not _ENV_NAME.match(raw[key]):
            raise SlackSettingsError(
                f"slack.{key} names an environment variable (like SLACK_BOT_TOKEN_ACME); "
                "the secret itself is never stored"
            )
    return raw


def configured(
    tenant_id: str,
    tenant_settings: Mapping[str, Any],
    default: SlackConfig | None,
    env: Mapping[str, str] | None = None,
) -> SlackConfig | None:
    """The tenant's Slack: its own settings first, else the environment's default tenant."""
    env = os.environ if env is None else env
    raw = tenant_settings.get(SETTINGS_KEY)
    if isinstance(raw, dict):
        token = env.get(str(raw.get("bot_token_env", "")))
        if not token:
            return None
        return SlackConfig(
            tenant_id=tenant_id,
            bot_token=token,
            channel=str(raw.get("channel")),
            api_url=default.api_url if default else "https://slack.com/api/",
            signing_secret=env.get(str(raw.get("signing_secret_env", ""))),
            team_id=str(raw.get("team_id")),
        )
    if default is not None and default.tenant_id == tenant_id:
        return default
    return None


def for_tenant(session: Session, tenant_id: str, default: SlackConfig | None) -> SlackConfig | None:
    return configured(tenant_id, tenancy.settings(session, tenant_id), default)


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
            return configured(str(row[0]), dict(row[1]), default)
    return default


def tenants_with_slack(session: Session, default: SlackConfig | None) -> list[str]:
    rows = session.execute(text("SELECT id FROM tenants WHERE settings ? 'slack'")).all()
    found = [str(r[0]) for r in rows]
    if default is not None and default.can_post and default.tenant_id not in found:
        found.append(default.tenant_id)
    return found
