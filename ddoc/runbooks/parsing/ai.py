"""The AI runbook parser: Claude reads the runbook, our rules keep it honest.

``parse_with_ai`` always runs the deterministic parser first (it validates the input and is
the fallback), then asks the Messages API for the structure through one forced tool call
(``record_runbook``). The answer is never trusted as is: every command must occur in the
source (``grounding``), risk is the worse of our rule-based class and the AI's, and any API
failure or malformed answer returns the deterministic result with a warning instead.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message, MessageParam, ToolChoiceToolParam, ToolParam, ToolUseBlock

from ddoc.runbooks.model import (
    Branch,
    Check,
    ParsedRunbook,
    QualityFlag,
    QualityReport,
    RiskClass,
    RollbackOrigin,
    Step,
    StepKind,
    Triggers,
    Variable,
)
from ddoc.runbooks.parsing import ai_checks as gr
from ddoc.runbooks.parsing.ai_checks import AIRunbook, InvalidOutput, validate
from ddoc.runbooks.parsing.ai_prompt import SYSTEM_PROMPT, TOOL_NAME, TOOL_SCHEMA, user_message
from ddoc.runbooks.parsing.build_state import Classifier
from ddoc.runbooks.parsing.commands import language_of
from ddoc.runbooks.parsing.html import html_to_markdown
from ddoc.runbooks.parsing.inverses import suggested_rollback
from ddoc.runbooks.parsing.parallel import mark_parallel
from ddoc.runbooks.parsing.parser import DEFAULT_MAX_BYTES, default_classifier, parse_runbook
from ddoc.runbooks.parsing.quality import assess, score
from ddoc.runbooks.parsing.source import decode, split_front_matter
from ddoc.runbooks.parsing.variables import collect

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-6"
_HALLUCINATED = "hallucinated_command"


@dataclass(frozen=True)
class AIParserConfig:
    api_key: str = field(repr=False)  # never in a repr, log line or warning
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    timeout_seconds: float = 60.0
    max_tokens: int = 8000
    system_prompt: str | None = None  # None: SYSTEM_PROMPT
    max_retries: int = 1
    # Longer documents go to the deterministic parser: they would not fit the answer budget.
    max_input_chars: int = 200_000


def ai_config_from_env(env: Mapping[str, str]) -> AIParserConfig | None:
    """``DDOC_ANTHROPIC_API_KEY`` (or ``ANTHROPIC_API_KEY``), ``DDOC_ANTHROPIC_MODEL``,
    ``DDOC_ANTHROPIC_BASE_URL``; None when no key is set (the AI parser is off)."""
    key = (env.get("DDOC_ANTHROPIC_API_KEY") or env.get("ANTHROPIC_API_KEY") or "").strip()
    if not key:
        return None
    model = (env.get("DDOC_ANTHROPIC_MODEL") or "").strip() or DEFAULT_MODEL
    base_url = (env.get("DDOC_ANTHROPIC_BASE_URL") or "").strip() or None
    prompt_file = (env.get("DDOC_ANTHROPIC_PROMPT_FILE") or "").strip()
    # A team's own instructions replace the default system prompt; grounding and the risk
    # floor are enforced in code whatever the prompt says.
    system_prompt = Path(prompt_file).read_text() if prompt_file else None
    return AIParserConfig(api_key=key, model=model, base_url=base_url, system_prompt=system_prompt)


class _Unavailable(Exception):
    """The AI answer cannot be used; the message is the short reason shown to the user."""


def parse_with_ai(
    content: str | bytes,
    fmt: str = "markdown",
    *,
    config: AIParserConfig,
    source_path: str | None = None,
    classify: Classifier | None = None,
    http_client: httpx2.Client | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    programs: Iterable[str] = (),
) -> ParsedRunbook:
    """Parse with Claude, grounded and risk-checked; the deterministic result on any failure.

    Raises ``ParseError`` (from the deterministic parser) for input that is not a runbook,
    and nothing for API or answer problems.
    """
    classifier = classify if classify is not None else default_classifier()
    baseline = parse_runbook(
        content,
        fmt,
        source_path=source_path,
        classify=classifier,
        max_bytes=max_bytes,
        programs=programs,
    )
    fmt_key = fmt.strip().lower()
    text = decode(content, max_bytes)
    front: dict[str, Any] = {}
    if fmt_key == "html":
        # Spans then refer to the converted text, as the deterministic parser's do.
        shown = html_to_markdown(text)[0]
        sources = [shown, html.unescape(text), text]
    else:
        shown = text
        sources = [text]
        front = split_front_matter(text).data  # its warnings are in the baseline's already
    try:
        if len(shown) > config.max_input_chars:
            raise _Unavailable(f"runbook longer than {config.max_input_chars} characters")
        raw = _call(config, user_message(shown, fmt_key, source_path), http_client)
        data = validate(raw, n_lines=max(1, shown.count("\n") + 1))
    except _Unavailable as exc:
        return _fallback(baseline, str(exc), config.api_key)
    except InvalidOutput as exc:
        return _fallback(baseline, f"invalid AI output: {exc}", config.api_key)
    try:
        return _assemble(data, baseline, sources, classifier, front)
    except Exception as exc:  # a bug here must not cost the user the parse
        logger.exception("AI parser post-processing failed")
        return _fallback(baseline, f"post-processing failed: {type(exc).__name__}", config.api_key)


def _call(config: AIParserConfig, prompt: str, http_client: httpx2.Client | None) -> Any:
    tool: ToolParam = {
        "name": TOOL_NAME,
        "description": "Record the structure of the runbook.",
        "input_schema": TOOL_SCHEMA,
    }
    choice: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
    messages: list[MessageParam] = [{"role": "user", "content": prompt}]
    client = anthropic.Anthropic(
        api_key=config.api_key,
        base_url=config.base_url,
        http_client=http_client,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
    )
    try:
        message = client.messages.create(
            model=config.model,
            max_tokens=config.max_tokens,
            system=config.system_prompt or SYSTEM_PROMPT,
            messages=messages,
            tools=[tool],
            tool_choice=choice,
        )
    except anthropic.APITimeoutError:  # before APIConnectionError: it is a subclass
        raise _Unavailable("request timed out") from None
    except anthropic.APIConnectionError:
        raise _Unavailable("connection error") from None
    except anthropic.APIStatusError as exc:
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        suffix = f" {kind}" if isinstance(kind, str) else ""
        raise _Unavailable(f"HTTP {exc.status_code}{suffix}") from None
    except anthropic.AnthropicError as exc:
        raise _Unavailable(type(exc).__name__) from None
    finally:
        if http_client is None:  # a caller's client is the caller's to close
            client.close()
    # A proxy answering 200 with HTML or odd JSON gets past the SDK unparsed.
    if not isinstance(message, Message) or not isinstance(message.content, list):
        raise _Unavailable("malformed API response")
    if message.stop_reason == "max_tokens":
        raise _Unavailable("answer cut off at max_tokens")
    for block in message.content:
        if isinstance(block, ToolUseBlock) and block.name == TOOL_NAME:
            return block.input
    raise _Unavailable(f"no {TOOL_NAME} tool call in the answer")


def _fallback(baseline: ParsedRunbook, reason: str, api_key: str) -> ParsedRunbook:
    # Reasons are built from status codes and error types only; this is a second guard
    # (skipped for keys so short that masking would garble the message instead).
    if len(api_key) >= 8:
        reason = reason.replace(api_key, "***")
    logger.warning("AI parser unavailable (%s); used the deterministic parser", reason)
    baseline.parser = "deterministic"
    baseline.warnings.append(f"AI parser unavailable ({reason}); used the deterministic parser")
    return baseline


def _assemble(
    data: AIRunbook,
    baseline: ParsedRunbook,
    sources: list[str],
    classify: Classifier,
    front: dict[str, Any] | None = None,
) -> ParsedRunbook:
    # Input-level warnings (front-matter, HTML) still apply; step-level ones (parallel groups
    # included) were about the deterministic steps, which are not used.
    warnings = [w for w in baseline.warnings if w.startswith(("front-matter", "HTML"))]
    source = gr.Source(sources, _known_commands(baseline))
    rejected: list[tuple[Step | None, str]] = []  # (step kept as manual or None, message)
    kept: list[Step] = []
    new_index: dict[int, int] = {}  # AI position (1-based) -> position in `kept`
    ai_risk: dict[int, tuple[RiskClass | None, str | None]] = {}

    for position, item in enumerate(data.steps, start=1):
        step = item.step
        if step.command is not None:
            verdict = source.check(step.command)
            if verdict is not None:
                warnings.append(f"{verdict.warning}: {_short(step.command)}")
                message = verdict.message
                step.command = None
                if not step.text.strip():
                    rejected.append((None, message))
                    continue
                rejected.append((step, message))
            else:
                step.command = source.verbatim(step.command)
                step.text = step.text or f"Run `{step.command.splitlines()[0]}`"
        if not step.text:
            continue  # nothing to show or run
        if step.command is None and step.kind == StepKind.COMMAND:
            step.kind = StepKind.MANUAL
        elif step.command is not None and step.kind == StepKind.MANUAL:
            step.kind = StepKind.COMMAND
        rollback = step.rollback
        if rollback is not None and rollback.command is not None:
            verdict = source.check(rollback.command)
            if verdict is not None:
                warnings.append(f"{verdict.warning}: {_short(rollback.command)}")
                rejected.append((step, f"rollback {verdict.message}"))
                rollback.command = None
                step.rollback = rollback if rollback.text.strip() else None
            else:
                rollback.command = source.verbatim(rollback.command)
        step.precheck = _grounded_check(step.precheck, source, classify, warnings)
        step.verify = _grounded_check(step.verify, source, classify, warnings)
        for branch in step.branches:
            pattern = (branch.check or {}).get("output_pattern")
            if isinstance(pattern, str) and not source.occurs(pattern):
                branch.check = None  # a human decides rather than match invented text
        new_index[position] = len(kept)
        ai_risk[len(kept)] = (item.risk, item.risk_reason)
        kept.append(step)

    for i, step in enumerate(kept):
        step.id = f"s{i + 1}"
    for i, step in enumerate(kept):
        step.branches = [_remap(b, new_index, kept) for b in step.branches]
        if step.command is None:
            step.language = step.risk = step.risk_reason = None
            continue
        step.language = step.language or language_of(step.command)
        level, reason = ai_risk[i]
        step.risk, step.risk_reason = _risk(step.command, step.language, level, reason, classify)
        if step.rollback is None:
            step.rollback = suggested_rollback(step.command)

    # The same groups as the deterministic parser's, on the AI's steps: front-matter
    # `parallel:` (the author's word) and "meanwhile"-style words (those group read-only steps).
    mark_parallel(kept, front or {}, warnings)
    triggers = _triggers(data.triggers, baseline.triggers, source)
    variables = _variables(data.variables, kept, source)
    report = assess(kept, triggers, variables)
    flags = report.flags + [
        QualityFlag(_HALLUCINATED, message, step.id if step is not None else None)
        for step, message in rejected
    ]
    return ParsedRunbook(
        title=data.title or baseline.title,
        summary=data.summary or baseline.summary,
        steps=kept,
        triggers=triggers,
        prerequisites=data.prerequisites or baseline.prerequisites,
        variables=variables,
        quality=QualityReport(score=score(flags), flags=flags),
        parser="ai",
        warnings=warnings,
        mitigated_when=baseline.mitigated_when,
    )


def _grounded_check(
    check: Check | None, source: gr.Source, classify: Classifier, warnings: list[str]
) -> Check | None:
    """A check the model gave, kept only when its command is the runbook's, read-only under
    our rules, and any output it expects is the runbook's text too."""
    if check is None:
        return None
    verdict = source.check(check.command)
    if verdict is not None:
        warnings.append(f"{verdict.warning} (check dropped): {_short(check.command)}")
        return None
    check.command = source.verbatim(check.command)
    check.text = check.command
    pattern = check.expect.get("output_pattern")
    if isinstance(pattern, str) and not source.occurs(pattern):
        warnings.append(f"check dropped, its expected output is not in the runbook: {pattern!r}")
        return None
    level, reason = _risk(check.command, None, None, None, classify)
    if level != RiskClass.GREEN:
        warnings.append(f"check dropped, it is not read-only ({reason}): {_short(check.command)}")
        return None
    return check


