"""Splitting inline content into sentences and finding the commands inside each."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ddoc.runbooks.parsing.commands import _SHELL_PROMPT, is_inline_command, language_of
from ddoc.runbooks.parsing.lexicon import (
    ABBREVIATIONS,
    COND_START,
    EXPLICIT_CHECK,
    OTHERWISE,
    ROLLBACK_CUE,
    ROLLBACK_SENTENCE,
    SENTENCE_END,
)
from ddoc.runbooks.parsing.nodes import Seg, render_segs

_INSIDE = re.compile(r"\b(?:inside|within|in a|from (?:a|the|inside))\s*$", re.I)


@dataclass(slots=True)
class InlineCommand:
    text: str
    language: str
    line: int
    undo: bool = False  # the words before it say it undoes what came before ("revert: …")


@dataclass(slots=True)
class Sentence:
    segs: list[Seg]
    start: int
    end: int
    commands: list[InlineCommand] = field(default_factory=list)
    _text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = render_segs(self.segs)
        return self._text


def split_sentences(segs: list[Seg]) -> list[Sentence]:
    out: list[Sentence] = []
    cur: list[Seg] = []
    line = segs[0].line if segs else 0
    for seg in segs:
        if seg.line > line and seg.value.strip():
            # A new line that opens a rollback, a condition, an "otherwise" or a "verify:"
            # starts a new sentence even where the previous line has no full stop (list
            # continuations).
            line = seg.line
            if cur and seg.kind == "text" and _opens_sentence(seg.value.lstrip()):
                _close(cur, out)
                cur = []
        if seg.kind != "text" or seg.href is not None:
            cur.append(seg)
            continue
        value = seg.value
        pos = 0
        for m in SENTENCE_END.finditer(value):
            head = value[pos : m.start()]
            if ABBREVIATIONS.search(value, 0, m.start()):
                continue
            if head.strip():
                cur.append(Seg("text", head, seg.line))
            if cur:
                _close(cur, out)
                cur = []
            pos = m.end()
        rest = value[pos:]
        if rest:
            cur.append(Seg("text", rest, seg.line))
    if cur:
        _close(cur, out)
    return out


def _opens_sentence(text: str) -> bool:
    return bool(
        ROLLBACK_SENTENCE.match(text)
        or EXPLICIT_CHECK.match(text)
        or OTHERWISE.match(text)
        or (text[:1].isupper() and COND_START.match(text))
    )


def _close(segs: list[Seg], out: list[Sentence]) -> None:
    if not any(s.value.strip() for s in segs):
        return
    sentence = Sentence(segs=segs, start=segs[0].line, end=segs[-1].line)
    before = ""
    for seg in segs:
        if seg.kind == "code":
            # "(run inside `sudo gitlab-psql`)" names where to run what follows, not a step.
            if (
                seg.verbatim
                and not _INSIDE.search(before)
                and (seg.bare or is_inline_command(seg.value, before))
            ):
                command = seg.value.strip()
                m = _SHELL_PROMPT.match(command)
                if m and m.group(1).strip() == "$":
                    command = command[m.end() :]
                undo = bool(sentence.commands) and ROLLBACK_CUE.search(before) is not None
                sentence.commands.append(
                    InlineCommand(command, language_of(command), seg.line, undo=undo)
                )
            before = ""
        else:
            before = seg.value
    out.append(sentence)
