"""Runbook URLs: an alert that names its runbook (`runbook_url`) is matched to the runbook that
URL shows, as an explicit match (ddoc/alerts/matching.py).

A runbook knows the URLs that show it: the page URL of a Confluence or Notion import, the git
web URL of its file (a base given per import), and `urls:` in its front-matter. An alert's URL
resolves to a runbook when it is one of those, when it is the Confluence/Notion page a runbook
was imported from (by page id, whatever the URL's form), or through one of the tenant's rewrite
rules (`runbook_url_rules` in its settings): a URL pattern with `{placeholders}` → a source path
(`{Name}`: the captured value with its first letter upper-cased), compared case-insensitively
with the runbooks' source paths.

URLs compare normalised: scheme, `www.`, default port, fragment and trailing slash dropped,
percent-decoded, case-insensitive; a query counts only when the runbook's own URL has one
(Confluence's `viewpage.action?pageId=…`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session

from ddoc.platform import tenancy
from ddoc.runbooks.urls import MAX_URL, alert_keys, is_url, url_parts

if TYPE_CHECKING:
    from ddoc.alerts.sources import NormalizedAlert

SETTINGS_KEY = "runbook_url_rules"
MAX_RULES = 100
_MAX_ALERT_URLS = 5
_MAX_NODES = 5000  # of an alert body searched for runbook URLs
_MAX_DEPTH = 6
# Field names that carry a runbook's URL, compared without case, "_", "-" and spaces.
_URL_FIELDS = frozenset(
    {"runbookurl", "runbookurls", "runbook", "runbooks", "runbooklink", "runbookuri", "playbook"}
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONNECTOR = re.compile(r"^(?:git|confluence|notion):[^:]*:")
_CONFLUENCE_PAGE = re.compile(r"/pages/(\d+)(?:/|$)")
_CONFLUENCE_QUERY = re.compile(r"(?:^|&)pageid=(\d+)(?:&|$)")
_NOTION_ID = re.compile(r"([0-9a-f]{32})$")


class RulesError(ValueError):
    """A rewrite rule is malformed; the message says which and why."""


def alert_urls(alert: NormalizedAlert) -> list[str]:
    """The runbook URLs an alert carries: `runbook_url` (and the like) in its annotations,
    labels, extra fields or anywhere in its body (PagerDuty and OpsGenie details)."""
    found: list[str] = []
    budget = [_MAX_NODES]

    def take(value: Any) -> None:
        for item in value[:10] if isinstance(value, list) else [value]:
            if isinstance(item, str) and is_url(item) and item.strip() not in found:
                found.append(item.strip())

    def walk(node: Mapping[str, Any], depth: int) -> None:
        for key, value in node.items():
            budget[0] -= 1
            if budget[0] < 0:
                return
            name = re.sub(r"[\s_-]", "", str(key)).lower()
            if name in _URL_FIELDS:
                take(value)
            elif depth < _MAX_DEPTH and isinstance(value, dict):
                walk(value, depth + 1)
            elif depth < _MAX_DEPTH and isinstance(value, list):
                for item in value[:50]:
                    if isinstance(item, dict):
                        walk(item, depth + 1)

    for mapping in (alert.annotations, alert.labels, alert.extra, alert.raw):
        if isinstance(mapping, dict):
            walk(mapping, 0)
    return found[:_MAX_ALERT_URLS]


# -- rewrite rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    pattern: str
    path: str
    regex: re.Pattern[str] = field(compare=False)

    def apply(self, url: str) -> str | None:
        """The source path this rule makes of `url`, or None when it does not match."""
        subject = _rule_subject(url)
        match = self.regex.fullmatch(subject) if subject is not None else None
        if match is None:
            return None
        values = {name: value for name, value in match.groupdict().items()}

        def fill(found: re.Match[str]) -> str:
            name = found[1]
            value = values[name.lower()]
            return value[:1].upper() + value[1:] if name[0].isupper() else value

        return _PLACEHOLDER.sub(fill, self.path)


def _rule_subject(url: str) -> str | None:
    parts = url_parts(url)
    if parts is None:
        return None
    host, path, _ = parts
    return f"{host}{path}"


def _compile_rule(pattern: str, path: str) -> Rule:
    bare = _SCHEME.sub("", pattern.strip()).split("#", 1)[0].split("?", 1)[0]
    bare = bare.removeprefix("www.").rstrip("/")
    names: list[str] = []
    regex = ""
    position = 0
    for found in _PLACEHOLDER.finditer(bare):
        regex += re.escape(bare[position : found.start()])
        name = found[1].lower()
        if name in names:
            raise RulesError(f"pattern {pattern!r} names {{{found[1]}}} twice")
        names.append(name)
        regex += f"(?P<{name}>[^/]+)"
        position = found.end()
    regex += re.escape(bare[position:])
    if not bare or bare.startswith("{"):
        raise RulesError(f"pattern {pattern!r} must start with a host name")
    unknown = [n for n in _PLACEHOLDER.findall(path) if n.lower() not in names]
    if unknown:
        raise RulesError(f"path {path!r} uses {{{unknown[0]}}}, which the pattern does not capture")
    if "{" in _PLACEHOLDER.sub("", path) or "}" in _PLACEHOLDER.sub("", path):
        raise RulesError(f"path {path!r}: placeholders are {{name}}, letters, digits and _")
    return Rule(pattern=pattern, path=path, regex=re.compile(regex, re.IGNORECASE))


def validate_rules(value: Any) -> list[dict[str, str]]:
    """The rules as stored, or RulesError: a list of {"pattern", "path"}."""
    if not isinstance(value, list):
        raise RulesError('a list of {"pattern": …, "path": …} is expected')
    if len(value) > MAX_RULES:
        raise RulesError(f"at most {MAX_RULES} rules")
    rules = []
    for n, rule in enumerate(value, start=1):
        if not isinstance(rule, dict) or set(rule) != {"pattern", "path"}:
            raise RulesError(f'rule {n}: exactly "pattern" and "path" are expected')
        pattern, path = rule["pattern"], rule["path"]
        if not isinstance(pattern, str) or not isinstance(path, str):
            raise RulesError(f"rule {n}: pattern and path are strings")
        if not 0 < len(pattern) <= MAX_URL or not 0 < len(path) <= 1024:
            raise RulesError(f"rule {n}: pattern (≤ {MAX_URL}) and path (≤ 1024) are needed")
        try:
            _compile_rule(pattern, path)
        except re.error as err:  # pragma: no cover - re.escape keeps literals literal
            raise RulesError(f"rule {n}: {err}") from None
        except RulesError as err:
            raise RulesError(f"rule {n}: {err}") from None
        rules.append({"pattern": pattern, "path": path})
    return rules


@functools.lru_cache(maxsize=256)
def _compiled(rules_json: str) -> tuple[Rule, ...]:
    compiled = []
    for rule in json.loads(rules_json):
        try:
            compiled.append(_compile_rule(rule["pattern"], rule["path"]))
        except (RulesError, KeyError, TypeError, re.error):
            continue  # validated when set; a rule that no longer compiles is skipped
    return tuple(compiled)


def tenant_rules(settings: Mapping[str, Any]) -> tuple[Rule, ...]:
    raw = settings.get(SETTINGS_KEY)
    if not isinstance(raw, list) or not raw:
        return ()
    return _compiled(json.dumps(raw, sort_keys=True))


def path_key(path: str) -> str:
    """A source path compared case-insensitively: `/` separators, no connector prefix
    (`git:<repo>:`), no leading `./` or `/`."""
    key = _CONNECTOR.sub("", path.replace("\\", "/"))
    key = re.sub(r"/{2,}", "/", key)
    while key.startswith("./"):
        key = key[2:]
    return key.lstrip("/").lower()


def _same_path(source: str, target: str) -> bool:
    """Exactly, or one is the other below a folder (a repository imported from a subfolder, or
    a rule written from the repository's root); never by a bare file name."""
    if source == target:
        return True
    shorter, longer = sorted((source, target), key=len)
    return "/" in shorter and longer.endswith("/" + shorter)


# -- resolving an alert's URLs --------------------------------------------------------------


@dataclass
class Hit:
    runbook_id: str
    title: str
    source_path: str | None
    services: list[str]
    alert_names: list[str]
    reasons: list[str]


_COLUMNS = "id, title, source_path, services, alert_names"


def resolve(session: Session, *, tenant_id: str, alert: NormalizedAlert) -> list[Hit]:
    """The runbooks the alert's runbook URLs show, each with why."""
    urls = alert_urls(alert)
    if not urls:
        return []
    hits: dict[str, Hit] = {}

    def add(rows: Iterable[Any], reason: str) -> None:
        for row in rows:
            hit = hits.setdefault(
                row.id,
                Hit(row.id, row.title, row.source_path, row.services, row.alert_names, []),
            )
            if reason not in hit.reasons:
                hit.reasons.append(reason)

    rules = tenant_rules(tenancy.settings(session, tenant_id))
    for url in urls:
        shown = url if len(url) <= 200 else url[:199] + "…"
        keys = alert_keys(url)
        if keys:
            add(
                session.execute(
                    text(
                        f"SELECT {_COLUMNS} FROM runbooks WHERE tenant_id = :tenant"
                        " AND archived_at IS NULL AND NOT draft"
                        " AND url_keys && CAST(:keys AS text[])"
                    ),
                    {"tenant": tenant_id, "keys": keys},
                ).all(),
                f"the alert's runbook_url {shown} is a URL of this runbook",
            )
        add(*_imported_page(session, tenant_id, url, shown))
        for rule in rules:
            path = rule.apply(url)
            if path:
                add(
                    _by_path(session, tenant_id, path),
                    f"the alert's runbook_url {shown} maps to {path} (rule {rule.pattern})",
                )
    return sorted(hits.values(), key=lambda h: (h.title, h.runbook_id))


def _imported_page(session: Session, tenant_id: str, url: str, shown: str) -> tuple[list[Any], str]:
    """Runbooks imported from the Confluence or Notion page the URL shows (by page id)."""
    parts = url_parts(url)
    if parts is None:
        return [], ""
    host, path, query = parts
    page = _CONFLUENCE_PAGE.search(path) or _CONFLUENCE_QUERY.search(query.lower())
    if page is not None:
        rows = session.execute(
            text(
                f"SELECT {_COLUMNS} FROM runbooks WHERE tenant_id = :tenant"
                " AND archived_at IS NULL AND NOT draft AND source_path LIKE 'confluence:%'"
                " AND split_part(source_path, ':', 3) = :page"
            ),
            {"tenant": tenant_id, "page": page[1]},
        ).all()
        return list(rows), f"the alert's runbook_url {shown} is the Confluence page it came from"
    if host.split(":")[0].endswith(("notion.so", "notion.site")):
        notion = _NOTION_ID.search(path.lower().replace("-", ""))
        if notion is not None:
            rows = session.execute(
                text(
                    f"SELECT {_COLUMNS} FROM runbooks WHERE tenant_id = :tenant"
                    " AND archived_at IS NULL AND NOT draft AND source_path LIKE 'notion:%'"
                    " AND replace(source_path, '-', '') = :path"
                ),
                {"tenant": tenant_id, "path": f"notion:{notion[1]}"},
            ).all()
            return list(rows), f"the alert's runbook_url {shown} is the Notion page it came from"
    return [], ""


def _by_path(session: Session, tenant_id: str, path: str) -> list[Any]:
    target = path_key(path)
    if not target:
        return []
    name = target.rsplit("/", 1)[-1]
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = session.execute(
        text(
            f"SELECT {_COLUMNS} FROM runbooks"
            " WHERE tenant_id = :tenant AND archived_at IS NULL AND NOT draft"
            " AND lower(replace(source_path, '\\', '/')) LIKE :suffix ESCAPE '\\'"
        ),
        {"tenant": tenant_id, "suffix": f"%{escaped}"},
    ).all()
    same = [r for r in rows if r.source_path and _same_path(path_key(r.source_path), target)]
    exact = [r for r in same if path_key(r.source_path) == target]
    return exact or same