def _known_commands(baseline: ParsedRunbook) -> list[str]:
    out = [s.command for s in baseline.steps if s.command]
    # the deterministic parser's checks left its step list; they are commands of the runbook too
    out += [c.command for s in baseline.steps for c in (s.precheck, s.verify) if c is not None]
    for s in baseline.steps:
        if s.rollback and s.rollback.command and s.rollback.origin == RollbackOrigin.RUNBOOK:
            out.append(s.rollback.command)
    return out


def _remap(branch: Branch, new_index: dict[int, int], kept: list[Step]) -> Branch:
    target = gr.goto_position(branch.goto)
    index = new_index.get(target) if target is not None else None
    branch.goto = kept[index].id if index is not None else None
    return branch


def _risk(
    command: str,
    language: str | None,
    ai_level: RiskClass | None,
    ai_reason: str | None,
    classify: Classifier,
) -> tuple[RiskClass, str]:
    """The worse of the rules and the AI: the AI may raise a class, never lower it."""
    # Rate under the AI's language and our own reading too, so a mislabelled language
    # (shell called "sql") cannot route a command to a more lenient rule set.
    languages = [language]
    detected = language_of(command)
    if detected != language:
        languages.append(detected)
    rated: list[tuple[RiskClass, str]] = []
    for lang in languages:
        try:
            level, reason = classify(command, lang)
            rated.append((RiskClass(level), str(reason)))
        except Exception:  # a classifier bug must not lose the runbook, nor make it green
            rated.append((RiskClass.RED, "risk could not be classified; treat as destructive"))
    rule_level, rule_reason = max(rated, key=lambda r: r[0].rank)
    if ai_level is not None and ai_level.rank > rule_level.rank:
        why = ai_reason or f"rated {ai_level.value}"
        return ai_level, f"AI: {why} (rules said {rule_level.value}: {rule_reason})"
    return rule_level, f"rules: {rule_reason}"


