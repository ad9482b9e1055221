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
from dataclasses import dataclass, field

from ddoc.platform.errors import Invalid
from ddoc.runbooks.drafts.document import Draft, DraftStep, DraftVariable
from ddoc.runbooks.parsing.commands import block_kind, extract_commands, is_command_line
from ddoc.runbooks.parsing.html import html_to_markdown
from ddoc.runbooks.parsing.lexicon import strip_fillers
from ddoc.runbooks.parsing.markdown import read_markdown
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    Node,
    Paragraph,
    Seg,
    Table,
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

# --- sections ------------------------------------------------------------------------------
_TIMELINE, _RESPONSE, _NOTES, _OTHER = "timeline", "response", "notes", "other"
_SECTIONS: list[tuple[str, re.Pattern[str]]] = [
    (
        _NOTES,
        re.compile(
            r"(?:action items?|follow[- ]?ups?(?: actions| items)?|follow up|next steps|to-?dos?"
            r"|lessons? learn(?:ed|t)|learnings|corrective(?: and prevent(?:iv|at)e)? actions"
            r"|prevent(?:iv|at)e (?:actions|measures)|prevention|remediation items"
            r"|what we(?:'ll| will) do(?: next)?)",
            re.I,
        ),
    ),
    (
        _TIMELINE,
        re.compile(
            r"(?:(?:detailed|incident|full|response) )?(?:timeline|chronology)(?: of events)?"
            r"|sequence of events|(?:incident )?events",
            re.I,
        ),
    ),
    (
        _RESPONSE,
        re.compile(
            r"(?:what (?:we|was) did|what was done|actions? (?:we )?taken|actions we took"
            r"|steps taken|(?:incident )?response|mitigations?(?: steps)?|resolution"
            r"|remediation|recovery|how (?:it|this) was (?:fixed|resolved|mitigated)"
            r"|how we (?:fixed|resolved|mitigated) it|(?:the )?fix|workaround|immediate actions)",
            re.I,
        ),
    ),
    (
        _OTHER,
        re.compile(
            r"(?:executive )?summary|tl;?dr|overview|description|background|context|(?:customer |"
            r"business )?impact|root causes?(?: analysis)?|rca|contributing factors|triggers?"
            r"|detection|what went (?:well|wrong|badly)|where we got lucky|analysis|(?:5|five) whys"
            r"|participants|people involved|appendix|references|supporting information|glossary"
            r"|incident details|details|metadata|status",
            re.I,
        ),
    ),
]
_HEADING_NOISE = re.compile(r"^[\W_]*(?:\d+(?:\.\d+)*[.)]?\s+)?|[\s:.\uff1a]+$")
_TRAILER = re.compile(r"\s*(?:\([^()]*\)|[-\u2013\u2014:]\s*.*)$")  # "(all times UTC)", ": UTC"
_LINE_HEADING_WORDS = 6


def _section_of(heading: str, *, whole: bool) -> str | None:
    """The kind of section a heading names. A real heading may say more after the name
    ("Mitigation steps", "Timeline and response"); a line of prose (``whole``) must be the name
    and nothing else (a parenthesis or a colon aside)."""
    text = _HEADING_NOISE.sub("", heading.replace("`", "").replace("*", "")).strip()
    if not text or len(text) > 80:
        return None
    bare = _TRAILER.sub("", text).strip() or text
    for kind, pattern in _SECTIONS:
        if pattern.fullmatch(bare) or (not whole and pattern.match(text)):
            return kind
    return None


