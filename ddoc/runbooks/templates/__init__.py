"""A vetted library of runbook templates for the alerts every Prometheus setup has.

Each template is a markdown runbook in this package (`<name>.md`) with front-matter: `title`
and `alerts`, the alert names it is written for, spelled as the community rule sets spell them
(kube-prometheus, the node-exporter mixin, awesome-prometheus-alerts). Commands take their
values from the alert's standard labels (`{{namespace}}`, `{{pod}}`, `{{instance}}`, ...).

The files are package data, read with `importlib.resources`, so the library works the same from
a source tree and from an installed wheel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import yaml

from ddoc.platform.errors import NotFound

_SUFFIX = ".md"


class TemplateNotFound(NotFound):
    """No template has that name."""


@dataclass(frozen=True)
class Template:
    name: str  # the file's stem: `kube-pod-crash-looping`
    title: str
    alerts: list[str] = field(default_factory=list)
    content: str = ""  # the whole markdown document, front-matter included


def templates() -> list[Template]:
    """Every template, sorted by name."""
    return [replace(t, alerts=list(t.alerts)) for t in _load()]


def template(name: str) -> Template:
    """The template called `name`; raises TemplateNotFound naming the ones there are."""
    for t in templates():
        if t.name == name:
            return t
    available = ", ".join(t.name for t in _load())
    raise TemplateNotFound(f"no runbook template named {name!r}; the templates are: {available}")


def for_alert(alert_name: str) -> list[Template]:
    """The templates written for an alert of that name (compared without regard to case)."""
    wanted = alert_name.strip().casefold()
    return [t for t in templates() if any(a.casefold() == wanted for a in t.alerts)]


@functools.cache
def _load() -> tuple[Template, ...]:
    found = []
    for entry in resources.files(__name__).iterdir():
        if entry.is_file() and entry.name.endswith(_SUFFIX):
            name = entry.name[: -len(_SUFFIX)]
            found.append(_template(name, entry.read_text(encoding="utf-8")))
    return tuple(sorted(found, key=lambda t: t.name))


def _template(name: str, content: str) -> Template:
    meta = _front_matter(name, content)
    title = meta.get("title")
    alerts = meta.get("alerts")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"runbook template {name!r} has no title in its front-matter")
    if not isinstance(alerts, list) or not alerts or not all(isinstance(a, str) for a in alerts):
        raise ValueError(f"runbook template {name!r} lists no alerts in its front-matter")
    return Template(name=name, title=title.strip(), alerts=list(alerts), content=content)


def _front_matter(name: str, content: str) -> dict[str, Any]:
    lines = content.split("\n")
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"runbook template {name!r} does not start with front-matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ValueError(f"runbook template {name!r} has unterminated front-matter") from None
    data = yaml.safe_load("\n".join(lines[1:end]))
    if not isinstance(data, dict):
        raise ValueError(f"runbook template {name!r} has front-matter that is not a mapping")
    return {str(k): v for k, v in data.items()}


__all__ = ["Template", "TemplateNotFound", "for_alert", "template", "templates"]