def _triggers(ai: Triggers, baseline: Triggers, source: gr.Source) -> Triggers:
    # Alert and service names drive matching: only names the runbook itself contains.
    out = Triggers(
        alerts=list(baseline.alerts),
        labels=dict(baseline.labels),
        services=list(baseline.services),
    )
    out.alerts += [a for a in dict.fromkeys(ai.alerts) if a not in out.alerts and source.occurs(a)]
    out.services += [
        s for s in dict.fromkeys(ai.services) if s not in out.services and source.occurs(s)
    ]
    for key, value in ai.labels.items():
        if key not in out.labels and source.occurs(value):
            out.labels[key] = value
    return out


def _variables(ai: list[Variable], steps: list[Step], source: gr.Source) -> list[Variable]:
    commands = [(s.command, s.language) for s in steps if s.command]
    commands += [
        (s.rollback.command, s.language)
        for s in steps
        if s.rollback and s.rollback.command and s.rollback.origin == RollbackOrigin.RUNBOOK
    ]
    commands += [(c.command, s.language) for s in steps for c in (s.precheck, s.verify) if c]
    used_in = [c for c, _ in commands] + [s.text for s in steps]
    out: dict[str, Variable] = {}
    for variable in ai:
        # In the source (not invented) and in a step we kept (not left over from a dropped one).
        if (
            variable.name not in out
            and source.occurs(variable.syntax)
            and any(variable.syntax in text for text in used_in)
        ):
            out[variable.name] = variable
    # Placeholders the AI missed: every one a command uses needs a value at run time.
    syntaxes = {v.syntax for v in out.values()}
    for variable in collect(commands, [s.text for s in steps])[0]:
        if variable.name not in out and variable.syntax not in syntaxes:
            out[variable.name] = variable
    return list(out.values())


def _short(command: str, limit: int = 200) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"


__all__ = ["DEFAULT_MODEL", "AIParserConfig", "ai_config_from_env", "parse_with_ai"]