# --- time stamps ---------------------------------------------------------------------------
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (
    rf"(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{4}}/\d{{2}}/\d{{2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?"
    rf"|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTH}(?: \d{{4}})?)"
)
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:\s?[ap]\.?m\.?(?![a-z]))?"
_ZONE = (
    r"(?:\s?(?:UTC|GMT|Z|CET|CEST|EET|EEST|WET|WEST|BST|IST|JST|KST|SGT|HKT|AEST|AEDT|ACST|AWST"
    r"|NZST|NZDT|PST|PDT|PT|MST|MDT|MT|CST|CDT|CT|EST|EDT|ET|MSK|[+-]\d{2}:?\d{2})(?![\w]))?"
)
_STAMP = (
    rf"(?:{_DATE}(?:T|,?\s+(?:at\s+)?))?{_CLOCK}(?:\s?[-\u2013]\s?{_CLOCK})?{_ZONE}"
    r"|T\s?[+-]\s?\d+(?:[:.]\d+)?\s?(?:s|secs?|m|mins?|minutes|h|hrs?|hours|d|days)?(?![\w])"
)
_LEADING_TIME = re.compile(
    rf"^\s*(?:(?:at|around|approx\.?|~)\s*)?[\[(]?\s*(?P<at>{_STAMP})\s*[\])]?"
    r"(?:\s*[-\u2013\u2014:|,.>]+(?=\s)|(?=\s)|$)\s*",
    re.I,
)
_WHOLE_TIME = re.compile(rf"^\s*[\[(]?\s*(?:{_DATE}\s*)?(?:{_STAMP})?\s*[\])]?\s*$", re.I)
# "All times UTC.": a remark on the timeline, not an entry of it
_TIMES_REMARK = re.compile(
    r"^\W*(?:all )?(?:times?|timestamps?)(?: are| shown)?(?: in)? [\w+:-]+(?: time)?\W*$", re.I
)
_TIME_HEADER = re.compile(r"\b(?:time|when|timestamp|date|utc|t\+)", re.I)
_EVENT_HEADER = re.compile(
    r"\b(?:event|events|action|actions|what|description|details?|activity|update|notes?)\b",
    re.I,
)
_WHO_HEADER = re.compile(r"\b(?:who|owner|by|person|people|source|author|channel)\b", re.I)


def _take_time(segs: list[Seg]) -> tuple[str | None, list[Seg]]:
    """The time an entry starts with, and the entry without it."""
    segs = [s for s in segs if s.kind == "code" or s.value]
    while segs and segs[0].kind == "text" and not segs[0].value.strip():
        segs = segs[1:]
    if not segs:
        return None, segs
    first = segs[0]
    if first.kind == "code":
        if _WHOLE_TIME.match(first.value) and any(ch.isdigit() for ch in first.value):
            return first.value.strip(" []()"), segs[1:]
        return None, segs
    m = _LEADING_TIME.match(first.value)
    if m is None:
        return None, segs
    rest = first.value[m.end() :]
    out = ([Seg("text", rest, first.line)] if rest else []) + segs[1:]
    return " ".join(m.group("at").split()), out


# --- what a sentence says ------------------------------------------------------------------
_ACTION_WORDS = frozenset(
    """restart restarted restarting restarts reboot rebooted rebooting bounce bounced bouncing
    cycle cycled recycled revert reverted reverting scale scaled scaling drain drained draining
    cordon cordoned uncordon uncordoned increase increased increasing raise raised raising bump
    bumped bumping decrease decreased lower lowered reduce reduced reducing delete deleted
    deleting remove removed removing flush flushed flushing kill killed killing terminate
    terminated terminating pause paused pausing resume resumed disable disabled disabling
    enable enabled enabling apply applied applying deploy deployed deploying redeploy redeployed
    redeploying ran run running execute executed executing promote promoted promoting demote
    demoted rotate rotated rotating renew renewed renewing resize resized resizing expand
    expanded expanding grow grew grown clear cleared clearing purge purged purging vacuum
    vacuumed vacuuming re-ran reran re-run rerun re-running rerunning re-ran restore restored
    restoring switch switched switching stop stopped stopping start started starting rebuild
    rebuilt recreate recreated reset reload reloaded reloading reindex reindexed patch patched
    patching upgrade upgraded downgrade downgraded migrate migrated move moved block blocked
    unblock unblocked throttle throttled rate-limited evict evicted truncate truncated set
    change changed changing failover rollback hotfixed hotfix""".split()
)
_PARTICLES = {"roll": "back", "rolled": "back", "rolling": "back", "fail": "over"}
_PARTICLES |= {"failed": "over", "failing": "over"}
_NOT_ACTION_NEXT = {
    "start": frozenset("investigating looking seeing to getting working".split()),
    "ran": frozenset("into out".split()),
    "run": frozenset("into out".split()),
}
_NOT_ACTION_NEXT["started"] = _NOT_ACTION_NEXT["starting"] = _NOT_ACTION_NEXT["start"]
_NOT_ACTION_NEXT["running"] = _NOT_ACTION_NEXT["ran"]
# "Run finished", "Deploy completed", "Failover took 40 s": the word is a noun, the subject.
_NOUN_NEXT = frozenset(
    """finished completed complete succeeded failed done was is were took went ended hung
    stalled timed kicked began started stopped did didn't does doesn't had has helped fixed
    worked made caused""".split()
)
_EVENT_WORDS = frozenset(
    """fired firing triggered paged page acknowledged acked ack joined declared noticed
    observed saw detected reported notified escalated posted confirmed recovered resolved
    identified found investigated investigating began opened created closed complained
    updated""".split()
)
_PERSONS = frozenset(
    """we i they he she someone on-call oncall engineer engineers sre sres dba dbas ic team
    responder responders commander primary secondary ops operator operators""".split()
)
_FILLER_WORDS = frozenset(
    """the a an our their his her and then also finally first manually immediately quickly
    successfully again eventually incident database platform infra""".split()
)
_THINGS = frozenset(
    """it this that database db pod pods node nodes service services server host cluster replica
    alert alerts monitoring latency errors error traffic cpu memory disk queue job deploy
    deployment system kubernetes k8s kubelet autoscaler hpa load usage rate requests
    connections pool redis postgres postgresql mysql nginx it's""".split()
)
_NO_OBJECT = frozenset(
    """to by from at in on for after within over under again itself automatically briefly
    back down up""".split()
)
_EVENT = re.compile(
    r"\b(?:alerts?|alarms?|pages?|pagerduty|opsgenie|monitors?)\b.{0,80}?\b(?:fired|firing"
    r"|triggered|went off)\b|\b(?:fired|triggered)\b|\bpaged\b|\backnowledg|\back(?:ed|'d)?\b"
    r"|\bjoined\b|\bdeclared\b|\bescalated\b|\bnoticed\b|\bdetected\b|\breported\b"
    r"|\bstatus ?page\b|\bnotified\b|\bincident (?:opened|created|started|closed|resolved)\b"
    r"|\bbridge\b|\bslack\b|\bchannel\b|\bcomms?\b|\bcustomers?\b|\bsupport\b|\bconfirmed\b",
    re.I,
)
_DETECTION = re.compile(
    r"\b(?:fired|firing|triggered|went off|paged|page|acknowledg\w*|noticed|detected|reported"
    r"|declared|escalated|complain\w*)\b",
    re.I,
)
_WORD = re.compile(r"[^\s]+")
_PUNCT = "()[]{}\"'\u201c\u201d\u2018\u2019,;:.!?*_`"


