"""Parallel step groups: which consecutive steps run concurrently (``Step.parallel``).

Two sources, both applied by ``mark_parallel`` once every step exists and is rated:

- front-matter ``parallel:``, a list of groups: ``[2, 3]`` or ``{steps: [2, 3], after: [1]}``,
  each step named by its number (1-based position in the parsed steps) or its id (``s2``). It
  is the author's word, so state-changing (yellow, red) steps may be grouped there. Any problem
  is a warning and that group's steps stay in order; ``parallel: false`` turns groups off.
- prose: a command step whose own words say it runs alongside the one before ("Meanwhile, …",
  "in parallel", "at the same time", "while that runs", …) joins that step's group. Only
  read-only (green) steps are grouped this way.

Never grouped: decision steps, a step right before a decision (the decision reads its output),
steps without a command, and a step a decision's branch jumps to unless it starts the group.
Groups are consecutive runs of steps; ids are ``p1``, ``p2``, ... in document order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise
from typing import Any

from ddoc.runbooks.model import RiskClass, Step, StepKind

logger = logging.getLogger(__name__)

# A step "runs alongside the previous one" when its own words say so: a marker that opens a
# sentence or clause ("Meanwhile, …", "…, and at the same time check …", "While that runs, …"),
# or one of the manner words that ends it ("Check `x` in parallel.", "… at the same time as the
# previous step"). Elsewhere the words describe something else ("vacuumdb can run in parallel,
# with options", "lookups may fail meanwhile", SQL's CONCURRENTLY); code spans never count.
_OPENING = (
    r"meanwhile|in\s+the\s+mean\s*time|in\s+parallel|at\s+the\s+same\s+time|simultaneously|"
    r"concurrently|while\s+(?:that|this|it)\s*(?:runs|is\s+running|['\u2019]s\s+running)"
)
_CLOSING = r"in\s+parallel|at\s+the\s+same\s+time|simultaneously|concurrently"
_MARKERS = (
    re.compile(
        r"(?:^[^\w`]*(?:\d+[.)]\s*)?|[.;:!?,(\u2013\u2014]\s*|\s-\s+)"
        rf"(?:(?:and|then|also|now)\s+)*[*_]*(?:{_OPENING})\b",
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(
        rf"(?<![-/#_.])\b(?:{_CLOSING})"  # not inside a URL or a name
        r"(?:\s+(?:with|as|alongside|to)\s+(?:the\s+)?"
        r"(?:previous|last|prior|above|preceding|step|that|this|it)\b[^.;!?)\n]*)?"
        r"\s*(?:[.!;)]|$)",
        re.IGNORECASE | re.MULTILINE,
    ),
)
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)  # fenced blocks, code spans


@dataclass
class _Group:
    number: int  # its position in front-matter (1-based), for messages
    members: list[int]  # step indexes, consecutive, ascending
    after: list[int] = field(default_factory=list)  # step indexes it must wait for


def mark_parallel(steps: list[Step], front: dict[str, Any], warnings: list[str]) -> None:
    """Set ``Step.parallel`` on every step (None: in order) from front-matter ``parallel:`` and
    the steps' own words. Never raises; every problem is appended to ``warnings`` (each starts
    with ``parallel:``) and leaves the steps concerned in order."""
    for step in steps:
        step.parallel = None
    try:
        groups = _groups(steps, front, warnings)
    except Exception:  # a bug here must not cost the user the parse: all steps in order
        logger.exception("parallel groups failed")
        warnings.append("parallel: the parallel groups could not be worked out; steps run in order")
        return
    for number, members in enumerate(sorted(groups, key=min), start=1):
        for i in members:
            steps[i].parallel = f"p{number}"


def _groups(steps: list[Step], front: dict[str, Any], warnings: list[str]) -> list[list[int]]:
    raw = front.get("parallel")
    if raw is False:
        return []  # the author turned groups off, prose markers included
    groups: list[list[int]] = []
    if raw is not None:
        groups = [g.members for g in _front_groups(raw, steps, warnings)]
    claimed = {i for members in groups for i in members}
    return groups + _prose_groups(steps, claimed, warnings)


# -- what may be grouped -------------------------------------------------------------------------


def _branch_targets(steps: list[Step]) -> set[str]:
    return {b.goto for s in steps for b in s.branches if b.goto is not None}


def _why_not(steps: list[Step], i: int) -> str | None:
    """Why step ``i`` can never be in a group, or None when it can."""
    step = steps[i]
    if step.kind == StepKind.DECISION:
        return "it is a decision"
    if step.kind != StepKind.COMMAND or step.command is None:
        return "it has no command"
    following = steps[i + 1] if i + 1 < len(steps) else None
    if following is not None and following.kind == StepKind.DECISION:
        return f"decision {following.id} reads its output"
    return None


# -- front-matter --------------------------------------------------------------------------------


def _ref(value: Any, ids: dict[str, int]) -> int | None:
    """The index of the step a reference names: its number (1-based) or its id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            return ids.get(text)
        value = int(text)
    if isinstance(value, int) and 1 <= value <= len(ids):
        return value - 1
    return None


