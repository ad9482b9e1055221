"""`ddoc runbook …`: add, preview, import, show and list runbooks through the API; trust,
stats, suggested revisions and learned triggers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddoc.cli.drafts import add_draft_parser
from ddoc.runbooks.ingest import SourceDocument, SourceError

if TYPE_CHECKING:
    from ddoc.cli.client import ApiClient

_FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
}
# Keep each import request well under the API's 4 MiB body limit.
_BATCH_BYTES = 2 * 1024 * 1024
_BATCH_DOCUMENTS = 50


def add_parser(sub: Any) -> None:
    runbook = sub.add_parser("runbook", help="add, import, show and list runbooks")
    runbook.set_defaults(func=lambda args, settings: run(args))
    commands = runbook.add_subparsers(dest="runbook_command", required=True, metavar="ACTION")

    add = commands.add_parser(
        "add", help="add one runbook file (or its next version), or a template from the library"
    )
    add.add_argument("file", type=Path, nargs="?")
    add.add_argument("--template", metavar="NAME", help="install this template instead of a file")
    add.add_argument("--format", choices=["markdown", "text", "html"])
    add.add_argument("--source-path", help="identity at the source (default: the file name)")
    add.set_defaults(action=cmd_add)

    templates = commands.add_parser(
        "templates", help="list the template library (runbooks for the alerts everyone has)"
    )
    templates.set_defaults(action=cmd_templates)

    publish = commands.add_parser("publish", help="publish a draft: it matches alerts from now on")
    publish.add_argument("runbook_id")
    publish.set_defaults(action=cmd_publish)

    drafts = commands.add_parser("drafts", help="list the drafts awaiting review")
    drafts.set_defaults(action=cmd_drafts)
    add_draft_parser(commands)

    parse = commands.add_parser("parse", help="show how a file parses; stores nothing")
    parse.add_argument("file", type=Path)
    parse.add_argument("--format", choices=["markdown", "text", "html"])
    parse.add_argument("--json", action="store_true", help="print the structured runbook")
    parse.set_defaults(action=cmd_parse)

    imp = commands.add_parser("import", help="import files/folders, a git repo, Confluence, Notion")
    imp.add_argument("paths", nargs="*", type=Path, help="files or folders (.md .txt .html)")
    imp.add_argument(
        "--archive-missing",
        action="store_true",
        help="archive runbooks of this source that it no longer has",
    )
    imp.add_argument("--git", metavar="URL", help="a git repository (https, ssh, file or path)")
    imp.add_argument("--branch", help="with --git: the branch (default: the remote's default)")
    imp.add_argument("--subdir", help="with --git: only this folder of the repository")
    imp.add_argument(
        "--watch",
        type=int,
        metavar="SECONDS",
        help="with --git: keep running, re-import whenever the branch has a new commit",
    )
    imp.add_argument(
        "--confluence",
        metavar="URL",
        help="Confluence Cloud site (credentials: DDOC_CONFLUENCE_EMAIL, DDOC_CONFLUENCE_TOKEN)",
    )
    imp.add_argument("--space", help="with --confluence: the space key")
    imp.add_argument("--label", help="with --confluence: only pages with this label")
    imp.add_argument(
        "--notion-database",
        action="append",
        default=[],
        metavar="ID",
        help="a Notion database whose pages are runbooks (token: DDOC_NOTION_TOKEN)",
    )
    imp.add_argument("--notion-page", action="append", default=[], metavar="ID")
    imp.add_argument(
        "--web-url",
        metavar="BASE",
        help="with files or --git: the web URL the files are shown at, e.g. "
        "https://git.example.com/ops/runbooks/-/blob/main/ (an alert's runbook_url matches it)",
    )
    imp.set_defaults(action=cmd_import)

    show = commands.add_parser("show", help="show a runbook's steps, URLs and learned triggers")
    show.add_argument("runbook_id")
    show.add_argument("--version", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(action=cmd_show)

    forget = commands.add_parser(
        "forget", help="remove a learned trigger (ddoc runbook show lists them)"
    )
    forget.add_argument("runbook_id")
    forget.add_argument("trigger_id")
    forget.set_defaults(action=cmd_forget)

    lst = commands.add_parser("list", help="list runbooks")
    lst.add_argument("--all", action="store_true", help="include archived runbooks")
    lst.set_defaults(action=cmd_list)

    trust = commands.add_parser(
        "trust", help="show a runbook's trust level and what promotion needs, or set it"
    )
    trust.add_argument("runbook_id")
    trust.add_argument("level", nargs="?", choices=["read_along", "copilot", "autopilot"])
    trust.add_argument("--reason", help="why (required to change the level)")
    trust.add_argument("--force", action="store_true", help="override failed promotion guards")
    trust.set_defaults(action=cmd_trust)

    brk = commands.add_parser(
        "breaker", help="show a runbook's circuit breaker and limits, or resume it (approver)"
    )
    brk.add_argument("runbook_id")
    brk.add_argument("breaker_action", nargs="?", choices=["resume"], metavar="resume")
    brk.add_argument("--reason", help="why (required to resume; audited)")
    brk.set_defaults(action=cmd_breaker)

    stats = commands.add_parser("stats", help="effectiveness, dead steps and confidence")
    stats.add_argument("runbook_id")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(action=cmd_stats)

    suggest = commands.add_parser(
        "suggestions", help="show suggested revisions learned from executions"
    )
    suggest.add_argument("runbook_id")
    suggest.add_argument("--new", action="store_true", help="make one from the evidence now")
    suggest.set_defaults(action=cmd_suggestions)

    for verb, what in (("accept", "becomes the next version"), ("dismiss", "not suggested again")):
        decide = commands.add_parser(verb, help=f"{verb} a suggested revision ({what})")
        decide.add_argument("runbook_id")
        decide.add_argument("suggestion_id")
        decide.add_argument("--reason")
        decide.set_defaults(action=cmd_decide_suggestion, verb=verb)


def run(args: argparse.Namespace) -> int:
    from ddoc.cli.client import run_command  # httpx: not on the agent's light install

    return run_command(args.action, args)


def _read(path: Path, fmt: str | None) -> tuple[str, str]:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not UTF-8 text") from None
    return content, fmt or _FORMATS.get(path.suffix.lower(), "markdown")


def cmd_add(args: argparse.Namespace, client: ApiClient) -> int:
    if args.template:
        if args.file:
            raise SourceError("give a file or --template NAME, not both")
        runbook = client.request("POST", f"/runbooks/templates/{args.template}")
        print(
            f"{runbook['id']}  version {runbook['version']} ({runbook['outcome']})  "
            f"{runbook['title']}  alerts: {', '.join(runbook['alert_names'])}"
        )
        return 0
    if args.file is None:
        raise SourceError("give a runbook file, or --template NAME (ddoc runbook templates)")
    content, fmt = _read(args.file, args.format)
    body = {"content": content, "format": fmt, "source_path": args.source_path or args.file.name}
    runbook = client.request("POST", "/runbooks", json=body)
    parsed = runbook.get("parsed") or {}
    print(
        f"{runbook['id']}  version {runbook['version']} ({runbook['outcome']})  "
        f"{runbook['title']}  steps: {len(parsed.get('steps', []))}  "
        f"quality: {parsed.get('quality', {}).get('score', '?')}/100"
    )
    return 0


def cmd_templates(args: argparse.Namespace, client: ApiClient) -> int:
    for template in client.request("GET", "/runbooks/templates"):
        print(f"{template['name']:<36} {template['title']}  [{', '.join(template['alerts'])}]")
    print("install one: ddoc runbook add --template NAME")
    return 0


def cmd_publish(args: argparse.Namespace, client: ApiClient) -> int:
    runbook = client.request("POST", f"/runbooks/{args.runbook_id}/publish")
    print(f"{runbook['id']}  published: {runbook['title']} matches its alerts from now on")
    return 0


def cmd_drafts(args: argparse.Namespace, client: ApiClient) -> int:
    found = client.request("GET", "/runbooks/drafts")
    for runbook in found:
        origin = runbook.get("origin") or {}
        incident = f" for {origin['incident_id']}" if origin.get("incident_id") else ""
        print(f"{runbook['id']}  {runbook['title']}  (from {origin.get('from', '?')}{incident})")
    if not found:
        print("no drafts awaiting review")
    return 0


def cmd_parse(args: argparse.Namespace, client: ApiClient) -> int:
    content, fmt = _read(args.file, args.format)
    parsed = client.request("POST", "/runbooks/parse", json={"content": content, "format": fmt})
    if args.json:
        print(json.dumps(parsed, indent=2))
    else:
        _print_structure(parsed)
    return 0


def cmd_show(args: argparse.Namespace, client: ApiClient) -> int:
    params = {"version": args.version} if args.version else None
    runbook = client.request("GET", f"/runbooks/{args.runbook_id}", params=params)
    if args.json:
        print(json.dumps(runbook, indent=2))
        return 0
    print(f"{runbook['id']}  version {runbook['version']}  trust: {runbook['trust_level']}")
    _print_structure(runbook["parsed"])
    for url in runbook.get("urls") or []:
        print(f"url: {url}")
    for trigger in runbook.get("learned_triggers") or []:
        incident = f" for {trigger['incident_id']}" if trigger["incident_id"] else ""
        print(
            f"learned {trigger['id']}: {trigger['fingerprint']}  (picked by "
            f"{trigger['created_by_name']}{incident} on {trigger['created_at'][:10]})"
        )
    _print_outcomes(runbook.get("outcomes"))
    return 0


def _print_outcomes(graded: dict[str, Any] | None) -> None:
    if not graded:
        return
    counts = graded["counts"]
    print(
        f"outcomes (alert resolved within {graded['window_seconds']} s, not back in 24 h): "
        f"{counts['mitigated']} mitigated, {counts['recurred']} recurred, "
        f"{counts['not_resolved']} not resolved, {counts['pending']} pending; "
        f"{graded['overridden']} overridden"
    )
    for run in graded["recent"][:10]:
        grade = run["grade"] + (f" ({run['waiting_for']})" if run["waiting_for"] else "")
        again = f" as {run['recurred_incident_id']}" if run["recurred_incident_id"] else ""
        overrides = f"  overridden: {', '.join(run['reasons'])}" if run["overridden"] else ""
        print(f"  {run['execution_id']}  {run['incident_id']}  {grade}{again}{overrides}")


def cmd_forget(args: argparse.Namespace, client: ApiClient) -> int:
    client.request("DELETE", f"/runbooks/{args.runbook_id}/learned-triggers/{args.trigger_id}")
    print(f"forgot {args.trigger_id}: alerts like it are matched as before")
    return 0


def cmd_list(args: argparse.Namespace, client: ApiClient) -> int:
    runbooks = client.request("GET", "/runbooks", params={"include_archived": args.all})
    for rb in runbooks:
        archived = "  (archived)" if rb["archived"] else ""
        print(
            f"{rb['id']}  v{rb['version']:<3} {rb['title']}  [{rb['source_path'] or '-'}]{archived}"
        )
    print(f"{len(runbooks)} runbook(s)", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace, client: ApiClient) -> int:
    if args.git:
        return _import_git(args, client)
    if args.confluence or args.notion_database or args.notion_page:
        return _import_service(args, client)
    if not args.paths:
        print(
            "ddoc: nothing to import: name files or folders, or --git/--confluence/--notion-*",
            file=sys.stderr,
        )
        return 2
    from ddoc.runbooks.ingest.files import iter_files

    errors: list[SourceError] = []
    documents = _with_web_urls(list(iter_files(args.paths, errors=errors)), args.web_url, None)
    for error in errors:
        print(f"skipped: {error}", file=sys.stderr)
    failed = import_batches(client, documents)
    if args.archive_missing:
        # Local files carry bare relative paths; connector sources have their own prefixes.
        _archive_missing(client, "", documents)
    return 1 if failed or errors else 0


def _import_git(args: argparse.Namespace, client: ApiClient) -> int:
    from ddoc.runbooks.ingest.git import GitSource

    cache = Path(os.environ.get("DDOC_DATA_DIR") or ".ddoc") / "sources" / "git"
    source = GitSource(args.git, args.branch, args.subdir, cache)
    imported: str | None = None
    while True:
        if imported is None or source.changed_since(imported):
            print(f"syncing {source.display_url}…", file=sys.stderr)
            snapshot = source.sync()
            for error in snapshot.errors:
                print(f"skipped: {error}", file=sys.stderr)
            documents = _with_web_urls(snapshot.documents, args.web_url, "path")
            failed = import_batches(client, documents)
            if args.archive_missing:
                _archive_missing(client, source.prefix, snapshot.documents)
            imported = snapshot.commit
            print(f"at commit {snapshot.commit[:12]}", file=sys.stderr)
            if not args.watch:
                return 1 if failed or snapshot.errors else 0
        time.sleep(args.watch)


def _import_service(args: argparse.Namespace, client: ApiClient) -> int:
    documents: list[SourceDocument] = []
    prefixes: list[str] = []
    if args.confluence:
        from ddoc.runbooks.ingest.confluence import ConfluenceSource

        confluence = ConfluenceSource(
            args.confluence,
            _required_env("DDOC_CONFLUENCE_EMAIL"),
            _required_env("DDOC_CONFLUENCE_TOKEN"),
            args.space,
            args.label,
        )
        documents += confluence.fetch()
        prefixes.append(confluence.prefix)
    if args.notion_database or args.notion_page:
        from ddoc.runbooks.ingest.notion import NotionSource

        notion = NotionSource(
            _required_env("DDOC_NOTION_TOKEN"),
            page_ids=args.notion_page,
            database_ids=args.notion_database,
        )
        documents += notion.fetch()
        prefixes.append(notion.prefix)
    failed = import_batches(client, documents)
    if args.archive_missing:
        for prefix in prefixes:
            _archive_missing(
                client, prefix, [d for d in documents if d.source_path.startswith(prefix)]
            )
    return 1 if failed else 0


def _with_web_urls(
    documents: list[SourceDocument], base: str | None, path_key: str | None
) -> list[SourceDocument]:
    """Each document with its web URL: `base` + its path (in the repository, or as imported)."""
    if not base:
        return documents
    from ddoc.runbooks.urls import is_url  # the parser's modules: not on the agent's install

    if not is_url(base):
        raise SourceError(f"--web-url {base!r} is not an http(s) URL")
    prefix = base if base.endswith("/") else base + "/"
    return [
        dataclasses.replace(
            d,
            urls=(
                *(d.urls or ()),
                prefix + (d.metadata.get(path_key, "") if path_key else d.source_path).lstrip("/"),
            ),
        )
        for d in documents
    ]


def _archive_missing(client: ApiClient, prefix: str, documents: Sequence[SourceDocument]) -> None:
    archived = client.request(
        "POST",
        "/runbooks/archive-missing",
        json={"prefix": prefix, "present": [d.source_path for d in documents]},
    )["archived"]
    print(
        f"archived {len(archived)} runbook(s) no longer in {prefix or 'the files'}", file=sys.stderr
    )


def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SourceError(f"{name} is not set")
    return value


def import_batches(client: ApiClient, documents: Sequence[SourceDocument]) -> int:
    """Post documents in bounded batches with a progress line each; returns how many failed."""
    total, done, failed = len(documents), 0, 0
    counts: dict[str, int] = {}
    for batch in _batches(documents):
        body = {"documents": [_document_body(d) for d in batch]}
        for result in client.request("POST", "/runbooks/import", json=body):
            done += 1
            counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
            if result["outcome"] == "failed":
                failed += 1
                line = f"failed: {result['error']}"
            else:
                line = f"{result['outcome']} v{result['version']}, {result['steps']} steps"
            print(f"[{done}/{total}] {result['source_path']}: {line}", file=sys.stderr)
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    print(f"imported {total} document(s): {summary or 'none'}", file=sys.stderr)
    return failed


def _document_body(document: SourceDocument) -> dict[str, Any]:
    from ddoc.runbooks.ingest.urls import document_urls

    body: dict[str, Any] = {
        "content": document.content,
        "format": document.format,
        "source_path": document.source_path,
    }
    urls = document_urls(document)
    if urls is not None:  # none named: the runbook keeps the URLs it has
        body["urls"] = urls
    return body


def _batches(documents: Sequence[SourceDocument]) -> Iterator[list[SourceDocument]]:
    batch: list[SourceDocument] = []
    size = 0
    for document in documents:
        length = len(document.content.encode())
        if batch and (size + length > _BATCH_BYTES or len(batch) >= _BATCH_DOCUMENTS):
            yield batch
            batch, size = [], 0
        batch.append(document)
        size += length
    if batch:
        yield batch


def _print_structure(parsed: dict[str, Any]) -> None:
    print(f"# {parsed['title']}")
    for prerequisite in parsed.get("prerequisites", []):
        print(f"  requires ({prerequisite['kind']}): {prerequisite['text']}")
    for variable in parsed.get("variables", []):
        print(f"  variable {variable['syntax']} ← {variable['source']} {variable.get('key') or ''}")
    for step in parsed.get("steps", []):
        risk = step.get("risk") or "-"
        print(f"{step['id']:>4} [{risk:^6}] {step['kind']:<8} {step['text'][:90]}")
        if step.get("command"):
            for line in step["command"].splitlines():
                print(f"{'':>15}$ {line}")
        for branch in step.get("branches", []):
            print(f"{'':>15}if {branch['condition']} → {branch.get('goto') or branch['text']}")
    quality = parsed.get("quality", {})
    print(f"quality {quality.get('score', '?')}/100")
    for flag in quality.get("flags", []):
        print(f"  ! {flag['code']}: {flag['message']}")
    for warning in parsed.get("warnings", []):
        print(f"  warning: {warning}")


def cmd_trust(args: argparse.Namespace, client: ApiClient) -> int:
    if args.level is None:
        state = client.request("GET", f"/runbooks/{args.runbook_id}/trust")
        print(f"{state['id']}  trust: {state['trust_level']}")
        if state["next_level"]:
            print(f"to {state['next_level']}:")
            for guard in state["guards"]:
                print(f"  [{'x' if guard['passed'] else ' '}] {guard['detail']}")
        for change in state["history"]:
            print(
                f"{change['at']}  {change['from']} -> {change['to']}  {change['kind']}"
                f"  by {change['actor']}: {change['reason']}"
            )
        return 0
    if not args.reason:
        print("ddoc: --reason is required to change a trust level", file=sys.stderr)
        return 2
    body = {"level": args.level, "reason": args.reason, "force": args.force}
    result = client.request("POST", f"/runbooks/{args.runbook_id}/trust", json=body)
    if not result["changed"]:
        print(f"{result['id']} is already {result['trust_level']}")
    else:
        moved = f"{result['previous_level']} -> {result['trust_level']}"
        print(f"{result['id']}: {moved} ({result['kind']})")
    return 0


def cmd_breaker(args: argparse.Namespace, client: ApiClient) -> int:
    if args.breaker_action is None:
        runbook = client.request("GET", f"/runbooks/{args.runbook_id}")
        shown = runbook.get("breaker") or {"state": "closed"}
        print(f"{runbook['id']}  circuit breaker: {shown['state']}")
        if shown.get("opened_at"):
            print(f"  opened {shown['opened_at']}: {shown.get('reason')}")
            print(f"  executions: {', '.join(shown.get('executions') or [])}")
        if shown.get("resumed_at"):
            print(f"  resumed {shown['resumed_at']} by {shown.get('resumed_by')}")
        usage = runbook.get("limits") or {}
        if usage:
            effective = usage["effective"]
            print(
                f"  running now: {usage['running_now']} "
                f"(limit {effective['max_concurrent_per_runbook']})"
            )
            for mode, most in effective["max_runs_per_hour"].items():
                print(
                    f"  {mode} runs in the last hour: {usage['runs_last_hour'].get(mode, 0)}"
                    f" (limit {most})"
                )
        return 0
    if not args.reason:
        print("ddoc: --reason is required to resume a circuit breaker", file=sys.stderr)
        return 2
    body = {"action": args.breaker_action, "reason": args.reason}
    result = client.request("POST", f"/runbooks/{args.runbook_id}/breaker", json=body)
    print(
        f"{args.runbook_id}: circuit breaker {result['state']} (resumed by {result['resumed_by']})"
    )
    return 0


def cmd_stats(args: argparse.Namespace, client: ApiClient) -> int:
    report = client.request("GET", f"/runbooks/{args.runbook_id}/stats")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    eff, decay = report["effectiveness"], report["decay"]
    rate = "-" if eff["success_rate"] is None else f"{eff['success_rate']:.0%}"
    print(
        f"{report['runbook_id']}  v{report['version']}  {report['title']}  "
        f"trust: {report['trust_level']}"
    )
    print(
        f"score {eff['score'] if eff['score'] is not None else '-'}  success {rate} of "
        f"{eff['executions']}  median time to resolve "
        f"{eff['median_time_to_resolve_seconds'] or '-'} s"
    )
    stale = "  STALE: " + "; ".join(decay["reasons"]) if decay["stale"] else ""
    print(f"confidence {decay['confidence']}{stale}")
    for step in report["steps"]:
        dead = "  DEAD" if step["dead"] else ""
        print(
            f"  {step['step_id']:<5} reached {step['reached']:<3} skipped {step['skipped']:<3}"
            f" edited {step['edited']:<3} failed {step['failed']:<3}{dead}"
        )
    return 0


def cmd_suggestions(args: argparse.Namespace, client: ApiClient) -> int:
    if args.new:
        made = client.request("POST", f"/runbooks/{args.runbook_id}/suggestions")
        if made["suggestion"] is None:
            print(made["message"])
            return 0
        suggestions = [made["suggestion"]]
    else:
        suggestions = client.request("GET", f"/runbooks/{args.runbook_id}/suggestions")
    for suggestion in suggestions:
        print(f"{suggestion['id']}  {suggestion['status']}  on v{suggestion['base_version']}")
        if suggestion["status"] == "open":
            print(suggestion["diff"])
    if not suggestions:
        print("no suggestions")
    return 0


def cmd_decide_suggestion(args: argparse.Namespace, client: ApiClient) -> int:
    path = f"/runbooks/{args.runbook_id}/suggestions/{args.suggestion_id}/{args.verb}"
    result = client.request("POST", path, json={"reason": args.reason})
    if args.verb == "accept":
        print(f"{args.runbook_id} is now version {result['runbook']['version']}")
    else:
        print(f"{args.suggestion_id} dismissed")
    return 0