def _words(text: str) -> list[str]:
    return [w.strip(_PUNCT) for w in _WORD.findall(text) if w.strip(_PUNCT)]


def _is_action(text: str) -> bool:
    """Is the sentence's main verb an action ("Restarted pgbouncer", "Priya rolled back the
    deploy")? A thing's verb ("Latency increased to 2 s", "the pod restarted") is not one, nor
    is a verb with no object after a named subject ("Errors dropped briefly")."""
    words = _words(strip_fillers(text.replace("`", "")))
    person = False
    subject = False
    for i, word in enumerate(words[:7]):
        low = word.lower()
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        verb_end = 0
        if low in _PARTICLES and nxt == _PARTICLES[low]:
            verb_end = i + 2
        elif (
            low in _ACTION_WORDS
            and nxt not in _NOT_ACTION_NEXT.get(low, ())
            and nxt not in _NOUN_NEXT
            and nxt not in _EVENT_WORDS
        ):
            verb_end = i + 1
        if verb_end and nxt == "of" and any(w.lower() in _NOUN_NEXT for w in words[i + 2 :]):
            return False  # "Deploy of v7 completed": a noun, and what happened to it
        if verb_end:
            if not subject:
                return True
            obj = words[verb_end].lower() if verb_end < len(words) else ""
            return person and bool(obj) and not _no_object(obj)
        if low in _EVENT_WORDS:
            return False
        if low in _PERSONS or word.startswith("@"):
            person = subject = True
        elif low in _FILLER_WORDS:
            continue
        elif low in _THINGS:
            subject = True
        elif word[:1].isupper() and word[1:].islower() and word.isalpha():
            person = person or i == 0 or subject  # a name: "Priya", "Tomasz Wójcik"
            subject = True
        else:
            return False
    return False


def _no_object(word: str) -> bool:
    return word in _NO_OBJECT or word.endswith("ly") or word[:1].isdigit()


# --- entries -------------------------------------------------------------------------------
@dataclass
class _Entry:
    segs: list[Seg]
    section: str  # _TIMELINE | _RESPONSE
    section_id: int
    at: str | None = None  # a table's time cell
    heading_at: str | None = None  # the time heading it is under, unless it has a time
    blocks: list[CodeBlock] = field(default_factory=list)