def _refs(
    raw: Any, steps: list[Step], ids: dict[str, int], what: str, warnings: list[str]
) -> tuple[list[int] | None, list[str]]:
    """The indexes a list of references names, in order, without repeats; None (warned) when
    it is not a list of known references."""
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        raw = [raw]  # `after: 1` is `after: [1]`
    if not isinstance(raw, list):
        warnings.append(
            f"parallel: {what} should be a list of step numbers or ids, not "
            f"{_shown(raw)}; those steps run in order"
        )
        return None, []
    out: list[int] = []
    unknown: list[str] = []
    for value in raw:
        index = _ref(value, ids)
        if index is None:
            unknown.append(_shown(value))
        elif index not in out:
            out.append(index)
    if unknown:
        names = ("step " if len(unknown) == 1 else "steps ") + ", ".join(unknown)
        warnings.append(
            f"parallel: {what} names unknown {names} (the runbook has steps 1-{len(steps)}, "
            f"s1-s{len(steps)}); those steps run in order"
            if steps
            else f"parallel: {what} names unknown {names} (the runbook has no steps)"
        )
        return None, []
    return out, [steps[i].id for i in out]


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _front_groups(raw: Any, steps: list[Step], warnings: list[str]) -> list[_Group]:
    if not isinstance(raw, list):
        warnings.append(
            "parallel: front-matter `parallel` should be a list of groups such as [[2, 3]] or "
            f"[{{steps: [2, 3], after: [1]}}], not {_shown(raw)}; ignored, steps run in order"
        )
        return []
    if raw and all(_scalar(entry) for entry in raw):
        warnings.append(
            f"parallel: front-matter `parallel` is a list of steps ({_shown(raw)}), not of "
            "groups; one group is written `parallel: [[2, 3]]`; ignored, steps run in order"
        )
        return []
    targets = _branch_targets(steps)
    ids = {s.id: i for i, s in reversed(list(enumerate(steps)))}  # the first of a repeated id
    claimed: dict[int, int] = {}  # step index -> the number of the group holding it
    groups: list[_Group] = []
    for number, entry in enumerate(raw, start=1):
        what = f"group {number}"
        after_raw: Any = None
        if isinstance(entry, dict):
            extra = sorted(str(k) for k in entry if k not in ("steps", "after"))
            if extra:
                warnings.append(
                    f"parallel: {what} has unknown key(s) {', '.join(extra)} "
                    "(only `steps` and `after`); they are ignored"
                )
            if "steps" not in entry:
                warnings.append(
                    f"parallel: {what} has no `steps` list; it is ignored, its steps run in order"
                )
                continue
            members_raw, after_raw = entry["steps"], entry.get("after")
        elif isinstance(entry, list):
            members_raw = entry
        else:
            warnings.append(
                f"parallel: {what} is {_shown(entry)}, not a list of steps or a mapping with "
                "`steps`; it is ignored, its steps run in order"
            )
            continue
        if not isinstance(members_raw, list):
            warnings.append(
                f"parallel: {what}'s `steps` should be a list of step numbers or ids, not "
                f"{_shown(members_raw)}; it is ignored, its steps run in order"
            )
            continue
        members, names = _refs(members_raw, steps, ids, what, warnings)
        if members is None:
            continue
        what = f"group {number} ({', '.join(names)})" if names else what
        if len(members) < 2:
            warnings.append(
                f"parallel: {what} has fewer than 2 steps; nothing runs alongside it, it runs "
                "in order"
            )
            continue
        taken = [i for i in members if i in claimed]
        if taken:
            where = ", ".join(f"{steps[i].id} (group {claimed[i]})" for i in taken)
            warnings.append(
                f"parallel: {what} repeats a step of an earlier group: {where}; a step is in one "
                "group at most, so this group is ignored and its steps run in order"
            )
            continue
        members.sort()
        if not _consecutive(members):
            warnings.append(
                f"parallel: {what} is not consecutive steps; only steps next to each other can "
                "run together, so they run in order"
            )
            continue
        kept: list[int] = []
        for i in members:
            reason = _why_not(steps, i)
            if reason is None and kept and steps[i].id in targets:
                reason = "a decision's branch leads to it, so it can only start a group"
            if reason is not None:
                warnings.append(
                    f"parallel: {what}: {steps[i].id} is left out of the group ({reason}); "
                    "it runs in order"
                )
            else:
                kept.append(i)
        if len(kept) != len(members) and (len(kept) < 2 or not _consecutive(kept)):
            warnings.append(
                f"parallel: {what}: without the steps left out, it is not 2 or more consecutive "
                "steps; its steps run in order"
            )
            continue
        after: list[int] = []
        if after_raw is not None:
            resolved, _ = _refs(after_raw, steps, ids, f"{what} `after`", warnings)
            if resolved is None:
                continue
            after = resolved
        for i in kept:
            claimed[i] = number
        groups.append(_Group(number, kept, after))
    return _without_cycles(groups, steps, warnings)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _consecutive(members: list[int]) -> bool:
    return members == list(range(members[0], members[0] + len(members)))


