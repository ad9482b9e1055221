"""Draft runbooks from what an engineer did: `ddoc watch` records a shell session during an
incident; `ddoc runbook draft FILE` reads a recording (asciinema, `script`), a shell history or a
postmortem. Everything is read and distilled here, on the engineer's machine, with secrets
redacted; the draft is shown, and sent to dd0c/run only when the engineer says so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ddoc.contracts.redact import Redactor
from ddoc.runbooks.drafts import Draft, to_markdown

if TYPE_CHECKING:
    from ddoc.cli.client import ApiClient

KINDS = ("cast", "script", "history", "postmortem")
POSTMORTEM_FORMATS = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


def add_watch_parser(sub: Any) -> None:
    watch = sub.add_parser(
        "watch",
        help="record your shell during an incident; its commands become a draft runbook",
    )
    watch.add_argument("--incident", metavar="ID", help="the incident (its labels fill variables)")
    watch.add_argument("--shell", help="the shell to record (default: $SHELL, else /bin/sh)")
    watch.add_argument("--title", help="the draft's title")
    watch.add_argument(
        "--out",
        type=Path,
        help="keep the recording here (asciinema v2; default: a file under ~/.ddoc/sessions)",
    )
    watch.add_argument("--yes", action="store_true", help="send the draft without asking")
    watch.set_defaults(func=lambda args, settings: _run(cmd_watch, args))


def add_draft_parser(commands: Any) -> None:
    draft = commands.add_parser(
        "draft",
        help="draft a runbook from a recording (.cast, script), a shell history or a postmortem",
    )
    draft.add_argument("file", type=Path)
    draft.add_argument("--kind", choices=KINDS, help="default: found from the file")
    draft.add_argument("--format", choices=["markdown", "text", "html"], help="a postmortem's")
    draft.add_argument("--incident", metavar="ID", help="the incident (its labels fill variables)")
    draft.add_argument("--title", help="the draft's title")
    draft.add_argument("--yes", action="store_true", help="send the draft without asking")
    draft.set_defaults(action=cmd_draft)


def _run(action: Callable[[argparse.Namespace, ApiClient], int], args: argparse.Namespace) -> int:
    from ddoc.cli.client import run_command  # httpx: not on the agent's light install

    return run_command(action, args)


def cmd_watch(args: argparse.Namespace, client: ApiClient) -> int:
    labels, alerts = _incident(client, args.incident)
    shell = args.shell or os.environ.get("SHELL") or "/bin/sh"
    out = args.out or _default_recording()
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    print(
        f"Recording {shell} to {out} (stays on this machine). Work as usual; `exit` ends it.",
        file=sys.stderr,
    )
    status = record(out, [shell], env={"DDOC_WATCH": "1"})
    print(f"\nRecording ended (shell exit status {status}).", file=sys.stderr)
    with out.open("rb") as stream:
        draft = _draft_from(stream, "cast", labels=labels, alerts=alerts, title=args.title)
    return _offer(client, draft, kind="session", incident=args.incident, yes=args.yes)


def cmd_draft(args: argparse.Namespace, client: ApiClient) -> int:
    path: Path = args.file
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    labels, alerts = _incident(client, args.incident)
    kind = args.kind or _kind_of(path)
    with path.open("rb") as stream:
        draft = _draft_from(
            stream,
            kind,
            labels=labels,
            alerts=alerts,
            title=args.title,
            fmt=args.format or POSTMORTEM_FORMATS.get(path.suffix.lower(), "text"),
        )
    return _offer(client, draft, kind=kind, incident=args.incident, yes=args.yes)


def _kind_of(path: Path) -> str:
    if path.suffix.lower() == ".cast":
        return "cast"
    if path.suffix.lower() in (".md", ".markdown", ".html", ".htm"):
        return "postmortem"
    from ddoc.runbooks.drafts.sessions import detect

    with path.open("rb") as stream:
        return detect(stream.read(4096))


def _draft_from(
    stream: IO[bytes],
    kind: str,
    *,
    labels: dict[str, str],
    alerts: list[str],
    title: str | None,
    fmt: str = "text",
) -> Draft:
    """Read and distill on this machine, with secrets redacted."""
    from ddoc.runbooks.drafts.distill import draft_from_session
    from ddoc.runbooks.drafts.postmortem import draft_from_postmortem
    from ddoc.runbooks.drafts.sessions import read_session

    if kind == "postmortem":
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace").read()
        return draft_from_postmortem(
            Redactor().redact(text), fmt, alerts=alerts, labels=labels, title=title
        )
    return draft_from_session(
        read_session(stream, kind=kind),
        kind=kind,
        title=title,
        labels=labels,
        alerts=alerts,
        redactor=Redactor(),
    )


def _incident(client: ApiClient, incident_id: str | None) -> tuple[dict[str, str], list[str]]:
    if not incident_id:
        return {}, []
    incident = client.request("GET", f"/incidents/{incident_id}")
    labels = {str(k): str(v) for k, v in (incident.get("labels") or {}).items()}
    name = labels.get("alertname")
    return labels, [name] if name else []


def _offer(client: ApiClient, draft: Draft, *, kind: str, incident: str | None, yes: bool) -> int:
    if not draft.steps:
        why = "; ".join(draft.dropped) or "no commands"
        print(f"Nothing to draft: {why}.", file=sys.stderr)
        return 1
    document = to_markdown(draft)
    print(f"\nDraft: {draft.title}")
    for number, step in enumerate(draft.steps, 1):
        print(f"  {number}. {step.text}" + (f"\n       $ {step.command}" if step.command else ""))
    for why in draft.dropped:
        print(f"  (left out: {why})")
    if not yes and not _confirm("Send this draft to dd0c/run for review? [y/N] "):
        print("Not sent. Nothing left this machine.", file=sys.stderr)
        return 0
    body = {"kind": "draft", "content": document, "incident_id": incident, "drafted_from": kind}
    runbook = client.request("POST", "/runbooks/drafts", json=body)
    print(
        f"{runbook['id']}  draft ({len(runbook['parsed']['steps'])} steps): review and publish it "
        f"in the console (/ui/runbooks/{runbook['id']}) or with `ddoc runbook publish "
        f"{runbook['id']}`"
    )
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _default_recording() -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path.home() / ".ddoc" / "sessions" / f"session-{stamp}.cast"


def record(path: Path, argv: list[str], *, env: dict[str, str] | None = None) -> int:
    """Run `argv` on a pseudo-terminal, as the user sees it, and write an asciinema v2
    recording of what it printed and what was typed (mode 0600). Returns the exit status."""
    try:
        columns, rows = os.get_terminal_size()
    except OSError:
        columns, rows = 80, 24
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        header: dict[str, object] = {
            "version": 2,
            "width": columns,
            "height": rows,
            "timestamp": int(time.time()),
            "env": {"SHELL": argv[0], "TERM": os.environ.get("TERM", "xterm")},
        }
        out.write(json.dumps(header) + "\n")

        def event(kind: str, data: bytes) -> bytes:
            if data:
                text = data.decode("utf-8", "replace")
                at = round(time.monotonic() - started, 6)
                out.write(json.dumps([at, kind, text]) + "\n")
            return data

        def read_output(fd: int) -> bytes:
            return event("o", os.read(fd, 4096))

        def read_input(fd: int) -> bytes:
            return event("i", os.read(fd, 4096))

        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            status = pty.spawn(argv, read_output, read_input)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return os.waitstatus_to_exitcode(status)
