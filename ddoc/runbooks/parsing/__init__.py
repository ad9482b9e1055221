"""Runbook parsing: markdown, plain text and Confluence/HTML runbooks into ``ParsedRunbook``.

Deterministic, offline and fast (hundreds of runbooks per second). The JSON shape of the
result is documented in ``docs/RUNBOOK_SCHEMA.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing.errors import ParseError
from ddoc.runbooks.parsing.parser import FORMATS, default_classifier, parse_runbook

if TYPE_CHECKING:
    from ddoc.runbooks.parsing.ai import AIParserConfig
    from ddoc.runbooks.risk import RuleSet


class RunbookParser(Protocol):
    """(content, format, source_path, tenant risk rules) -> structured runbook; raises
    ParseError for input that is not a usable runbook."""

    def __call__(
        self, content: str, fmt: str, source_path: str | None, rules: RuleSet | None = None
    ) -> ParsedRunbook: ...


def runbook_parser(ai: AIParserConfig | None = None) -> RunbookParser:
    """The AI parser when a key is configured (it falls back by itself), else the
    deterministic one."""

    def parse(
        content: str, fmt: str, source_path: str | None, rules: RuleSet | None = None
    ) -> ParsedRunbook:
        classify = default_classifier(rules)
        programs = rules.programs if rules is not None else frozenset()
        if ai is None:
            return parse_runbook(
                content, fmt, source_path=source_path, classify=classify, programs=programs
            )
        from ddoc.runbooks.parsing.ai import parse_with_ai

        return parse_with_ai(
            content,
            fmt,
            config=ai,
            source_path=source_path,
            classify=classify,
            programs=programs,
        )

    return parse


__all__ = [
    "FORMATS",
    "ParseError",
    "RunbookParser",
    "default_classifier",
    "parse_runbook",
    "runbook_parser",
]