def _without_cycles(groups: list[_Group], steps: list[Step], warnings: list[str]) -> list[_Group]:
    """Drop (with a warning) the groups whose `after` cannot hold: the steps run in document
    order, a group together, so a group waits for every step before it; waiting `after` a step
    of its own or a later one is a cycle."""
    groups = list(groups)
    while True:
        unit: dict[int, Hashable] = {}
        for g in groups:
            for i in g.members:
                unit[i] = ("group", g.number)
        order: list[Hashable] = []
        for i in range(len(steps)):
            node = unit.get(i, ("step", i))
            if not order or order[-1] != node:
                order.append(node)
        graph: dict[Hashable, set[Hashable]] = {node: set() for node in order}
        implicit: set[tuple[Hashable, Hashable]] = set()
        for before, node in pairwise(order):
            graph[node].add(before)  # the implicit order: each waits for the one before it
            implicit.add((before, node))
        declared: set[tuple[Hashable, Hashable]] = set()
        for g in groups:
            node = ("group", g.number)
            for i in g.after:
                graph[node].add(unit.get(i, ("step", i)))
                declared.add((unit.get(i, ("step", i)), node))
        try:
            TopologicalSorter(graph).prepare()
            return groups
        except CycleError as exc:
            # The document order alone has no cycle: every cycle holds an `after` of a group
            # naming a step of its own or a later one, and each such group closes a cycle of its
            # own. All of them are dropped at once (one pass, however many there are).
            involved = [g for g in groups if any(i >= g.members[0] for i in g.after)]
            if not involved:  # cannot happen; fall back on the edges of the cycle found
                # (each node of it is an immediate predecessor of the next: graphlib's form)
                cycle: list[Hashable] = list(exc.args[1])
                heads = {head for _, head in set(pairwise(cycle)) & (declared - implicit)}
                involved = [g for g in groups if ("group", g.number) in heads] or groups
            for g in involved:
                ids = ", ".join(steps[i].id for i in g.members)
                waits = ", ".join(steps[i].id for i in g.after)
                warnings.append(
                    f"parallel: group {g.number} ({ids}) runs after {waits}, which is in the same "
                    "group or comes later: a dependency cycle; those steps run in order"
                )
            groups = [g for g in groups if g not in involved]


# -- prose ---------------------------------------------------------------------------------------


def _own_words(steps: list[Step]) -> list[str]:
    """Each step's own part of its text, code spans blanked out. Steps cut from one sentence
    share its text ("Start with `a` and, at the same time, check `b`"): each owns the words up
    to the end of its command, the last one the rest."""
    out: list[str] = []
    i = 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and steps[j + 1].text == steps[i].text:
            j += 1
        text, start = steps[i].text, 0
        # Same length as the text, so the commands' positions still hold.
        words = _CODE.sub(lambda m: " " * len(m.group(0)), text)
        for k in range(i, j + 1):
            if k == j:
                out.append(words[start:])
                break
            command = (steps[k].command or "").strip()
            first = command.splitlines()[0] if command else ""
            found = text.find(first, start) if first else -1
            end = found + len(first) if found >= 0 else start
            out.append(words[start:end])
            start = end
        i = j + 1
    return out


def _says_alongside(words: str) -> bool:
    return any(marker.search(words) for marker in _MARKERS)


def _prose_groups(steps: list[Step], claimed: set[int], warnings: list[str]) -> list[list[int]]:
    words = _own_words(steps)
    targets = _branch_targets(steps)
    groups: list[list[int]] = []
    group_of: dict[int, list[int]] = {}
    for i in range(1, len(steps)):
        step, before = steps[i], steps[i - 1]
        if step.kind != StepKind.COMMAND or step.command is None or i in claimed:
            continue  # no command to run alongside; front-matter decides for its own groups
        if not _says_alongside(words[i]):
            continue
        said = f"parallel: {step.id} says it runs alongside {before.id}, but"
        reason: str | None = None
        if step.risk != RiskClass.GREEN:
            level = step.risk.value if step.risk is not None else "unrated"
            reason = (
                f"it changes state ({level}); it keeps its order (front-matter `parallel:` "
                "can group it)"
            )
        elif (why := _why_not(steps, i)) is not None:
            reason = f"{why}; it keeps its order"
        elif step.id in targets:
            reason = "a decision's branch leads to it; it keeps its order"
        elif i - 1 in claimed:
            reason = f"front-matter `parallel` groups {before.id} already; it keeps its order"
        elif (why := _why_not(steps, i - 1)) is not None:
            reason = f"{before.id} cannot run alongside anything ({why}); it keeps its order"
        elif before.risk != RiskClass.GREEN:
            level = before.risk.value if before.risk is not None else "unrated"
            reason = f"{before.id} changes state ({level}); it keeps its order"
        if reason is not None:
            warnings.append(f"{said} {reason}")
            continue
        group = group_of.get(i - 1)
        if group is None:
            group = [i - 1]
            groups.append(group)
            group_of[i - 1] = group
        group.append(i)
        group_of[i] = group
    return groups


__all__ = ["mark_parallel"]
