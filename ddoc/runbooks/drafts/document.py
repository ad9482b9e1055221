"""A draft runbook, and the markdown document it is stored as.

Grounding: a draft's command is the input's command, verbatim, except that a concrete value may
be replaced by a variable (`{{node}}` for `node-7`). Rendering each command with its variables'
example values gives back the input's command exactly; `ungrounded` lists those that do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml


@dataclass
class DraftVariable:
    name: str  # written {{name}} in commands
    example: str  # the concrete value the input had
    label: str | None = None  # the linked incident's alert label that carries it


@dataclass
class DraftStep:
    text: str  # what the step does, in words
    command: str | None = None  # verbatim, with {{variables}} in place of their examples
    expect: str | None = None  # the output that led to the next step ("you should see")
    rollback: str | None = None  # a known way back, verbatim from the input
    at: str | None = None  # when it was done, as the input says (ISO 8601, or "14:02 UTC")


@dataclass
class Draft:
    title: str
    kind: str  # session | history | cast | script | postmortem | execution
    steps: list[DraftStep]
    notes: list[str] = field(default_factory=list)  # kept for the reviewer, never steps
    variables: list[DraftVariable] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # what was left out, and why

    def render(self, command: str) -> str:
        """The command with each variable's example value: what the input said."""
        for variable in self.variables:
            command = command.replace("{{" + variable.name + "}}", variable.example)
        return command


_KIND_WORDS = {
    "session": "a recorded terminal session",
    "cast": "an asciinema recording",
    "script": "a `script` recording",
    "history": "a shell history",
    "postmortem": "a postmortem",
    "execution": "an execution",
}


def _fence(text: str, info: str) -> list[str]:
    """A fenced block that no backtick run inside `text` can close."""
    ticks = "`" * max(3, _longest_backticks(text) + 1)
    return [f"{ticks}{info}", *text.split("\n"), ticks]


def _longest_backticks(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def _indent(lines: list[str]) -> list[str]:
    return [f"   {line}" if line else "" for line in lines]


def to_markdown(draft: Draft) -> str:
    """The draft as a runbook document: front-matter (title, triggers), the steps (each command
    in a fenced block, the output it showed as a `text` block), variables, notes."""
    front: dict[str, object] = {"title": draft.title}
    if draft.alerts:
        front["alerts"] = list(draft.alerts)
    if draft.services:
        front["services"] = list(draft.services)
    front["draft"] = {"from": draft.kind}
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---"]
    lines += [f"# {draft.title}", ""]
    lines += [
        f"Drafted from {_KIND_WORDS.get(draft.kind, draft.kind)}: every command below is one that "
        "was run, as it was typed. Review each step (and its risk) before publishing.",
        "",
        "## Steps",
        "",
    ]
    for number, step in enumerate(draft.steps, 1):
        when = f" ({step.at})" if step.at else ""
        lines.append(f"{number}. {step.text.strip() or 'Run'}{when}")
        if step.command is not None:
            lines += ["", *_indent(_fence(step.command, "shell"))]
        if step.expect:
            lines += ["", "   You should see:", "", *_indent(_fence(step.expect, "text"))]
        if step.rollback:
            lines += ["", "   Rollback:", "", *_indent(_fence(step.rollback, "shell"))]
        lines.append("")
    if draft.variables:
        lines += ["## Variables", ""]
        for variable in draft.variables:
            source = f" (alert label `{variable.label}`)" if variable.label else ""
            lines.append(f"- `{{{{{variable.name}}}}}`: e.g. `{variable.example}`{source}")
        lines.append("")
    if draft.notes:
        lines += ["## Action items", ""]
        lines += [f"- {note.strip()}" for note in draft.notes if note.strip()]
        lines.append("")
    if draft.dropped:
        lines += ["## Notes for reviewers", ""]
        lines += [f"- {why}" for why in draft.dropped]
        lines.append("")
    return "\n".join(lines)


def ungrounded(draft: Draft, source: Iterable[str]) -> list[str]:
    """The draft's commands (and rollbacks) that, rendered with their examples, are not one of
    the `source` commands verbatim (empty: the draft is grounded)."""
    known = set(source)
    found = []
    for step in draft.steps:
        for command in (step.command, step.rollback):
            if command is not None and draft.render(command) not in known:
                found.append(command)
    return found
