"""``parse_runbook``: raw markdown / plain text / HTML in, ``ParsedRunbook`` out.

Deterministic and offline. Pipeline: decode and validate → front-matter → format reader
(markdown-it, plain-text lines, or HTML converted to markdown) → step builder (which ends by
turning stated checks into prechecks and verifies) → rollback suggestions → parallel groups
(front-matter `parallel:` and "meanwhile"-style prose, ``parallel.py``) → mitigated_when →
variables → quality report.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from ddoc.runbooks.parsing import chrome
from ddoc.runbooks.parsing.bare import vocabulary_with
from ddoc.runbooks.parsing.build_state import Classifier, Outline
from ddoc.runbooks.parsing.checks import mitigation
from ddoc.runbooks.parsing.errors import ParseError
from ddoc.runbooks.parsing.html import html_to_markdown
from ddoc.runbooks.parsing.inverses import suggested_rollback
from ddoc.runbooks.parsing.markdown import read_markdown
from ddoc.runbooks.parsing.nodes import Node
from ddoc.runbooks.parsing.parallel import mark_parallel
from ddoc.runbooks.parsing.quality import assess
from ddoc.runbooks.parsing.source import decode, split_front_matter
from ddoc.runbooks.parsing.steps import StepBuilder
from ddoc.runbooks.parsing.text import read_text
from ddoc.runbooks.parsing.variables import collect, mask_placeholders

if TYPE_CHECKING:
    from ddoc.runbooks.risk import RuleSet

from ddoc.runbooks.model import (
    ParsedRunbook,
    RiskClass,
    RollbackOrigin,
    Triggers,
)

FORMATS = ("markdown", "text", "html")
DEFAULT_MAX_BYTES = 2_000_000
DEFAULT_TIME_BUDGET = 20.0  # seconds; a 2 MB paste of log lines parses in about 2 s
_SUMMARY_LIMIT = 500
_TITLE_LIMIT = 200
_CAMEL_ALERT = re.compile(r"^[A-Za-z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+$")
# A line that names the runbook's alerts as wiki pages and notes write it: "Alert:
# KubePodCrashLooping", "**Alerts:** `A`, `B`", "Alert name: node_disk_full", "Triggered by: X".
_ALERT_LINE = re.compile(
    r"^[ \t>*_#|-]*(?:alerts?|alert[ \t]*names?|alertnames?|triggered[ \t]+by|"
    r"prometheus[ \t]+alerts?|firing[ \t]+alerts?)[ \t]*[*_]*[ \t]*[:=\uff1a][ \t]*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_SNAKE_ALERT = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+$")
_MAX_LINE_ALERTS = 5
_MD_NOISE = re.compile(r"`+")


def parse_runbook(
    content: str | bytes,
    fmt: str = "markdown",
    *,
    source_path: str | None = None,
    classify: Classifier | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    programs: Iterable[str] = (),
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> ParsedRunbook:
    """Parse a runbook into steps, triggers, prerequisites, variables and a quality report.

    ``classify(command, language) -> (RiskClass, reason)`` rates each command; by default
    ``ddoc.runbooks.risk`` does (SQL through ``classify_sql``, everything else
    ``classify_command``).
    ``programs`` adds a tenant's own programs to the vocabulary that finds commands in prose;
    past ``time_budget`` seconds building steps, the parse gives up with a ParseError.
    Raises ``ParseError`` (and only that) for input that is not a usable runbook document.
    """
    fmt_key = fmt.strip().lower() if isinstance(fmt, str) else ""
    if fmt_key not in FORMATS:
        raise ParseError(f"unsupported format {fmt!r}; use markdown, text or html")
    text = decode(content, max_bytes)
    classifier = classify if classify is not None else default_classifier()
    vocab = vocabulary_with(frozenset(programs))
    warnings: list[str] = []
    front: dict[str, Any] = {}
    nodes: list[Node]
    if fmt_key == "html":
        markdown, html_warnings = html_to_markdown(text)
        warnings.extend(html_warnings)
        nodes = read_markdown(markdown, vocab)
        first_line_source = markdown
    else:
        fm = split_front_matter(text)
        warnings.extend(fm.warnings)
        front = fm.data
        nodes = (
            read_markdown(fm.body, vocab) if fmt_key == "markdown" else read_text(fm.body, vocab)
        )
        first_line_source = fm.body

    builder = StepBuilder(classifier, warnings, deadline=time.monotonic() + time_budget)
    steps = builder.build(nodes)
    outline = builder.outline

    for step in steps:
        if step.command is not None and step.rollback is None:
            step.rollback = suggested_rollback(step.command)
    # Risk is known by now: prose groups only read-only steps.
    mark_parallel(steps, front, warnings)

    triggers = _triggers(front, warnings)
    title = _title(
        front, outline, source_path, first_line_source, inferred=fmt_key not in ("markdown", "html")
    )
    if not triggers.alerts:
        triggers.alerts.extend(_alerts_from_lines(first_line_source))
    if not triggers.alerts:
        alert = _alert_from_title(outline, source_path, first_line_source)
        if alert:
            triggers.alerts.append(alert)

    mitigated_when = mitigation(front, classifier, warnings)
    commands: list[tuple[str, str | None, str | None]] = []
    for step in steps:
        if step.command is not None:
            commands.append((step.command, step.language, step.text))
        for check in (step.precheck, step.verify):
            if check is not None:
                commands.append((check.command, step.language, check.text))
    for step in steps:
        rb = step.rollback
        if rb is not None and rb.command and rb.origin == RollbackOrigin.RUNBOOK:
            commands.append((rb.command, step.language, rb.text))
    variables, _ = collect(commands, [s.text for s in steps])

    return ParsedRunbook(
        title=title,
        summary=_summary(front, outline),
        steps=steps,
        triggers=triggers,
        prerequisites=outline.prerequisites,
        variables=variables,
        quality=assess(steps, triggers, variables),
        parser="deterministic",
        warnings=warnings,
        mitigated_when=mitigated_when,
    )


def default_classifier(rules: RuleSet | None = None) -> Classifier:
    """``ddoc.runbooks.risk`` adapted to the ``(command, language)`` signature, with a tenant's
    rules
    applied to shell commands (SQL goes through the SQL classifier)."""
    from ddoc.runbooks.risk import classify_command, classify_sql

    def classify(command: str, language: str | None) -> tuple[RiskClass, str]:
        # A placeholder is a word the human fills in, never a redirection or an expansion.
        opaque = mask_placeholders(command)
        assessment = classify_sql(opaque) if language == "sql" else classify_command(opaque, rules)
        return RiskClass(assessment.level), str(assessment.reason)

    return classify


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        items = [str(value)]
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value if isinstance(v, str | int | float)]
    else:
        return []
    out: list[str] = []
    for item in items:
        for part in item.split(",") if isinstance(value, str) else [item]:
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _triggers(front: dict[str, Any], warnings: list[str]) -> Triggers:
    triggers = Triggers()
    for key in ("alerts", "alert", "alertname"):
        for alert in _strings(front.get(key)):
            if alert not in triggers.alerts:
                triggers.alerts.append(alert)
    labels = front.get("labels")
    if isinstance(labels, dict):
        triggers.labels = {
            str(k): str(v) for k, v in labels.items() if isinstance(v, str | int | float | bool)
        }
    elif labels is not None:
        warnings.append("front-matter `labels` should be a mapping of label to value; ignored")
    for key in ("services", "service"):
        for service in _strings(front.get(key)):
            if service not in triggers.services:
                triggers.services.append(service)
    return triggers


def _clean(text: str) -> str:
    text = _MD_NOISE.sub("", text)
    return " ".join(text.split())


def _title(
    front: dict[str, Any],
    outline: Outline,
    source_path: str | None,
    body: str,
    *,
    inferred: bool = False,
) -> str:
    """Front-matter's title, the first heading, the file's name, the first line. A plain text's
    headings are only short lines (`inferred`): a pasted wiki page's chrome ("Space shortcuts",
    a breadcrumb) is none, and the line above its byline ("Created by …") is the title."""
    raw = front.get("title")
    headings = [outline.h1, outline.first_heading]
    first_line = chrome.title_line(body)
    if inferred:
        headings = [h for h in headings if h and not chrome.is_chrome(h)]
        if any(chrome.BYLINE.search(line) for line in body.split("\n")[:12]):
            headings = [first_line]
    candidates: list[str | None] = [
        str(raw) if isinstance(raw, str | int | float) else None,
        *headings,
        PurePath(source_path).stem if source_path else None,
        first_line,
    ]
    for candidate in candidates:
        if candidate and _clean(candidate):
            title = _clean(candidate)
            return title if len(title) <= _TITLE_LIMIT else title[: _TITLE_LIMIT - 1] + "…"
    return "Untitled runbook"


def _alerts_from_lines(body: str) -> list[str]:
    """Alert names a line of the text gives ("Alert: PostgresDiskUsageHigh, instance db-1"):
    only words shaped like alert names (CamelCase, snake_case, or one word written as code);
    prose after the colon is not one."""
    found: list[str] = []
    for line in _ALERT_LINE.finditer(body):
        for part in re.split(r"[,;/|]|\s+(?:and|or|&)\s+", line.group(1)):
            quoted = "`" in part
            name = part.strip(" \t*_`'\"()[].")
            shaped = (
                _CAMEL_ALERT.match(name)
                or _SNAKE_ALERT.match(name)
                # one word is a name only when written as code: `Watchdog`
                or (quoted and name.isidentifier() and name[:1].isupper())
            )
            if shaped and len(name) <= 128 and name not in found:
                found.append(name)
            if len(found) == _MAX_LINE_ALERTS:
                return found
    return found


def _alert_from_title(outline: Outline, source_path: str | None, body: str) -> str | None:
    """A runbook titled ``KubePodCrashLooping`` is that alert's runbook."""
    name = (outline.h1 or "").strip()
    stem = PurePath(source_path).stem if source_path else ""
    if stem == name and name.isidentifier():
        return name
    if not _CAMEL_ALERT.match(name):
        return None
    if re.search(rf"\b{re.escape(name)} alert\b|\balert {re.escape(name)}\b", body):
        return name
    return None


def _summary(front: dict[str, Any], outline: Outline) -> str:
    raw = front.get("summary") or front.get("description")
    if isinstance(raw, str) and raw.strip():
        text = raw
    elif outline.summary_parts:
        text = ""
        for part in outline.summary_parts:
            text = f"{text} {part}".strip()
            if len(text) >= _SUMMARY_LIMIT:
                break
    else:
        text = outline.first_paragraph or ""
    text = _clean(text)
    if len(text) > _SUMMARY_LIMIT:
        cut = text.rfind(" ", 0, _SUMMARY_LIMIT)
        text = text[: cut if cut > _SUMMARY_LIMIT // 2 else _SUMMARY_LIMIT].rstrip(" ,;:") + "…"
    return text


__all__ = ["FORMATS", "ParseError", "default_classifier", "parse_runbook"]
