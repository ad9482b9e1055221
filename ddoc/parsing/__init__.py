"""Runbook parsing: markdown, plain text and Confluence/HTML runbooks into ``ParsedRunbook``.

Deterministic, offline and fast (hundreds of runbooks per second). The JSON shape of the
result is documented in ``docs/RUNBOOK_SCHEMA.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ddoc.parsing.errors import ParseError
from ddoc.parsing.parser import FORMATS, default_classifier, parse_runbook
from ddoc.runbook import ParsedRunbook

if TYPE_CHECKING:
    from ddoc.parsing.ai import AIParserConfig

# (content, format, source_path) -> structured runbook; raises ParseError for unusable input.
RunbookParser = Callable[[str, str, str | None], ParsedRunbook]


def runbook_parser(ai: AIParserConfig | None = None) -> RunbookParser:
    """The AI parser when a key is configured (it falls back by itself), else the
    deterministic one."""
    if ai is None:
        return lambda content, fmt, source_path: parse_runbook(
            content, fmt, source_path=source_path
        )
    from ddoc.parsing.ai import parse_with_ai

    return lambda content, fmt, source_path: parse_with_ai(
        content, fmt, config=ai, source_path=source_path
    )


__all__ = [
    "FORMATS",
    "ParseError",
    "RunbookParser",
    "default_classifier",
    "parse_runbook",
    "runbook_parser",
]
