"""Alert fingerprints: what stays the same when an alert recurs.

A learned trigger (ddoc/alerts/learned.py) remembers a responder's pick by the fingerprint of the
alert it was picked for. The fingerprint is the alert's source and alert name as they are, its
service and its title with the parts that change from one occurrence to the next replaced by
one placeholder `<*>`: numbers (with decimals, units, percentages, durations, sizes), UUIDs, hex
hashes and mixed ids, Kubernetes pod and node names, host names (FQDNs, `web-03`,
`ip-10-0-3-17.ec2.internal`), IPv4/IPv6 addresses with ports, timestamps, dates and times, URLs,
e-mail addresses and quoted values. Words are kept: two alerts that differ in a meaningful word
("replicas" / "pods") differ. docs/decisions/0007 says why.

The service is masked too (only its instance parts change: OpsGenie sends the host as the
entity, which becomes the service). Masking works on at most `MAX_TITLE_IN` characters of the
title and the masked title counts up to `MAX_PATTERN` characters, so a 100 KB title costs as
much as a long one; the digest is a SHA-256 of the parts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_TITLE_IN = 8192  # characters of a title that are masked
MAX_PATTERN = 1024  # masked characters that count (hashed)
MAX_SHOWN = 300  # masked characters stored for people to read
_VERSION = 1  # part of the digest: a change of the masking rules is a new version

# Tokens end at anything that is not a letter or digit ("_" and "-" separate too).
_B = r"(?<![a-z0-9])"
_E = r"(?![a-z0-9])"

_TLDS = (
    "com|net|org|io|dev|cloud|internal|local|localdomain|lan|corp|intra|intranet|svc|example|"
    "invalid|gov|edu|mil|info|biz|xyz|uk|de|eu|fr|nl|jp|au|ca|ch|se|dk|fi|es|pl|br|at|be|ie"
)
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_WEEKDAYS = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|urday)?"
_UNITS = (
    r"(?:%|[kmgtpe]i?b|[kmgtpe]i|[kmgtpe]|bytes?|b|ms|us|µs|ns|s|secs?|seconds?|mins?|minutes?"
    r"|m|h|hrs?|hours?|d|days?|w|wks?|weeks?|x|rps|qps|rpm|ops|hz|khz|mhz|ghz|°c|°f|c)"
)
_NUMBER = r"\d+(?:[.,]\d+)*"
# Identifiers that end in a digit and still mean something (never masked as host names).
_KEEP = frozenset(
    "ipv4 ipv6 http1 http2 http3 sha1 sha224 sha256 sha384 sha512 md5 ec2 utf8 utf16 utf32 "
    "base32 base64 x86 x64 arm64 amd64 aarch64 oauth1 oauth2 tls1 tlsv1 ssl2 ssl3 sslv3 "
    "python2 python3 py2 py3 gp2 gp3 io1 io2 st1 sc1 h264 h265 mp3 mp4 k8s p50 p90 p95 p99 "
    "p999 s3 v1 v2 v3 v4 v5 l4 l7 e2e i18n l10n log4j route53 1xx 2xx 3xx 4xx 5xx".split()
)
_VOWELS = frozenset("aeiou")
_MASK = "<*>"
# Kubernetes generates pod suffixes from this alphabet (no vowels, no 0 1 3).
_K8S_ALPHABET = frozenset("bcdfghjklmnpqrstvwxz2456789")


def _random_like(part: str, *, strict: bool) -> bool:
    """Whether a name part looks generated (a ReplicaSet hash or a pod suffix)."""
    has_digit = any(c.isdigit() for c in part)
    if strict:  # a lone suffix: random letters and digits, no vowels
        return has_digit and any(c.isalpha() for c in part) and not (_VOWELS & set(part))
    return has_digit or set(part) <= _K8S_ALPHABET


def _pod(match: re.Match[str]) -> str:
    if _random_like(match["hash"], strict=False) and _random_like(match["suffix"], strict=False):
        return _MASK
    return match[0]


def _daemon_pod(match: re.Match[str]) -> str:
    suffix = match["suffix"]
    if suffix not in _KEEP and _random_like(suffix, strict=True):
        return _MASK
    return match[0]


def _hyphenated(match: re.Match[str]) -> str:
    token = match[0]
    if any(c.isdigit() for c in token) and any(
        any(c.isdigit() for c in part) and part not in _KEEP for part in token.split("-")
    ):
        return _MASK
    return token


def _ipv6(match: re.Match[str]) -> str:
    """IPv6 addresses (with a port, as sloppy tools write them): a run of hex digits and
    colons with `::` or seven colons; a colon that ends a sentence stays."""
    run = match[0]
    address = run[:-1] if run.endswith(":") and not run.endswith("::") else run
    colons = address.count(":")
    if ("::" in address or colons >= 7) and colons >= 2 and any(c.isdigit() for c in address):
        return _MASK + run[len(address) :]
    return run


def _host_token(match: re.Match[str]) -> str:
    token = match[0]
    letters = len(token) - len(token.lstrip("abcdefghijklmnopqrstuvwxyz"))
    if token in _KEEP or token.rsplit("-", 1)[-1] in _KEEP or letters < 2 or len(token) > 63:
        return token
    return _MASK


def _mixed_id(match: re.Match[str]) -> str:
    token = match[0]
    if token in _KEEP:
        return token
    return _MASK


_Replacement = str | Callable[[re.Match[str]], str]


def _compile(rules: list[tuple[str, _Replacement]]) -> list[tuple[re.Pattern[str], _Replacement]]:
    return [(re.compile(pattern), replacement) for pattern, replacement in rules]


# One placeholder for every kind of value: a recurrence may carry an IP where the first one had
# a host name, or a hash that happens to be all digits, and must still look the same.
# Order matters: the widest shapes first (a URL holds a host, a host holds numbers).
_RULES = _compile(
    [
        (r"\b[a-z][a-z0-9+.-]{1,15}://[^\s<>\"'`]+", _MASK),
        (r"(?<![\w.+-])[\w.+-]++@[a-z0-9-]++(?:\.[a-z0-9-]++)+", _MASK),
        (r"(?<!\w)\"[^\"\n]{1,200}\"(?!\w)", _MASK),
        (r"(?<!\w)'[^'\n]{1,200}'(?!\w)", _MASK),
        (r"`[^`\n]{1,200}`", _MASK),
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", _MASK),
        (
            r"\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:\s?z|\s?utc|[+-]\d{2}:?\d{2})?)?" + _E,
            _MASK,
        ),
        (r"\b\d{1,4}/\d{1,2}/\d{1,4}\b", _MASK),
        (rf"\b{_WEEKDAYS},?\s+(?={_MONTHS}\s|\d)", ""),
        (rf"\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", _MASK),
        (rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}(?:,?\s+\d{{4}})?\b", _MASK),
        (
            r"\b\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:\s?[ap]m)?(?:\s?(?:z|utc|gmt)"
            r"|[+-]\d{2}:?\d{2})?\b",
            _MASK,
        ),
        (r"\b\d{1,3}(?:\.\d{1,3}){3}\b(?:/\d{1,2}\b)?", _MASK),
        (r"(?<![\w:])[0-9a-f:]*:[0-9a-f:]*:[0-9a-f:]*+(?:/\d{1,3})?(?!\w)", _ipv6),
        (r"\[<\*>\]", _MASK),  # [2001:db8::1]:8080
        # Host names under a well-known suffix (labels taken possessively: no backtracking).
        (
            rf"(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)++(?:{_TLDS})(?![\w.-])",
            _MASK,
        ),
        (r"\b(?:us|eu|ap|sa|ca|me|af|il|cn)-[a-z]+-\d[a-z]?\b", _MASK),  # cloud regions, zones
        (
            r"(?<![\w.-])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-(?P<hash>[a-z0-9]{6,10})"
            r"-(?P<suffix>[a-z0-9]{5})(?![\w-])",
            _pod,
        ),
        (
            r"(?<![\w.-])[a-z][a-z0-9]*(?:-[a-z0-9]+)*-(?P<suffix>[a-z0-9]{5})(?![\w-])",
            _daemon_pod,
        ),
        # Cloud resource ids: i-0abc…, vol-…, sg-…
        (
            r"\b(?:i|vol|snap|ami|sg|subnet|vpc|eni|igw|nat|rtb|acl|lt|eipalloc|r)"
            r"-(?=[0-9a-f]*\d)[0-9a-f]{5,17}\b",
            _MASK,
        ),
        # Any other hyphenated name with a number in it: gke-prod-pool-1-f9136af9-rer9,
        # nightly-backup-28391 (a part that means something, like p99 or 5xx, is kept).
        (r"(?<![\w.-])[a-z0-9]+(?:-[a-z0-9]+)+(?![\w-])", _hyphenated),
        (_B + r"0x[0-9a-f]+" + _E, _MASK),
        (_B + r"(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}" + _E, _MASK),
        (_B + r"(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{6,}" + _E, _mixed_id),
        # Host-like names that end in a number: web-03, db1, kafka-0, ip-10-0-3-17.
        (r"(?<![a-z0-9-])[a-z][a-z0-9-]*\d(?![a-z0-9-])", _host_token),
        (_B + _NUMBER + rf"(?:\s?{_UNITS}(?:{_NUMBER}{_UNITS})*)?" + _E, _MASK),
    ]
)
# "<*>, <*> and <*>" or "<*> <*>" (a date and a time) is as much one value as "<*>".
_RUNS = re.compile(r"<\*>(?:(?:\s*(?:[,;/|&:.-]|\band\b|\bor\b)\s*|\s+)<\*>)+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_FUNCTION_WORDS = frozenset(
    "at on in of to for from by is are was be the an and or with as via per than since until "
    "after before into over under".split()
)


def mask(text: str) -> str:
    """`text` lower-cased, with its variable parts replaced by `<*>`."""
    masked = text[:MAX_TITLE_IN].lower()
    for pattern, replacement in _RULES:
        masked = pattern.sub(replacement, masked)
    masked = _RUNS.sub(_MASK, masked)
    return _SPACES.sub(" ", masked).strip(" .,;:!-")


@dataclass(frozen=True)
class Fingerprint:
    source: str
    alert_name: str | None
    service: str | None  # masked
    title: str  # masked, at most MAX_PATTERN characters
    digest: str

    @property
    def specific(self) -> bool:
        """Whether it says enough to be learned: an alert name, a service or a word in the title
        (a title of values alone, "10.0.3.17", would capture every alert like it)."""
        words = _WORD.findall(self.title.replace(_MASK, " "))
        return bool(self.alert_name or self.service or set(words) - _FUNCTION_WORDS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "alert_name": self.alert_name,
            "service": self.service,
            "title": self.title,
            "digest": self.digest,
        }


def build(*, source: str, alert_name: str | None, service: str | None, title: str) -> Fingerprint:
    masked_service = mask(service)[:200] if service else None
    masked_title = mask(title)[:MAX_PATTERN]
    alert_name = alert_name[:500] if alert_name else None
    digest = hashlib.sha256(
        json.dumps(
            [_VERSION, source, alert_name, masked_service, masked_title], separators=(",", ":")
        ).encode()
    ).hexdigest()
    return Fingerprint(source, alert_name, masked_service or None, masked_title, digest)


def of_alert(alert: Any) -> Fingerprint:
    """The fingerprint of a `NormalizedAlert`."""
    return build(
        source=alert.source, alert_name=alert.alert_name, service=alert.service, title=alert.title
    )


def from_dict(data: Mapping[str, Any]) -> Fingerprint | None:
    """A fingerprint stored with an incident (None when it is missing or malformed)."""
    try:
        return Fingerprint(
            source=str(data["source"]),
            alert_name=data.get("alert_name"),
            service=data.get("service"),
            title=str(data["title"]),
            digest=str(data["digest"]),
        )
    except (KeyError, TypeError):
        return None