@dataclass
class _Drafted:
    step: DraftStep
    entry: _Entry


class _Reader:
    """One walk over the document's nodes: sections, entries, notes, the title's candidates."""

    def __init__(self, trust_bare: bool) -> None:
        self.trust_bare = trust_bare  # HTML: a command found in prose is the page's text
        self.section: str | None = None
        self.section_level = 0
        self.section_id = 0
        self.sections: list[str] = []
        self.entries: list[_Entry] = []
        self.loose: list[_Entry] = []  # time-stamped entries outside any known section
        self.notes: list[str] = []
        self.last: _Entry | None = None
        self.heading_at: str | None = None  # a time heading in the timeline
        self.h1: str | None = None
        self.lines: list[str] = []  # the first lines, for a title

    def walk(self, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Heading):
                text = node.inline.render().replace("`", "").strip()
                if len(self.lines) < 12 and text:
                    self.lines.append(text)
                if node.level == 1 and self.h1 is None and text:
                    self.h1 = text
                self.heading(text, node.level)
            elif isinstance(node, Paragraph):
                self.paragraph(node.inline)
            elif isinstance(node, ListBlock):
                self.list_block(node)
            elif isinstance(node, Table):
                self.table(node)
            elif isinstance(node, CodeBlock):
                self.code(node)

    def heading(self, text: str, level: int, *, whole: bool = False) -> None:
        if not text:
            return  # the plain-text reader closes a "Label:" section with an empty heading
        kind = _section_of(text, whole=whole)
        steps = self.section in (_TIMELINE, _RESPONSE)
        deeper = steps and level > self.section_level
        self.last = None
        self.heading_at = None
        if kind == _OTHER and deeper:
            kind = None  # "### Detection" inside the timeline is a part of it
        if kind is not None:
            self.section, self.section_level = kind, level
            self.section_id += 1
            self.sections.append(kind)
        elif deeper:
            if _WHOLE_TIME.match(text) and any(ch.isdigit() for ch in text):
                self.heading_at = text  # "### 14:02", the entries under it were then
        elif self.section is None or level <= self.section_level:
            self.section, self.section_level = None, level

    def paragraph(self, inline: Inline) -> None:
        for segs in _lines(inline.segs):
            text = render_segs(segs)
            if len(self.lines) < 12 and text:
                self.lines.append(text)
            words = len(text.split())
            if 0 < words <= _LINE_HEADING_WORDS and _section_of(text, whole=True):
                self.heading(text, self.section_level or 2, whole=True)
                continue
            if self.section == _NOTES:
                self.note(segs, continued=self._continues(segs))
            elif self.section in (_TIMELINE, _RESPONSE):
                if _TIMES_REMARK.match(text):
                    continue
                if self.last is not None and self._continues(segs):
                    self.last.segs += [Seg("text", " ", segs[0].line), *segs]
                else:
                    self.add(segs)
            elif self.section is None and _LEADING_TIME.match(text):
                self.loose.append(self._entry(segs))

    def _continues(self, segs: list[Seg]) -> bool:
        """Does this line go on with the entry above (a sentence wrapped onto it)?"""
        previous = render_segs(self.last.segs) if self.last is not None else ""
        if self.section == _NOTES:
            previous = self.notes[-1] if self.notes else ""
        text = render_segs(segs)
        if not previous or _LEADING_TIME.match(text) or previous.endswith((".", "!", "?")):
            return False
        if text[:1].isupper():
            return previous.endswith((",", ":", "(", "-", "\u2013", "\u2014", " and", " or"))
        return True  # a lower-case word or a command goes on with the sentence

    def list_block(self, block: ListBlock) -> None:
        for item in block.items:
            segs: list[Seg] = []
            started = False
            for node in item.body:
                if isinstance(node, Paragraph) and not started:
                    if segs:
                        segs.append(Seg("text", " ", node.inline.start))
                    segs += node.inline.segs
                    continue
                if not started:
                    self.item(segs)
                    started = True
                self.walk([node])
            if not started:
                self.item(segs)

    def item(self, segs: list[Seg]) -> None:
        if self.section == _NOTES:
            self.note(segs, continued=False)
            return
        parts = _split_at_times(segs)
        for part in parts:
            if self.section in (_TIMELINE, _RESPONSE):
                self.add(part)
            elif self.section is None and _LEADING_TIME.match(render_segs(part)):
                self.loose.append(self._entry(part))
                self.last = None

    def table(self, table: Table) -> None:
        rows = [row for row in table.rows if any(c.segs for c in row.cells)]
        if not rows:
            return
        header = rows[0]
        names = [c.render() for c in header.cells]
        has_header = header.header and not _WHOLE_TIME.match(names[0] if names else "")
        body = rows[1:] if has_header else rows
        if self.section == _NOTES:
            for row in body:
                cells = [c.render() for c in row.cells if c.render()]
                if cells:
                    self.notes.append(" \u2014 ".join(cells))
            return
        time_col = _time_column(names if has_header else [], [r.cells for r in body])
        event_cols = [
            k
            for k, name in enumerate(names)
            if k != time_col and has_header and _EVENT_HEADER.search(name)
        ] or [
            k
            for k in range(len(names))
            if k != time_col and not (has_header and _WHO_HEADER.search(names[k]))
        ]
        for row in body:
            segs: list[Seg] = []
            for k in event_cols:
                if k < len(row.cells) and row.cells[k].segs:
                    if segs:
                        segs.append(Seg("text", " ", row.line))
                    segs += row.cells[k].segs
            at = row.cells[time_col].render().strip() if time_col is not None else None
            if not segs:
                continue
            entry = self._entry(segs)
            entry.at = at or None
            if self.section in (_TIMELINE, _RESPONSE):
                self.entries.append(entry)
                self.last = entry
            elif self.section is None and at and _WHOLE_TIME.match(at):
                self.loose.append(entry)

    def code(self, block: CodeBlock) -> None:
        if self.section in (_TIMELINE, _RESPONSE):
            if self.last is None:
                self.add([])
            assert self.last is not None
            self.last.blocks.append(block)
        elif self.section == _NOTES and self.notes:
            kind = block_kind(block.info, block.lines, self.notes[-1])
            if kind == "command":
                commands = extract_commands(block.info, block.lines, block.start)
                self.notes[-1] += "".join(f" `{c.text}`" for c in commands if "\n" not in c.text)

    def note(self, segs: list[Seg], *, continued: bool) -> None:
        text = re.sub(r"^\[[ xX]?\]\s*", "", render_segs(segs)).strip()
        if not text:
            return
        if continued and self.notes:
            self.notes[-1] += " " + text
        else:
            self.notes.append(text)

    def add(self, segs: list[Seg]) -> None:
        last = self.last
        # a command block, then the words for it: "Rolled back with the command above."
        if (
            last is not None
            and last.blocks
            and not last.segs
            and segs
            and not any(s.kind == "code" for s in segs)
            and _is_action(render_segs(segs))
        ):
            last.segs = self._entry(segs).segs
            self.last = None  # the words close it: a block after them is another's
            return
        entry = self._entry(segs)
        self.entries.append(entry)
        self.last = entry

    def _entry(self, segs: list[Seg]) -> _Entry:
        if self.trust_bare:
            segs = [Seg(s.kind, s.value, s.line, True, s.href, s.bare) for s in segs]
        section = self.section if self.section in (_TIMELINE, _RESPONSE) else _TIMELINE
        return _Entry(list(segs), section, self.section_id, heading_at=self.heading_at)


