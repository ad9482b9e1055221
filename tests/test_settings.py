from __future__ import annotations

from pathlib import Path

import pytest

from ddoc.contracts.settings import ConfigError, Settings, agent_task_queue


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.api_port == 8080
    assert settings.temporal.address == "localhost:7233"
    assert settings.temporal.namespace == "default"
    assert settings.database_url is None
    assert settings.data_dir == Path(".ddoc")


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "DDOC_API_PORT": "9000",
            "DDOC_DATABASE_URL": "postgresql://u@h/db",
            "DDOC_TEMPORAL_ADDRESS": "temporal:7233",
            "DDOC_TEMPORAL_NAMESPACE": "prod",
            "DDOC_TEMPORAL_TLS": "true",
            "DDOC_TENANT": "acme",
            "DDOC_ENVIRONMENT": "eu-prod",
        }
    )
    assert settings.api_port == 9000
    assert settings.require_database_url() == "postgresql://u@h/db"
    assert settings.temporal.tls is True
    assert agent_task_queue(settings.tenant, settings.environment) == "ddoc.agent.acme.eu-prod"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DDOC_API_PORT": "http"}, "DDOC_API_PORT must be a whole number, got 'http'"),
        ({"DDOC_API_PORT": "70000"}, "DDOC_API_PORT must be a TCP port (1-65535), got 70000"),
        ({"DDOC_TEMPORAL_TLS": "maybe"}, "DDOC_TEMPORAL_TLS must be true or false, got 'maybe'"),
        ({"DDOC_COMMAND_TIMEOUT": "0"}, "DDOC_COMMAND_TIMEOUT must be at least 1, got 0"),
        (
            {"DDOC_MATCH_ATTACH": "high"},
            "DDOC_MATCH_ATTACH must be a number between 0 and 1, got 'high'",
        ),
        ({"DDOC_MATCH_MARGIN": "1.5"}, "DDOC_MATCH_MARGIN must be between 0 and 1, got 1.5"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert str(err.value) == message


def test_match_thresholds_are_configurable() -> None:
    from ddoc.alerts.matching import Thresholds, thresholds_from

    settings = Settings.from_env({"DDOC_MATCH_ATTACH": "0.9"})
    configured = thresholds_from(
        settings.match_attach, settings.match_suggest, settings.match_margin
    )
    assert configured == Thresholds(
        attach=0.9, suggest=Thresholds().suggest, margin=Thresholds().margin
    )


def test_missing_database_url_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match="DDOC_DATABASE_URL is not set"):
        Settings.from_env({}).require_database_url()
