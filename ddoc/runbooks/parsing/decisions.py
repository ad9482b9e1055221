"""Decision steps and where their branches go.

"If X, do Y" sentences (and Japanese "X場合、Y"), "If X, run the following:" over a code
block, conditional headings ("### If the replica lags") and "Otherwise …" sentences become
decision steps with branches. A branch goes to the steps made for its action, or to what its
action refers to ("go to step 4", "see Failover", a #anchor link, "continue with the next
step"): those references are kept as ``Goto`` records and resolved once every step exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ddoc.runbooks.model import Branch, Step, StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import FORWARD, BuildState, Goto
from ddoc.runbooks.parsing.commands import Command
from ddoc.runbooks.parsing.nodes import Inline
from ddoc.runbooks.parsing.sentences import InlineCommand, Sentence, split_sentences

_COND_SPLIT = re.compile(r",\s*(?:then\b\s*)?|\s+then\s+|:\s+|\uff0c|\u3001")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_YOU_CAN = re.compile(r"^(?:you|we) (?:can|could|may)\s+(?:also\s+)?([a-z-]+)", re.I)
_SLUG_DROP = re.compile(r"[^\w\- ]")
_OUTPUT_CHECK = re.compile(
    r"\b(?:contains?|shows?|includes?|prints?|displays?|reports?|mentions?|returns?|lists?|says"
    r"|outputs?|enthält|zeigt|muestra|contiene)\s+(?:the\s+)?(?:string\s+|text\s+|word\s+"
    r"|message\s+|status\s+|value\s+)?(?:`([^`]+)`|\"([^\"]+)\"|“([^”]+)”|'([^']+)')"
)


@dataclass
class BranchSpec:
    condition: str
    action: str
    check: dict[str, object] | None


def at_heading(state: BuildState, level: int, text: str, inline: Inline) -> None:
    """A heading is a target for references to it and ends the branches of deeper
    conditional headings; a conditional one ("### If the replica lags") opens a decision
    or adds a branch to the decision of its conditional siblings."""
    state.pending_heading_branches = [
        (b, lv) for b, lv in state.pending_heading_branches if lv < level
    ]
    state.anchors.setdefault(slug(text), len(state.steps))
    state.last_decision = None
    conditional = state.role in FORWARD and bool(lx.HEADING_COND_START.match(text))
    group = state.cond_group
    if group is not None and (level < group[0] or (level == group[0] and not conditional)):
        state.cond_group = None
    if conditional:
        condition = lx.HEADING_COND_START.sub("", text, count=1).rstrip(":").strip() or text
        branch = Branch(condition=condition, text=text, check=condition_check(condition))
        group = state.cond_group
        if group is not None and group[0] == level:
            decision = group[1]
            decision.branches.append(branch)
            decision.text += f"; {condition}"
        else:
            decision = state.add(
                StepKind.DECISION,
                f"Choose the case that applies: {condition}",
                inline.start,
                inline.end,
            )
            decision.branches.append(branch)
            state.cond_group = (level, decision)
        state.pending_heading_branches.append((branch, level))


def recent_decision(state: BuildState) -> Step | None:
    """The decision of this or the previous paragraph/item, which "Otherwise …" extends."""
    if state.last_decision is None:
        return None
    step, unit = state.last_decision
    return step if state.unit - unit <= 1 else None


def decision_specs(s: Sentence) -> list[BranchSpec] | None:
    """The condition(s) and action(s) of a conditional sentence whose action is something
    to do; None when it has none."""
    text = s.text
    masked = mask_code(text)
    m = lx.COND_START.match(text)
    if m is None:
        ja = lx.JA_COND.match(text)
        if ja is None:
            return None
        cond, action = ja.group("cond"), ja.group("act")
        if not _actionable_action(action, s.commands):
            return None
        return [BranchSpec(cond.strip(), action.strip(), condition_check(cond))]
    body_start = m.end()
    for sep in _COND_SPLIT.finditer(masked, body_start):
        action = lx.THEN.sub("", text[sep.end() :], count=1)
        if not _actionable_action(action, s.commands):
            continue
        cond = text[body_start : sep.start()].strip()
        if not cond:
            return None
        specs = [BranchSpec(cond, action, condition_check(cond))]
        other = lx.INLINE_OTHERWISE.search(mask_code(action))
        if other is not None:
            first_action = action[: other.start()].strip()
            second = action[other.end() :].strip()
            specs[0].action = first_action
            if second:
                specs.append(BranchSpec("otherwise", second, negate(specs[0].check)))
        return specs
    return None


def _actionable_action(action: str, commands: list[InlineCommand]) -> bool:
    action = action.strip()
    if not action:
        return False
    if any(c.text in action for c in commands):
        return True
    if lx.is_imperative(action) or lx.ESCALATE.search(action):
        return True
    if lx.STEP_REF.search(action) or lx.SECTION_REF.search(action):
        return True
    you = _YOU_CAN.match(action)
    return you is not None and lx.is_imperative(you.group(1))


def add_decision(state: BuildState, s: Sentence) -> None:
    """ "If X, do Y": the commands X checks, the decision, then each branch's target."""
    specs = decision_specs(s)
    if not specs:
        return
    # Commands in the condition are what is being checked: run them first.
    cond_cmds = [c for c in s.commands if c.text in specs[0].condition]
    for c in cond_cmds:
        state.add(StepKind.COMMAND, s.text, s.start, s.end, c.text, c.language)
    decision = state.add(StepKind.DECISION, s.text, s.start, s.end)
    state.last_decision = (decision, state.unit)
    branches = [Branch(condition=sp.condition, text=sp.action, check=sp.check) for sp in specs]
    decision.branches.extend(branches)
    used = {c.text for c in cond_cmds}
    for spec, branch in zip(specs, branches, strict=True):
        cmds = [c for c in s.commands if c.text in spec.action and c.text not in used]
        used.update(c.text for c in cmds)
        _branch_target(state, branch, spec.action, cmds, s)


