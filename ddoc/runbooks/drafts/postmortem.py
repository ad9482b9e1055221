"""A postmortem into a draft runbook: what the responders did, in the order they did it.

Deterministic and offline. The document is read with the runbook parser's readers (markdown,
plain text, or HTML converted to markdown: Google-doc and Confluence exports), then:

- Sections are found by their headings (a markdown or HTML heading, or a line that is only a
  section's name: "Timeline", "Timeline (UTC):", "TIMELINE"). The timeline ("Timeline",
  "Chronology", "Sequence of events") and what-we-did sections ("What we did", "Actions taken",
  "Response", "Mitigation", "Resolution", "Remediation", "Recovery", "How it was fixed") give the
  steps; follow-up sections ("Action items", "Follow-ups", "Next steps", "Lessons learned",
  "Corrective actions", "Prevention") give the notes, never steps; the rest (summary, impact,
  root cause …) is left out. A document with no such heading uses its time-stamped lines.
- An entry is a list item, a line (or a sentence-continued run of lines), or a table row, with
  its time taken off the front ("14:02", "14:02 UTC", "[14:02]", "2026-03-01 14:02", "T+12m")
  into `DraftStep.at`, as written. A sentence with a command (a code span, a code block, or a
  command the parser finds in prose) is a command step, the command verbatim; a sentence whose
  main verb is an action (restarted, rolled back, scaled, raised …) is a manual step; anything
  else (an alert fired, a page, an acknowledgement, what was seen) is left out and counted in
  `Draft.dropped`. So are the timeline's actions from before the incident was detected (what
  caused it, not the response) and a what-we-did entry that repeats a step already drafted from
  another section (same command, or same verb and mostly the same words).
- Label values (from the linked incident's alert) become `{{label}}` variables in commands,
  whole tokens only.

Every command is a verbatim piece of the input (of its text, for HTML); `ungrounded` holds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ddoc.platform.errors import Invalid
from ddoc.runbooks.drafts.document import Draft, DraftStep, DraftVariable
from ddoc.runbooks.drafts.timeline import RESPONSE, TIMELINE, Entry, Reader, section_of
from ddoc.runbooks.drafts.wording import (
    DETECTION,
    EVENT,
    FILLER_WORDS,
    PERSONS,
    clean_title,
    is_action,
    take_time,
    word_list,
)
from ddoc.runbooks.parsing import chrome
from ddoc.runbooks.parsing.commands import block_kind, extract_commands, is_command_line
from ddoc.runbooks.parsing.html import html_to_markdown
from ddoc.runbooks.parsing.markdown import read_markdown
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Seg,
    render_segs,
)
from ddoc.runbooks.parsing.sentences import Sentence, split_sentences
from ddoc.runbooks.parsing.source import split_front_matter
from ddoc.runbooks.parsing.text import read_text

FORMATS = ("markdown", "text", "html")
MAX_BYTES = 2_000_000  # as for a runbook; a postmortem is far smaller
_EXPECT_LINES = 40
_EXCERPTS = 8
_EXCERPT_CHARS = 80


@dataclass
class _Drafted:
    step: DraftStep
    entry: Entry


# --- steps ---------------------------------------------------------------------------------
_TRAILING_LINK = re.compile(
    r"(?:[\s:;,(\[\u2013\u2014-]|\b(?:with|using|via|by running|by executing|by|through"
    r"|running|executing|the command|command))+$",
    re.I,
)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]|`\s*`")
_TARGET = re.compile(r"^\s*((?:on|against|in|from)\s+[A-Za-z][\w.-]*[-./_\d][\w./-]*)")
_RUN_VERB = re.compile(r"^(?:we\s+)?(?:ran|run|executed|re-?ran|issued)$", re.I)


_LEAD_FILLER = re.compile(
    r"^(?:(?:then|next|now|also|finally|afterwards|first|and|so)\b[\s,:]*)+(?=\S)", re.I
)


def _tidy(text: str) -> str:
    """A step's words: no empty brackets left by a command taken out, no "Then" before, no
    "with" or colon after."""
    text = _EMPTY_BRACKETS.sub("", text)
    if text.count("`") % 2:
        text = text.replace("`", "")  # a code span cut in two: plain words read better
    text = _LEAD_FILLER.sub("", " ".join(text.split()))
    text = re.sub(r"\s+([,;:.!?)])", r"\1", text)
    text = _TRAILING_LINK.sub("", text).strip()
    text = text.rstrip(" .")
    return text[:1].upper() + text[1:] if text else text


def _entry_steps(entry: Entry) -> tuple[list[DraftStep], str]:
    """The steps an entry gives, and its text (for the reviewer's notes)."""
    at, segs = take_time(entry.segs)
    at = entry.at or at or entry.heading_at
    text = render_segs(segs)
    steps: list[DraftStep] = []
    for sentence in split_sentences(segs) if segs else []:
        if sentence.commands:
            steps += _command_steps(sentence)
        elif is_action(sentence.text):
            steps.append(DraftStep(text=_tidy(sentence.text)))
    for block in entry.blocks:
        found = _block_commands(block, text)
        if found is None:
            if steps and steps[-1].command is not None and steps[-1].expect is None:
                steps[-1].expect = "\n".join(block.lines[:_EXPECT_LINES]).strip("\n") or None
            continue
        waiting = steps[-1] if steps and steps[-1].command is None else None
        for command, output in found:
            if waiting is None:
                waiting = DraftStep(text=_tidy(text))
                steps.append(waiting)
            waiting.command, waiting.expect = command, output
            waiting = None
    for step in steps:
        step.at = at
    return steps, (f"{at} {text}" if at else text).strip()


def _block_commands(block: CodeBlock, intro: str) -> list[tuple[str, str | None]] | None:
    """The commands of a code block (None: it holds none), each with the output shown under
    it. A block with no language whose first line is a command and whose other lines are not
    is that command and its output ("kubectl drain node-7 …" then "node/node-7 cordoned")."""
    if block_kind(block.info, block.lines, intro) != "command":
        return None
    lines = [line for line in block.lines if line.strip()]
    if (
        not block.info
        and len(lines) >= 2
        and is_command_line(lines[0])
        and not lines[0].rstrip().endswith(("\\", "|", "&&", "<<EOF"))
        and not any(is_command_line(line) for line in lines[1:])
    ):
        rest = block.lines[block.lines.index(lines[0]) + 1 :]
        return [(lines[0].strip(), "\n".join(rest[:_EXPECT_LINES]).strip("\n") or None)]
    commands = extract_commands(block.info, block.lines, block.start)
    return [(c.text, None) for c in commands] or None


def _command_steps(sentence: Sentence) -> list[DraftStep]:
    """One step per command of the sentence, its text the words that lead to it ("Restarted
    pgbouncer on db-proxy-1 (`…`)" → "Restarted pgbouncer on db-proxy-1")."""
    steps: list[DraftStep] = []
    pending = list(sentence.commands)
    before: list[Seg] = []
    lead = ""
    segs = sentence.segs
    for k, seg in enumerate(segs):
        if seg.kind == "code" and pending and _unprompted(seg.value) == pending[0].text:
            command = pending.pop(0)
            if command.undo and steps:
                steps[-1].rollback = command.text
                before = []
                continue
            text = _tidy(render_segs(before))
            if _RUN_VERB.match(text) or not text:
                after = render_segs(_until_code(segs[k + 1 :]))
                purpose = re.match(r"^\s*(to\s+\w.*)$", after)
                text = _tidy(purpose.group(1)) if purpose else text
            else:
                target = _TARGET.match(render_segs(_until_code(segs[k + 1 :])))
                if target and target.group(1).split()[-1] not in text:
                    text = f"{text} {target.group(1)}"
            lead = lead or text
            steps.append(DraftStep(text=text or lead, command=command.text))
            before = []
        else:
            before.append(seg)
    return steps


def _unprompted(code: str) -> str:
    code = code.strip()
    return code[2:].strip() if code.startswith("$ ") else code


def _until_code(segs: list[Seg]) -> list[Seg]:
    out = []
    for seg in segs:
        if seg.kind == "code":
            break
        out.append(seg)
    return out


_STOP = frozenset(
    "the a an to of on in at for and with from by it its we our was were then into".split()
)


@functools.lru_cache(maxsize=4096)
def _content(text: str) -> frozenset[str]:
    return frozenset(w for w in word_list(text.lower()) if w not in _STOP)


def _same_action(a: DraftStep, b: DraftStep) -> bool:
    """Two sections telling of one action: the same command; or, where one of them has no
    command, the same verb and at least 60% of the shorter text's words."""
    if a.command is not None and b.command is not None:
        return a.command.strip() == b.command.strip()
    va, vb = _verb(a.text), _verb(b.text)
    if not va or va[:5] != vb[:5]:
        return False
    wa, wb = _content(a.text), _content(b.text)
    small = min(len(wa), len(wb))
    return small > 0 and len(wa & wb) >= 0.6 * small and not _other_names(wa, wb)


def _other_names(wa: frozenset[str], wb: frozenset[str]) -> bool:
    """Do the two name different things of one kind (db-proxy-1 and db-proxy-2)?"""
    stems_a = {_NUMBERED_NAME.sub("", w): w for w in wa if _NUMBERED_NAME.search(w)}
    for w in wb:
        stem = _NUMBERED_NAME.sub("", w) if _NUMBERED_NAME.search(w) else None
        if stem and len(stem) >= 3 and stem in stems_a and stems_a[stem] != w:
            return True
    return False


_NUMBERED_NAME = re.compile(r"(?<=\D)\d+$")


@functools.lru_cache(maxsize=4096)
def _verb(text: str) -> str:
    for word in word_list(text.lower()):
        if word not in PERSONS and word not in FILLER_WORDS:
            return word
    return ""


# --- the draft -----------------------------------------------------------------------------
def draft_from_postmortem(
    content: str,
    fmt: str = "markdown",
    *,
    alerts: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Draft:
    """The runbook a postmortem implies: its timeline's and what-we-did sections' actions as
    steps (commands verbatim), its action items as notes; events and observations left out
    and counted in `dropped`. A postmortem with no actions gives a draft with no steps and a
    `dropped` line saying so. Raises `Invalid` for an unknown format, binary content or a
    document over `MAX_BYTES`."""
    fmt_key = fmt.strip().lower() if isinstance(fmt, str) else ""
    if fmt_key not in FORMATS:
        raise Invalid(f"unsupported postmortem format {fmt!r}; use markdown, text or html")
    text = _decode(content)
    alerts = [a for a in (alerts or []) if a]
    given = " ".join(title.split()) if title and title.strip() else None
    if not text.strip():
        return Draft(
            title=given or "Untitled postmortem \u2014 draft runbook",
            kind="postmortem",
            steps=[],
            alerts=alerts,
            dropped=["no actions were found: the postmortem is empty"],
        )
    front: dict[str, object] = {}
    if fmt_key == "html":
        markdown, _ = html_to_markdown(text)
        nodes = read_markdown(markdown)
    else:
        fm = split_front_matter(text)
        front = fm.data
        nodes = read_markdown(fm.body) if fmt_key == "markdown" else read_text(fm.body)
    reader = Reader(trust_bare=fmt_key == "html")
    reader.walk(nodes)

    dropped: list[str] = []
    entries = reader.entries
    if not entries and reader.loose:
        entries = reader.loose
        dropped.append(
            "the postmortem has no timeline heading: the steps come from its time-stamped lines"
        )
    drafted, left_out = _steps(entries)
    steps = [d.step for d in drafted]
    if not steps:
        has_sections = any(k in (TIMELINE, RESPONSE) for k in reader.sections) or entries
        dropped.insert(
            0,
            "no actions were found: "
            + (
                "no entry of the timeline or what-we-did sections has a command or an action "
                "(restarted, rolled back, scaled …)"
                if has_sections
                else "the postmortem has no timeline or what-we-did section (a heading such as "
                "Timeline, Actions taken, Mitigation or Resolution)"
            ),
        )
    dropped += left_out
    variables = _variables(steps, labels or {})
    raw = front.get("title")
    raw_title = raw if isinstance(raw, str) else None
    name = given or f"{_doc_title(raw_title, reader)} \u2014 draft runbook"
    return Draft(
        title=name,
        kind="postmortem",
        steps=steps,
        notes=reader.notes,
        variables=variables,
        alerts=alerts,
        dropped=dropped,
    )


def _decode(content: str) -> str:
    if not isinstance(content, str):
        raise Invalid(f"a postmortem is text, not {type(content).__name__}")
    if len(content) * 4 > MAX_BYTES and len(content.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        size = len(content.encode("utf-8", "surrogatepass"))
        raise Invalid(
            f"the postmortem is too large ({size:,} bytes); the limit is {MAX_BYTES:,} bytes"
        )
    if "\x00" in content:
        raise Invalid("the postmortem looks binary (it contains NUL bytes); send its text")
    text = content.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _steps(entries: list[Entry]) -> tuple[list[_Drafted], list[str]]:
    """The entries' steps in order, and why the others were left out."""
    events: list[str] = []
    seen: list[str] = []
    before: list[str] = []
    repeats: list[str] = []
    merged: list[str] = []
    per_entry = [_entry_steps(entry) for entry in entries]
    detected = _detection_points(entries, per_entry)
    drafted: list[_Drafted] = []
    index = _Twins()
    for k, (entry, (steps, text)) in enumerate(zip(entries, per_entry, strict=True)):
        if not steps:
            (events if EVENT.search(text) else seen).append(text)
            continue
        if k < detected.get(entry.section_id, -1):
            before.append(text)
            continue
        kept = []
        gave = False
        for step in steps:
            twin = index.twin(step, entry.section_id)
            if twin is None:
                kept.append(step)
                continue
            twin.step.at = twin.step.at or step.at
            if twin.step.command is None and step.command is not None:
                # the timeline says what was done, the other section how: one step, with both
                twin.step.command, twin.step.expect = step.command, step.expect
                twin.step.rollback = twin.step.rollback or step.rollback
                index.add(twin)
                gave = True
        if gave:
            merged.append(text)
        elif not kept:
            repeats.append(text)
        for step in kept:
            drafted.append(_Drafted(step, entry))
            index.add(drafted[-1])
    reasons = [
        (events, "record events (alerts, pages, acknowledgements, status updates), not actions"),
        (seen, "tell what was seen or found, with no command or action"),
        (before, "happened before the incident was detected: what led to it, not the response"),
        (repeats, "repeat a step already drafted from another section"),
        (merged, "give the command of a step drafted from another section (now on that step)"),
    ]
    return drafted, [_left_out(texts, why) for texts, why in reasons if texts]


class _Twins:
    """The steps drafted so far, by command and by verb: where a step's twin would be."""

    _SCAN = 200  # candidates looked at per step, the first ones: bounded on a huge timeline

    def __init__(self) -> None:
        self.by_command: dict[str, list[_Drafted]] = {}
        self.by_verb: dict[str, list[_Drafted]] = {}

    def add(self, drafted: _Drafted) -> None:
        if drafted.step.command is not None:
            self.by_command.setdefault(drafted.step.command.strip(), []).append(drafted)
        self.by_verb.setdefault(_verb(drafted.step.text)[:5], []).append(drafted)

    def twin(self, step: DraftStep, section_id: int) -> _Drafted | None:
        """The first step of another section that tells of the same action."""
        pools = []
        if step.command is not None:
            pools.append(self.by_command.get(step.command.strip(), []))
        verb = _verb(step.text)[:5]
        if verb:
            pools.append(self.by_verb.get(verb, []))
        for pool in pools:
            for drafted in pool[: self._SCAN]:
                if drafted.entry.section_id != section_id and _same_action(drafted.step, step):
                    return drafted
        return None


def _detection_points(
    entries: list[Entry], per_entry: list[tuple[list[DraftStep], str]]
) -> dict[int, int]:
    """Per timeline section, the index of its first entry that tells the incident was detected
    (an alert fired, a page, a report) when actions come before it."""
    points: dict[int, int] = {}
    acted: set[int] = set()
    for k, (entry, (steps, text)) in enumerate(zip(entries, per_entry, strict=True)):
        if entry.section != TIMELINE or entry.section_id in points:
            continue
        if steps:
            acted.add(entry.section_id)
        elif DETECTION.search(text) and entry.section_id in acted:
            points[entry.section_id] = k
        elif DETECTION.search(text):
            points[entry.section_id] = -1  # detected first: nothing to leave out
    return points


def _left_out(texts: list[str], why: str) -> str:
    """ "left out 2 entries that record events …: “14:02 Alert … fired”; …" """
    texts = [t.replace("`", "") for t in texts]  # a cut code span would swallow what follows
    shown = [
        "\u201c"
        + (t if len(t) <= _EXCERPT_CHARS else t[: _EXCERPT_CHARS - 1] + "\u2026")
        + "\u201d"
        for t in texts[:_EXCERPTS]
    ]
    more = f" and {len(texts) - _EXCERPTS} more" if len(texts) > _EXCERPTS else ""
    if len(texts) == 1:
        verb, _, rest = why.partition(" ")
        why = f"{_SINGULAR.get(verb, verb)} {rest}"
    noun = "entry" if len(texts) == 1 else "entries"
    return f"left out {len(texts)} {noun} that {why}: {'; '.join(shown)}{more}"


_SINGULAR = {"record": "records", "tell": "tells", "repeat": "repeats", "give": "gives"}


# --- variables -----------------------------------------------------------------------------
_SKIP_LABELS = frozenset({"alertname", "severity", "priority"})


def _variables(steps: Iterable[DraftStep], labels: Mapping[str, str]) -> list[DraftVariable]:
    """Each label value that a command holds as a whole token becomes `{{label}}`; the longest
    values first, so one value inside another is not cut."""
    found: list[DraftVariable] = []
    candidates = sorted(
        (
            (key, str(value))
            for key, value in labels.items()
            if key not in _SKIP_LABELS and len(str(value)) >= 3 and not str(value).isdigit()
        ),
        key=lambda kv: -len(kv[1]),
    )
    steps = list(steps)
    written = " ".join(f"{s.command or ''} {s.rollback or ''}" for s in steps)
    for key, value in candidates:
        name = re.sub(r"\W+", "_", key).strip("_")
        if not name or any(v.name == name for v in found) or "{{" + name + "}}" in written:
            continue  # a command that says {{name}} itself would render as the example
        token = re.compile(rf"(?<![\w.{{/-]){re.escape(value)}(?![\w}}-]|\.\w)")
        used = False
        for step in steps:
            for attr in ("command", "rollback"):
                command = getattr(step, attr)
                if command and token.search(command):
                    setattr(step, attr, token.sub("{{" + name + "}}", command))
                    used = True
        if used:
            found.append(DraftVariable(name=name, example=value, label=key))
    return found


# --- the title -----------------------------------------------------------------------------


def _doc_title(front_title: str | None, reader: Reader) -> str:
    candidates = [front_title, reader.h1, *_first_lines(reader.lines)]
    for candidate in candidates:
        cleaned = clean_title(candidate or "")
        if cleaned:
            return cleaned
    return "Untitled postmortem"


def _first_lines(lines: list[str]) -> list[str]:
    """The document's title line: the one above a wiki byline, else the first that is not
    chrome (a breadcrumb, an author line) or a section's name."""
    byline = next((k for k, line in enumerate(lines) if chrome.BYLINE.search(line)), None)
    if byline:
        return [lines[byline - 1]]
    return [
        line
        for line in lines[:6]
        if not chrome.is_chrome(line) and not section_of(line, whole=True)
    ][:1]


__all__ = ["FORMATS", "MAX_BYTES", "draft_from_postmortem"]