def _lines(segs: list[Seg]) -> list[list[Seg]]:
    lines: list[list[Seg]] = []
    for seg in segs:
        if not lines or seg.line != lines[-1][0].line:
            if seg.kind == "text" and not seg.value.strip():
                continue  # the space a line break leaves
            lines.append([seg])
        else:
            lines[-1].append(seg)
    return lines


def _split_at_times(segs: list[Seg]) -> list[list[Seg]]:
    """A list item that runs several time-stamped lines together: one entry per line."""
    lines = _lines(segs)
    if len(lines) < 2 or not all(_LEADING_TIME.match(render_segs(line)) for line in lines):
        return [segs]
    return lines


def _time_column(names: list[str], rows: list[list[Inline]]) -> int | None:
    for k, name in enumerate(names):
        if _TIME_HEADER.search(name):
            return k
    if rows and rows[0]:
        width = min(len(r) for r in rows)
        for k in range(width):
            cells = [r[k].render() for r in rows if r[k].segs]
            if cells and all(_WHOLE_TIME.match(c) and any(ch.isdigit() for ch in c) for c in cells):
                return k
    return None


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


def _entry_steps(entry: _Entry) -> tuple[list[DraftStep], str]:
    """The steps an entry gives, and its text (for the reviewer's notes)."""
    at, segs = _take_time(entry.segs)
    at = entry.at or at or entry.heading_at
    text = render_segs(segs)
    steps: list[DraftStep] = []
    for sentence in split_sentences(segs) if segs else []:
        if sentence.commands:
            steps += _command_steps(sentence)
        elif _is_action(sentence.text):
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
    return frozenset(w for w in _words(text.lower()) if w not in _STOP)


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
    for word in _words(text.lower()):
        if word not in _PERSONS and word not in _FILLER_WORDS:
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
    reader = _Reader(trust_bare=fmt_key == "html")
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
        has_sections = any(k in (_TIMELINE, _RESPONSE) for k in reader.sections) or entries
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


