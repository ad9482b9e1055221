"""Rollbacks: instructions that undo a step are attached to that step, never steps themselves.

Two sources. A rollback sentence in running prose ("To undo, run `x`") is attached at once
to the step it follows (``prose_rollback``). A rollback section's paragraphs, code blocks,
list items and table rows are recorded as hints while walking (``hint``, ``item_hints``) and
tied to steps once all exist (``resolve_rollbacks``): by the step number they name, by the
command they undo, else to the last state-changing step before the section, with a warning.
"""

from __future__ import annotations

from ddoc.runbooks.model import Rollback, RollbackOrigin, Step, StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import STATE_CHANGING, BuildState, RollbackHint
from ddoc.runbooks.parsing.commands import block_kind, extract_commands
from ddoc.runbooks.parsing.inverses import undoes
from ddoc.runbooks.parsing.lists import has_command, item_text
from ddoc.runbooks.parsing.nodes import CodeBlock, ListBlock, ListItem, Paragraph
from ddoc.runbooks.parsing.sentences import split_sentences


def hint(state: BuildState, text: str, commands: list[str], line: int) -> None:
    """Rollback instructions of a rollback section: one hint per command (or one for text)."""
    ref = lx.STEP_REF.search(text)
    step_ref = int(next(g for g in ref.groups() if g)) if ref else None
    if not commands:
        if text.strip():
            state.hints.append(
                RollbackHint(
                    text,
                    None,
                    line,
                    len(state.steps),
                    state.section_serial,
                    step_ref,
                    state.list_id,
                )
            )
        return
    for command in commands:
        state.hints.append(
            RollbackHint(
                text,
                command,
                line,
                len(state.steps),
                state.section_serial,
                step_ref,
                state.list_id,
            )
        )


def item_hints(state: BuildState, item: ListItem) -> None:
    """An item of a rollback section: hints for its nested items with commands, then its own."""
    text = item_text(item)
    commands: list[str] = []
    for n in item.body:
        if isinstance(n, Paragraph):
            commands.extend(c.text for s in split_sentences(n.inline.segs) for c in s.commands)
        elif isinstance(n, CodeBlock) and block_kind(n.info, n.lines, text) == "command":
            commands.extend(c.text for c in extract_commands(n.info, n.lines, n.start))
    for sub in item.body:
        if isinstance(sub, ListBlock):
            for child in sub.items:
                if has_command(child, deep=True):
                    item_hints(state, child)
    hint(state, text, commands, item.start)


def prose_rollback(state: BuildState, text: str, command: str | None, line: int) -> None:
    """ "To undo, run `x`" in running prose: attach to the step it follows."""
    ref = lx.STEP_REF.search(text)
    target: Step | None = None
    if ref:
        target = state.step_for_item(state.list_id, int(next(g for g in ref.groups() if g)))
    if target is None and command:
        target = next(
            (s for s in reversed(state.steps) if s.command and undoes(command, s.command)), None
        )
    if target is None and state.steps and state.steps[-1].command is not None:
        # "2. Bump: `bump.sh`" then "To roll back: `unbump.sh`" in the same item/paragraph.
        last = state.steps[-1]
        if state.step_unit.get(last.id) == state.unit:
            target = last
    if target is None:
        target = _last_state_changing(state, len(state.steps))
    if target is None:
        state.warnings.append(
            f"line {line}: rollback hint has no earlier step to attach to; it was dropped"
        )
        return
    _attach(target, Rollback(command=command, text=text, origin=RollbackOrigin.RUNBOOK))


def _last_state_changing(state: BuildState, before: int) -> Step | None:
    candidates = state.steps[:before]
    for step in reversed(candidates):
        if step.command is not None and step.risk in STATE_CHANGING:
            return step
    return next((s for s in reversed(candidates) if s.command is not None), None)


def resolve_rollbacks(state: BuildState) -> None:
    """Once every step exists: attach each hint to the step it undoes, or per section to a
    fallback step (with a warning), or drop it (with a warning) when there is none."""
    unresolved: dict[int, list[RollbackHint]] = {}
    for h in state.hints:
        target: Step | None = None
        if h.step_ref is not None:
            target = state.step_for_item(h.list_id, h.step_ref)
        if target is None and h.command:
            undone = [
                s
                for s in reversed(state.steps[: h.steps_before])
                if s.command and s.kind == StepKind.COMMAND and undoes(h.command, s.command)
            ]
            # "rollout undo" undoes the restart, not the "rollout status" that checked it.
            target = next((s for s in undone if s.risk in STATE_CHANGING), None) or next(
                iter(undone), None
            )
        if target is not None:
            _attach(
                target,
                Rollback(command=h.command, text=h.text, origin=RollbackOrigin.RUNBOOK),
            )
        else:
            unresolved.setdefault(h.section, []).append(h)
    for hints in unresolved.values():
        before = max(h.steps_before for h in hints)
        fallback = _last_state_changing(state, before)
        line = hints[0].line
        if fallback is None:
            state.warnings.append(
                f"line {line}: rollback instructions have no step to attach to; they were dropped"
            )
            continue
        commands = [h.command for h in hints if h.command]
        texts: list[str] = []
        for h in hints:
            if h.text and h.text not in texts:
                texts.append(h.text)
        _attach(
            fallback,
            Rollback(
                command="\n".join(commands) if commands else None,
                text="\n".join(texts),
                origin=RollbackOrigin.RUNBOOK,
            ),
        )
        state.warnings.append(
            f"line {line}: rollback instructions could not be tied to a specific step; "
            f"attached to {fallback.id}"
        )


def _attach(step: Step, rollback: Rollback) -> None:
    existing = step.rollback
    if existing is None or existing.origin != RollbackOrigin.RUNBOOK:
        step.rollback = rollback
        return
    if rollback.command:
        existing.command = (
            f"{existing.command}\n{rollback.command}" if existing.command else rollback.command
        )
    if rollback.text and rollback.text not in existing.text:
        existing.text = f"{existing.text}\n{rollback.text}" if existing.text else rollback.text
