"""A small client of the dd0c/run API for the CLI: API URL and key from the environment,
or from a local `ddoc up`'s credentials file."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8080"


class ApiError(RuntimeError):
    """The API answered with an error; the message is its `detail`, fit for a terminal."""


def credential(env: Mapping[str, str], name: str) -> str | None:
    """`name` from the environment, else from a local `ddoc up`'s credentials file."""
    if env.get(name):
        return env[name]
    path = Path(env.get("DDOC_DATA_DIR") or ".ddoc") / "credentials.env"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.partition("=")[2].strip()
    return None


class ApiClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiClient:
        env = os.environ if env is None else env
        key = credential(env, "DDOC_API_KEY")
        if not key:
            raise ApiError(
                "no API key: set DDOC_API_KEY (a local `ddoc up` keeps one in "
                ".ddoc/credentials.env)"
            )
        return cls(env.get("DDOC_API_URL") or DEFAULT_API_URL, key)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise ApiError(f"cannot reach the API at {self._http.base_url}: {err}") from None
        if response.status_code >= 400:
            raise ApiError(f"{response.status_code}: {_detail(response)}")
        return response.json() if response.content else None  # 204: no body


def webhook_client(env: Mapping[str, str] | None = None) -> ApiClient:
    """A client authenticated with the webhook token (for sending test alerts)."""
    env = os.environ if env is None else env
    token = credential(env, "DDOC_WEBHOOK_TOKEN")
    if not token:
        raise ApiError("no webhook token: set DDOC_WEBHOOK_TOKEN")
    return ApiClient(env.get("DDOC_API_URL") or DEFAULT_API_URL, token)


CommandFn = Callable[[argparse.Namespace, "ApiClient"], int]


def run_command(
    action: CommandFn,
    args: argparse.Namespace,
    *,
    client_factory: Callable[[], ApiClient] = ApiClient.from_env,
) -> int:
    """Run a CLI action with a client; every known failure becomes one `ddoc: …` line
    (exit 2 when the client cannot even be configured, 1 otherwise), never a traceback."""
    from ddoc.runbooks.ingest import SourceError

    try:
        client = client_factory()
    except ApiError as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 2
    try:
        return action(args, client)
    except (ApiError, SourceError, ValueError, OSError) as err:
        print(f"ddoc: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text[:500]
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in detail
        )
    return str(detail)