def _steps(entries: list[_Entry]) -> tuple[list[_Drafted], list[str]]:
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
            (events if _EVENT.search(text) else seen).append(text)
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
    entries: list[_Entry], per_entry: list[tuple[list[DraftStep], str]]
) -> dict[int, int]:
    """Per timeline section, the index of its first entry that tells the incident was detected
    (an alert fired, a page, a report) when actions come before it."""
    points: dict[int, int] = {}
    acted: set[int] = set()
    for k, (entry, (steps, text)) in enumerate(zip(entries, per_entry, strict=True)):
        if entry.section != _TIMELINE or entry.section_id in points:
            continue
        if steps:
            acted.add(entry.section_id)
        elif _DETECTION.search(text) and entry.section_id in acted:
            points[entry.section_id] = k
        elif _DETECTION.search(text):
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
_TITLE_PREFIX = re.compile(
    r"^\W*(?:post[- ]?mortem|incident (?:review|report|retrospective|retro|postmortem|analysis)"
    r"|retrospective|pir|rca|root cause analysis|blameless postmortem)\b"
    r"\s*(?:[:|#\u2013\u2014-]+\s*)?",
    re.I,
)
_TITLE_NOISE = re.compile(
    rf"\b(?:INC|INCIDENT|SEV)[- #]?\d+\b|#\d+\b|\b{_DATE}\b|\b\d{{4}}\b(?=\s*[)\]]|$)",
    re.I,
)
_CHROME = re.compile(
    r"^(?:created by\b|last updated\b|owned by\b|authors?\s*:|status\s*:|date\s*:|labels?\s*:)"
    r"|\b(?:min read|minutes? read|last updated)\b",
    re.I,
)
_BREADCRUMB = re.compile(r"\s[/>\u203a\u00bb]\s")
_BYLINE = re.compile(r"^created by\b|\blast updated\b", re.I)


def _doc_title(front_title: str | None, reader: _Reader) -> str:
    candidates = [front_title, reader.h1, *_first_lines(reader.lines)]
    for candidate in candidates:
        cleaned = _clean_title(candidate or "")
        if cleaned:
            return cleaned
    return "Untitled postmortem"


def _first_lines(lines: list[str]) -> list[str]:
    """The document's title line: the one above a wiki byline, else the first that is not
    chrome (a breadcrumb, an author line) or a section's name."""
    byline = next((k for k, line in enumerate(lines) if _BYLINE.search(line)), None)
    if byline:
        return [lines[byline - 1]]
    return [line for line in lines[:6] if not _chrome(line) and not _section_of(line, whole=True)][
        :1
    ]


def _chrome(line: str) -> bool:
    parts = _BREADCRUMB.split(line)
    crumbs = len(parts) >= 2 and all(0 < len(part.strip()) <= 40 for part in parts)
    return crumbs or bool(_CHROME.search(line.strip()))


def _clean_title(text: str) -> str:
    text = " ".join(text.replace("`", "").split())
    for _ in range(2):
        text = _TITLE_PREFIX.sub("", text)
        text = _TITLE_NOISE.sub("", text)
        text = re.sub(r"\(\s*[,;\s]*\)|\[\s*[,;\s]*\]", "", text)
        text = re.sub(r"\(\s*[,;]\s*|\s*[,;]\s*\)", lambda m: m.group().strip(" ,;"), text)
        text = text.strip(" \t:|,;\u00b7\u2013\u2014-")
    text = re.sub(r"\s+([,;:)])", r"\1", " ".join(text.split()))
    return text[:150].rstrip()


__all__ = ["FORMATS", "MAX_BYTES", "draft_from_postmortem"]
