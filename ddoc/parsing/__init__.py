"""Runbook parsing: markdown, plain text and Confluence/HTML runbooks into ``ParsedRunbook``.

Deterministic, offline and fast (hundreds of runbooks per second). The JSON shape of the
result is documented in ``docs/RUNBOOK_SCHEMA.md``.
"""

from ddoc.parsing.errors import ParseError
from ddoc.parsing.parser import FORMATS, default_classifier, parse_runbook

__all__ = ["FORMATS", "ParseError", "default_classifier", "parse_runbook"]
