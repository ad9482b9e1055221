"""The one exception the parsing package raises for bad input."""

from __future__ import annotations


class ParseError(ValueError):
    """The input cannot be parsed as a runbook; the message is meant for the person who sent it."""
