"""Redact secrets from command output before anything leaves the agent's host (and from recorded
terminal sessions and shell histories before they leave the engineer's machine: `ddoc watch`).

Stdlib only (the agent is a light install). Two layers:
- the values of the agent's local secrets (`[REDACTED:NAME]`, or `[REDACTED]` when unnamed);
- common credential shapes (bearer/basic auth headers, `password=…`, AWS keys, GitHub/Slack
  tokens, JWTs, private key blocks, `token=`/`api_key=`/`secret=` values, URL passwords):
  the key name is kept and only the value becomes `[REDACTED]`.

`redact` never raises: if anything goes wrong the whole text is withheld. A final safety pass
guarantees no known secret value survives, even inside a marker. `redact_fragment` also
redacts a partial secret at an edge where the text was cut (a truncation boundary, or a live
snippet of output still being written).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

MIN_SECRET_LENGTH = 4
# A cut edge ending (or starting) with at least this many characters of a secret is redacted.
MIN_PARTIAL = 3
WITHHELD = "[output withheld: redaction failed]"

_NOT_DONE = r"(?![\"']?\[REDACTED)"
_SCHEMES = r"(?:bearer|basic|token|digest)"
_KEY = (
    r"[A-Za-z0-9_.-]{0,40}?(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key)"
)
_VALUE = r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;&}]+)"


def _quoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}[REDACTED]{value[0]}"
    return "[REDACTED]"


def _keep_prefix(m: re.Match[str]) -> str:
    return m.group(1) + _quoted(m.group(2))


def _whole(_: re.Match[str]) -> str:
    return "[REDACTED]"


def _private_key(m: re.Match[str]) -> str:
    kind = m.group(1)
    return f"-----BEGIN {kind}PRIVATE KEY-----[REDACTED]-----END {kind}PRIVATE KEY-----"


_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?:.*?-----END \1PRIVATE KEY-----|.*\Z)",
            re.DOTALL,
        ),
        _private_key,
    ),
    (
        re.compile(
            rf"(?i)(\bauthorization[\"']?[ \t]*[:=][ \t]*{_SCHEMES}[ \t]+){_NOT_DONE}"
            r"([^\s\"',;]+)"
        ),
        _keep_prefix,
    ),
    (
        re.compile(
            rf"(?i)(\bauthorization[\"']?[ \t]*[:=][ \t]*)(?!{_SCHEMES}[ \t]){_NOT_DONE}"
            r"([^\s\"',;]+)"
        ),
        _keep_prefix,
    ),
    (re.compile(rf"(?i)(\bbearer[ \t]+){_NOT_DONE}([A-Za-z0-9\-._~+/]+=*)"), _keep_prefix),
    (
        re.compile(
            rf"(?i)(\b[a-z][a-z0-9+.-]{{0,30}}://[^\s:/@]{{1,256}}:){_NOT_DONE}([^\s@/]{{1,256}})(?=@)"
        ),
        _keep_prefix,
    ),
    (re.compile(rf"(?i)(\b{_KEY}[\"']?[ \t]*[:=][ \t]*){_NOT_DONE}{_VALUE}"), _keep_prefix),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _whole),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), _whole),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), _whole),
    (re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"), _whole),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), _whole),
)


class Redactor:
    """Built once per policy (patterns compiled once); `redact` is safe to call on any text."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[str] = ()) -> None:
        named: dict[str, str | None] = {}  # value -> name (None when unnamed)
        if isinstance(secrets, Mapping):
            items: Iterable[tuple[str | None, str]] = secrets.items()
        else:
            items = ((None, value) for value in secrets)
        for name, value in items:
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                named.setdefault(value, name)
        self._names = named
        # Longest first, so a secret containing another is replaced whole.
        self._values = sorted(named, key=len, reverse=True)
        self._secret_re = (
            re.compile("|".join(re.escape(v) for v in self._values)) if self._values else None
        )

    def _marker(self, value: str) -> str:
        name = self._names.get(value)
        return f"[REDACTED:{name}]" if name else "[REDACTED]"

    def redact(self, text: str) -> str:
        return self.redact_fragment(text)

    def redact_fragment(self, text: str, *, cut_start: bool = False, cut_end: bool = False) -> str:
        """Redact `text`; `cut_start`/`cut_end` say an edge was cut mid-stream, so a partial
        secret there (at least MIN_PARTIAL characters) is redacted too."""
        try:
            out = text
            if self._secret_re is not None:
                out = self._secret_re.sub(lambda m: self._marker(m.group(0)), out)
            for pattern, repl in _PATTERNS:
                out = pattern.sub(repl, out)
            if cut_end:
                out = self._cut_end(out)
            if cut_start:
                out = self._cut_start(out)
            return self._safety_net(out)
        except Exception:
            return WITHHELD

    def _cut_end(self, text: str) -> str:
        best: tuple[int, str] | None = None
        for value in self._values:
            for k in range(min(len(value) - 1, len(text)), MIN_PARTIAL - 1, -1):
                if text.endswith(value[:k]):
                    if best is None or k > best[0]:
                        best = (k, value)
                    break
        if best is None:
            return text
        return text[: -best[0]] + self._marker(best[1])

    def _cut_start(self, text: str) -> str:
        best: tuple[int, str] | None = None
        for value in self._values:
            for k in range(min(len(value) - 1, len(text)), MIN_PARTIAL - 1, -1):
                if text.startswith(value[-k:]):
                    if best is None or k > best[0]:
                        best = (k, value)
                    break
        if best is None:
            return text
        return self._marker(best[1]) + text[best[0] :]

    def _safety_net(self, text: str) -> str:
        # A marker (or a kept key name) could itself contain a secret value: remove until none
        # is left. Each pass shortens the text, so this ends.
        if self._secret_re is None:
            return text
        while self._secret_re.search(text):
            text = self._secret_re.sub("", text)
        return text
