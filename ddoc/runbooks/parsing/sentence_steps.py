"""The sentences of a paragraph or list item into steps.

Each sentence is classified by what it says specifically (a rollback, an "otherwise", a
decision, commands, a prerequisite, an escalation, a warning, or nothing: plain) and handed
to the part that records it; plain instructions between specific sentences become manual
steps.
"""

from __future__ import annotations

from ddoc.runbooks.model import StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import BuildState
from ddoc.runbooks.parsing.decisions import (
    add_decision,
    add_otherwise,
    decision_specs,
    maybe_ja_cond,
    recent_decision,
)
from ddoc.runbooks.parsing.risk_warnings import after_commands, apply_warning
from ddoc.runbooks.parsing.rollbacks import prose_rollback
from ddoc.runbooks.parsing.sentences import Sentence


def emit_sentences(state: BuildState, sentences: list[Sentence], manual_plain: bool) -> bool:
    """Emit steps for the sentences that say something specific; True if any did.

    With ``manual_plain`` (paragraphs), instructions between specific sentences become
    manual steps; a paragraph with nothing specific is left to the caller.
    """
    kinds = [sentence_kind(state, s) for s in sentences]
    if all(k == "plain" for k in kinds):
        return False
    plain: list[Sentence] = []

    def flush() -> None:
        if plain and manual_plain and lx.is_imperative(plain[0].text):
            text = " ".join(s.text for s in plain)
            state.add(StepKind.MANUAL, text, plain[0].start, plain[-1].end)
        plain.clear()

    for s, kind in zip(sentences, kinds, strict=True):
        if kind == "plain":
            plain.append(s)
            continue
        flush()
        _emit_sentence(state, s, kind)
    flush()
    return True


def sentence_kind(state: BuildState, s: Sentence) -> str:
    """rollback | otherwise | decision | command | prereq | escalate | warning | plain"""
    text = s.text
    if lx.is_rollback_sentence(text):
        return "rollback"
    if lx.OTHERWISE.match(text) and recent_decision(state) is not None:
        return "otherwise"
    if (lx.COND_START.match(text) or maybe_ja_cond(text)) and decision_specs(s):
        return "decision"
    if s.commands:
        return "command"
    if lx.PREREQ_SENTENCE.search(text):
        return "prereq"
    if lx.ESCALATE.search(text):
        return "escalate"
    if lx.warns_destructive(text):
        return "warning"
    return "plain"


def _emit_sentence(state: BuildState, s: Sentence, kind: str) -> None:
    if kind == "rollback":
        command = "\n".join(c.text for c in s.commands) or None
        prose_rollback(state, s.text, command, s.start)
    elif kind == "otherwise":
        add_otherwise(state, s)
    elif kind == "decision":
        add_decision(state, s)
    elif kind == "command":
        for c in s.commands:
            if c.undo:
                prose_rollback(state, s.text, c.text, c.line)
            else:
                state.add(StepKind.COMMAND, s.text, s.start, s.end, c.text, c.language)
        if lx.warns_destructive(after_commands(s)):
            apply_warning(state, s)
    elif kind == "warning":
        apply_warning(state, s)
    elif kind == "prereq":
        state.prereq(s.text, s.start, s.end)
    elif kind == "escalate":
        state.add(StepKind.ESCALATE, s.text, s.start, s.end)
