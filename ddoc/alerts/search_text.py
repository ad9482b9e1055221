"""What matching reads of an alert: its words, without their variable parts.

The alert's text is searched with its variable parts (pod names, hosts, IPs, numbers: what
ddoc/alerts/fingerprints.py masks) left out: they say nothing about which runbook fits, and
without them a recurrence of an alert is ranked exactly like its first occurrence. Alert names
are split into words like the runbooks' side does (ddoc/runbooks/search.py).
"""

from __future__ import annotations

import re

from ddoc.alerts import fingerprints
from ddoc.alerts.sources import NormalizedAlert
from ddoc.runbooks.search import CAMEL, WORD, split_name

_LETTERS = re.compile(r"\b[A-Za-z]+\b")  # words of letters only: ids and timestamps stay whole
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_DESCRIPTION_CHARS = 400
# Ranking cost grows with the words of the query: it stays small so matching holds at 10,000
# runbooks.
_QUERY_WORDS = 24
_PLACEHOLDER = "<*>"  # what fingerprints.mask puts in place of a variable part


def alert_text(alert: NormalizedAlert) -> str:
    """Every descriptive field a source offers, without its variable parts: an alert without an
    alertname (a PagerDuty title, a paraphrase, another language) still has words to match."""
    parts: list[str] = []
    if alert.alert_name:
        parts.append(split_name(alert.alert_name))
    fields = [alert.title]
    fields += [
        v[:_DESCRIPTION_CHARS] for v in (alert.description, alert.annotations.get("summary")) if v
    ]
    if alert.service:
        fields.append(alert.service)
    for value in fields:
        cleaned = without_values(value)
        if cleaned and cleaned not in parts:
            parts.append(cleaned)
    return ". ".join(parts)


def without_values(value: str) -> str:
    """Lower-cased, CamelCase words split (`PersistentVolume`; words of letters only), templates
    and the parts the fingerprint masks removed."""
    words_split = _LETTERS.sub(lambda m: CAMEL.sub(" ", m[0]), _TEMPLATE.sub(" ", value))
    masked = fingerprints.mask(words_split)
    return " ".join(masked.replace(_PLACEHOLDER, " ").split()).strip(" .,;:!-/")


def query_words(alert: NormalizedAlert) -> str:
    """The alert's distinct words for full-text search (matched with OR: an AND query would
    need every word in one runbook)."""
    words: list[str] = []
    if alert.alert_name:
        words.append(alert.alert_name.lower())
    for word in WORD.findall(alert_text(alert).lower()):
        if len(word) > 1 and word not in words:
            words.append(word)
    return " ".join(words[:_QUERY_WORDS])


def alert_words(alert: NormalizedAlert) -> list[str]:
    """Every word of the alert's text (alert name split, title, description, service)."""
    words: list[str] = []
    for word in WORD.findall(alert_text(alert)):
        if len(word) > 1 and not word.isdigit() and word not in words:
            words.append(word)
    return words
