"""What the words of a postmortem say: when an entry happened (its time stamp), whether a
sentence is an action ("Restarted pgbouncer") or an event ("the alert fired"), and a title
without "Postmortem:", incident numbers and dates. The language heuristics of
`postmortem.py`, apart from its structure (sections, entries, steps)."""

from __future__ import annotations

import re

from ddoc.runbooks.parsing.lexicon import strip_fillers
from ddoc.runbooks.parsing.nodes import Seg

# --- time stamps ---------------------------------------------------------------------------
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
DATE = (
    rf"(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{4}}/\d{{2}}/\d{{2}}|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?"
    rf"|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTH}(?: \d{{4}})?)"
)
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:\s?[ap]\.?m\.?(?![a-z]))?"
_ZONE = (
    r"(?:\s?(?:UTC|GMT|Z|CET|CEST|EET|EEST|WET|WEST|BST|IST|JST|KST|SGT|HKT|AEST|AEDT|ACST|AWST"
    r"|NZST|NZDT|PST|PDT|PT|MST|MDT|MT|CST|CDT|CT|EST|EDT|ET|MSK|[+-]\d{2}:?\d{2})(?![\w]))?"
)
_STAMP = (
    rf"(?:{DATE}(?:T|,?\s+(?:at\s+)?))?{_CLOCK}(?:\s?[-\u2013]\s?{_CLOCK})?{_ZONE}"
    r"|T\s?[+-]\s?\d+(?:[:.]\d+)?\s?(?:s|secs?|m|mins?|minutes|h|hrs?|hours|d|days)?(?![\w])"
)
LEADING_TIME = re.compile(
    rf"^\s*(?:(?:at|around|approx\.?|~)\s*)?[\[(]?\s*(?P<at>{_STAMP})\s*[\])]?"
    r"(?:\s*[-\u2013\u2014:|,.>]+(?=\s)|(?=\s)|$)\s*",
    re.I,
)
WHOLE_TIME = re.compile(rf"^\s*[\[(]?\s*(?:{DATE}\s*)?(?:{_STAMP})?\s*[\])]?\s*$", re.I)
# "All times UTC.": a remark on the timeline, not an entry of it
TIMES_REMARK = re.compile(
    r"^\W*(?:all )?(?:times?|timestamps?)(?: are| shown)?(?: in)? [\w+:-]+(?: time)?\W*$", re.I
)
TIME_HEADER = re.compile(r"\b(?:time|when|timestamp|date|utc|t\+)", re.I)
EVENT_HEADER = re.compile(
    r"\b(?:event|events|action|actions|what|description|details?|activity|update|notes?)\b",
    re.I,
)
WHO_HEADER = re.compile(r"\b(?:who|owner|by|person|people|source|author|channel)\b", re.I)


def take_time(segs: list[Seg]) -> tuple[str | None, list[Seg]]:
    """The time an entry starts with, and the entry without it."""
    segs = [s for s in segs if s.kind == "code" or s.value]
    while segs and segs[0].kind == "text" and not segs[0].value.strip():
        segs = segs[1:]
    if not segs:
        return None, segs
    first = segs[0]
    if first.kind == "code":
        if WHOLE_TIME.match(first.value) and any(ch.isdigit() for ch in first.value):
            return first.value.strip(" []()"), segs[1:]
        return None, segs
    m = LEADING_TIME.match(first.value)
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
PERSONS = frozenset(
    """we i they he she someone on-call oncall engineer engineers sre sres dba dbas ic team
    responder responders commander primary secondary ops operator operators""".split()
)
FILLER_WORDS = frozenset(
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
EVENT = re.compile(
    r"\b(?:alerts?|alarms?|pages?|pagerduty|opsgenie|monitors?)\b.{0,80}?\b(?:fired|firing"
    r"|triggered|went off)\b|\b(?:fired|triggered)\b|\bpaged\b|\backnowledg|\back(?:ed|'d)?\b"
    r"|\bjoined\b|\bdeclared\b|\bescalated\b|\bnoticed\b|\bdetected\b|\breported\b"
    r"|\bstatus ?page\b|\bnotified\b|\bincident (?:opened|created|started|closed|resolved)\b"
    r"|\bbridge\b|\bslack\b|\bchannel\b|\bcomms?\b|\bcustomers?\b|\bsupport\b|\bconfirmed\b",
    re.I,
)
DETECTION = re.compile(
    r"\b(?:fired|firing|triggered|went off|paged|page|acknowledg\w*|noticed|detected|reported"
    r"|declared|escalated|complain\w*)\b",
    re.I,
)
_WORD = re.compile(r"[^\s]+")
_PUNCT = "()[]{}\"'\u201c\u201d\u2018\u2019,;:.!?*_`"


def word_list(text: str) -> list[str]:
    return [w.strip(_PUNCT) for w in _WORD.findall(text) if w.strip(_PUNCT)]


def is_action(text: str) -> bool:
    """Is the sentence's main verb an action ("Restarted pgbouncer", "Priya rolled back the
    deploy")? A thing's verb ("Latency increased to 2 s", "the pod restarted") is not one, nor
    is a verb with no object after a named subject ("Errors dropped briefly")."""
    words = word_list(strip_fillers(text.replace("`", "")))
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
        if low in PERSONS or word.startswith("@"):
            person = subject = True
        elif low in FILLER_WORDS:
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


# --- titles ------------------------------------------------------------------------------------
_TITLE_PREFIX = re.compile(
    r"^\W*(?:post[- ]?mortem|incident (?:review|report|retrospective|retro|postmortem|analysis)"
    r"|retrospective|pir|rca|root cause analysis|blameless postmortem)\b"
    r"\s*(?:[:|#\u2013\u2014-]+\s*)?",
    re.I,
)
_TITLE_NOISE = re.compile(
    rf"\b(?:INC|INCIDENT|SEV)[- #]?\d+\b|#\d+\b|\b{DATE}\b|\b\d{{4}}\b(?=\s*[)\]]|$)",
    re.I,
)


def clean_title(text: str) -> str:
    text = " ".join(text.replace("`", "").split())
    for _ in range(2):
        text = _TITLE_PREFIX.sub("", text)
        text = _TITLE_NOISE.sub("", text)
        text = re.sub(r"\(\s*[,;\s]*\)|\[\s*[,;\s]*\]", "", text)
        text = re.sub(r"\(\s*[,;]\s*|\s*[,;]\s*\)", lambda m: m.group().strip(" ,;"), text)
        text = text.strip(" \t:|,;\u00b7\u2013\u2014-")
    text = re.sub(r"\s+([,;:)])", r"\1", " ".join(text.split()))
    return text[:150].rstrip()