def add_otherwise(state: BuildState, s: Sentence) -> None:
    """ "Otherwise, …" after a decision: one more branch of that decision."""
    recent = recent_decision(state)
    if recent is not None:
        action = lx.OTHERWISE.sub("", s.text, count=1)
        first = recent.branches[0].check if recent.branches else None
        branch = Branch(condition="otherwise", text=action, check=negate(first))
        recent.branches.append(branch)
        _branch_target(state, branch, action, s.commands, s)


def _branch_target(
    state: BuildState, branch: Branch, action: str, cmds: list[InlineCommand], s: Sentence
) -> None:
    if cmds:
        first: Step | None = None
        for c in cmds:
            step = state.add(StepKind.COMMAND, action, s.start, s.end, c.text, c.language)
            first = first or step
        branch.goto = first.id if first else None
        return
    if lx.ESCALATE.search(action):
        branch.goto = state.add(StepKind.ESCALATE, action, s.start, s.end).id
        return
    ref = lx.STEP_REF.search(action)
    if ref:
        number = next(g for g in ref.groups() if g)
        state.gotos.append(Goto(branch, "step", number, state.list_id))
        return
    section = lx.SECTION_REF.search(action)
    if section:
        state.gotos.append(Goto(branch, "section", section.group("name")))
        return
    for seg in s.segs:
        if seg.href and seg.href.startswith("#") and seg.value.strip() in action:
            state.gotos.append(Goto(branch, "anchor", seg.href[1:]))
            return
    if lx.NEXT_REF.search(action):
        state.gotos.append(Goto(branch, "next", "", after=len(state.steps)))


def intro_decision(
    state: BuildState, intro: Inline, intro_text: str, commands: list[Command]
) -> bool:
    """ "If X, run the following:" + code: a decision whose branch is the code.

    ``intro_text`` is the intro's text as a step shows it (bounded)."""
    sentences = split_sentences(intro.segs)
    last = sentences[-1] if sentences else None
    if last is None or not lx.COND_START.match(last.text):
        return False
    specs = decision_specs(last)
    if not specs:
        return False
    decision = state.add(StepKind.DECISION, intro_text, intro.start, intro.end)
    spec = specs[0]
    branch = Branch(condition=spec.condition, text=spec.action, check=spec.check)
    decision.branches.append(branch)
    state.last_decision = (decision, state.unit)
    for c in commands:
        step = state.add(
            StepKind.COMMAND, c.title or spec.action, c.start, c.end, c.text, c.language
        )
        branch.goto = branch.goto or step.id
    return True


def resolve_gotos(state: BuildState) -> None:
    """Once every step exists: point each referring branch at the step it names."""
    n = len(state.steps)
    for goto in state.gotos:
        index: int | None = None
        if goto.kind == "step":
            step = state.step_for_item(goto.list_id, int(goto.value))
            index = state.steps.index(step) if step is not None else None
        elif goto.kind == "next":
            index = goto.after if goto.after < n else None
        elif goto.kind == "anchor":
            index = state.anchors.get(goto.value.lower())
        elif goto.kind == "section":
            name = slug(goto.value)
            index = state.anchors.get(name)
            if index is None:
                index = next((v for k, v in state.anchors.items() if k.startswith(name)), None)
        if index is not None and index < n:
            goto.branch.goto = state.steps[index].id


def condition_check(condition: str) -> dict[str, object] | None:
    """What a condition checks of the previous command: exit code or output."""
    if lx.EXIT_NONZERO.search(condition):
        return {"exit_code_nonzero": True}
    if lx.EXIT_ZERO.search(condition):
        return {"exit_code": 0}
    m = _OUTPUT_CHECK.search(condition)
    if m:
        return {"output_pattern": next(g for g in m.groups() if g)}
    return None


def negate(check: dict[str, object] | None) -> dict[str, object] | None:
    if check == {"exit_code": 0}:
        return {"exit_code_nonzero": True}
    if check == {"exit_code_nonzero": True}:
        return {"exit_code": 0}
    return None


def maybe_ja_cond(text: str) -> bool:
    return ("場合" in text or text.startswith("もし")) and lx.JA_COND.match(text) is not None


def mask_code(text: str) -> str:
    """Same length, with code spans blanked so separators inside them are ignored."""
    if "`" not in text:
        return text
    return _CODE_SPAN.sub(lambda m: "x" * len(m.group(0)), text)


def slug(text: str) -> str:
    return _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")
