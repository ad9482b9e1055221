"""Prechecks and verifications: a read-only command the runbook states as a check of a change.

Runs once every step exists. A green command step whose words say it checks something ("make
sure …", "first confirm that …", "you should see …", "wait until … shows …", "verify with …")
and that sits right before or after a change (a yellow or red command step the classifier
knows as a change, not a session such as ``psql`` whose next commands run inside it) leaves the
step list and becomes that change's ``precheck`` or ``verify``: the executor runs it around the
change, so it must not also run as a step of its own. Explicit lines right under a step
(``precheck: `cmd```, ``verify: `cmd` within 5m expect "Running"``) say the same without
guessing. The check's command is the step's command, verbatim from the source: nothing is
invented. A command stated as a check that is not read-only stays a step, with a warning.

``mitigation`` reads front-matter ``mitigated_when``.
"""

from __future__ import annotations

import re
from typing import Any

from ddoc.runbooks.model import Check, Mitigation, RiskClass, Step, StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import STATE_CHANGING, BuildState, Classifier

PRECHECK = "precheck"
VERIFY = "verify"
_UNTIL_DEFAULT = 300  # "wait until … shows …" without a duration: retry for five minutes
# A SQL statement or a redis-cli prompt line runs inside a client session; a check is a
# command the executor runs on its own.
_IN_A_SESSION = frozenset({"sql", "redis"})
# The risk classifier's reasons for a command that is no known change: one that opens a session
# (psql, ssh, kubectl exec without a command), where what follows runs inside it; a program or
# subcommand it does not know, yellow only for want of proof (often a read: `gitlab-patronictl
# list`). Words next to such a command check nothing about it.
_NO_KNOWN_CHANGE = re.compile(
    r"interactive|without a command|starts a shell|unknown command|unrecognised \w+ subcommand"
)
# A command that never ends by itself (`watch`, `kubectl get -w`, `tail -f`, `logs --follow`)
# cannot be retried until it passes.
_ENDLESS = re.compile(
    r"^(?:sudo\s+)?watch\s|\bkubectl\b[^|;&]*\s(?:-w|--watch)\b"
    r"|\b(?:tail|logs|journalctl)\b[^|;&]*\s(?:-f|-F|--follow)\b"
)
# More commands than this made from the same words are a paste, not prose stating a check.
_SENTENCE_COMMANDS = 8
_MANUAL_GAP = 2  # manual steps ("Give it a minute.") allowed between a check and its change

# --- the words that make a command a check ----------------------------------------------------
# Words that place the check after the change.
_AFTER = re.compile(
    r"\b(?:wait(?:ing)? (?:until|till|for)|(?:once|after|when) (?:it|the|that|this|they|all)\b"
    r"|afterwards|after(?:wards)? that|then (?:confirm|verify|make sure|ensure|check that)"
    r"|to (?:confirm|verify|check)\b|(?:is|are|comes?|came) back\b|back to normal"
    r"|recovered|(?:confirm|verify|check|validate)(?:ed)? (?:it |this |that )?(?:with|using|via"
    r"|by running)|now (?:check|confirm|verify)|has (?:recovered|finished|completed|rolled out)"
    r"|(?:rollout|restart|deploy(?:ment)?|migration|change|fix|failover) (?:is |has )?"
    r"(?:done|finished|complete|worked|succeeded|took effect))",
    re.I,
)
# Words that place the check before the change. "first" alone orders any instruction ("restart
# the consumers first"): only with a check's verb it makes a precheck.
_BEFORE = re.compile(
    r"\b(?:before (?:you|we|doing|running|proceeding|going|continuing|touching|making|any"
    r"|the|this|that|[a-z]+ing)\b|(?:check|confirm|verify|validate|make sure|ensure)\b[^.;]{0,80}"
    r"\bfirst\b|first,?\s+(?:confirm|verify|make sure|ensure|validate|check that)|beforehand"
    r"|prior to|pre-?check|sanity[- ]check|up front)",
    re.I,
)
# Words about the result to see, which is mostly after a change: "you should see …".
_RESULT = re.compile(
    r"\b(?:you should (?:now |then )?see|should (?:now |then )?(?:show|see|say|print|return"
    r"|report|list|be|become|come|drop|go|settle|recover|reach|have|stay|read|contain|display"
    r"|converge|clear|look|succeed|pass|exit)|it should|they should|expect(?:ed|ing)?\b)",
    re.I,
)
# A check whose place only its position tells: "verify that …", "make sure …", "ensure …".
_CHECKING = re.compile(
    r"\b(?:make sure|ensure|verify|confirm|double-?check|validate|check that"
    r"|check (?:the )?\w+ (?:is|are|has|have)\b)",
    re.I,
)
# The words right before a command that name it the check: "… and confirm with `cmd`".
_CHECK_WITH = re.compile(
    r"\b(?:verify|confirm|check|validate|double-?check)(?:ed)?\s+(?:it\s+|this\s+|that\s+)?"
    r"(?:with|using|via|by running)\W*$",
    re.I,
)
# "make sure to drain it", "ensure you have access": an instruction or a prerequisite.
_NOT_A_CHECK = re.compile(r"\b(?:make sure|ensure|be sure) (?:to|you|your)\b", re.I)
# "make sure …", "ensure …": rather a precheck, when a change follows.
_ENSURE = re.compile(r"\b(?:make sure|ensure)\b", re.I)

# --- expectations ---------------------------------------------------------------------------
_QUOTED = r"(?:`([^`]+)`|\"([^\"]+)\"|“([^”]+)”|'([^']+)')"
_OUTPUT_LITERAL = re.compile(
    r"\b(?:shows?|showing|see|prints?|returns?|contains?|containing|says?|reports?|lists?"
    r"|outputs?|displays?|reads?|expect(?:ed|ing)?|be|is|are|becomes?|reach(?:es)?)"
    r"\s+(?:(?:the|a|an|all|every|only|them|it|\w+)\s+){0,3}?" + _QUOTED,
    re.I,
)
# Unquoted output that looks like a program wrote it ("you should see Replica_SQL_Running: Yes -
# …"): a key, a path, an assignment; taken up to where the prose resumes.
_OUTPUT_WORDS = re.compile(
    r"\b(?:should (?:now )?(?:see|show|print|say|read|report|list|return)|shows?|prints?|says?)"
    r"\s+(?P<out>[\w./:=-]+(?:\s+[\w./:=-]+){0,3}?)"
    r"(?=\s+[-\u2013\u2014]\s|[,;)]|\.?\s*$|\s+(?:and|within|for|in|after|then|once|when)\b)"
)
_MACHINE = re.compile(r"[_:=/]|\b[A-Z][a-z]+[A-Z]\w*\b")
# Literal status words a command prints, taken only as written (case kept).
_STATUS = re.compile(
    r"\b(?:successfully rolled out|Running|Ready|Completed|Bound|Healthy|PONG|active \(running\)"
    r"|Synced|InSync|ESTABLISHED|UP)(?![\w(])"
)
# …only after words that say a program shows it ("until it says successfully rolled out"), not
# in prose ("the certificate has been successfully rolled out").
_STATUS_SHOWN = re.compile(
    r"\b(?:shows?|says?|prints?|see|reports?|until|reads?|returns?|outputs?|lists?|displays?"
    r"|is|are|be|becomes?|as)\s+(?:[\w-]+\s+){0,3}?(?P<status>" + _STATUS.pattern + ")"
)
_UNIT = r"(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)\b"
_COMPARISONS = {
    "below": "<",
    "under": "<",
    "less than": "<",
    "fewer than": "<",
    "lower than": "<",
    "at most": "<=",
    "no more than": "<=",
    "not more than": "<=",
    "above": ">",
    "over": ">",
    "more than": ">",
    "greater than": ">",
    "higher than": ">",
    "at least": ">=",
}
_THRESHOLD = re.compile(
    r"\b(" + "|".join(sorted(_COMPARISONS, key=len, reverse=True)) + r")\s+(-?\d+(?:\.\d+)?)"
    r"(?!\s*" + _UNIT + r")(?![\d.])",
    re.I,
)
_ZERO_COUNT = re.compile(
    r"\b(?:0|zero)\s+(?:[a-z-]+\s+)?(?:restarts?|errors?|failures?|failed|pending|unavailable"
    r"|crash\w*|evictions?|shards?|pods?|replicas?|messages?|jobs?|connections?|alerts?|5\d\ds?)\b",
    re.I,
)
# "should print 0", "returns 3": that number, not a substring of a longer one.
_EXACT_NUMBER = re.compile(
    r"\b(?:print|prints|show|shows|say|says|output|outputs|report|reports|be)"
    r"\s+(-?\d+(?:\.\d+)?)(?=\s*(?:[.,;)]|$))",
    re.I,
)
# An explicit line's threshold: "expect < 5", "expect <= 0".
_EXPECT_OP = re.compile(r"\bexpect\s+(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)", re.I)

# --- windows ----------------------------------------------------------------------------------
_WITHIN = re.compile(
    r"\b(?:within|for up to|up to|wait(?:ing)?(?: for)?(?: about| up to)?|give it(?: up to)?"
    r"|allow(?: up to)?|in the next|timeout|about|around|roughly)\s+(\d+)\s*" + _UNIT,
    re.I,
)
_INTERVAL = re.compile(r"\bevery\s+(\d+)\s*" + _UNIT, re.I)
_UNTIL = re.compile(r"\b(?:wait(?:ing)? (?:until|till|for)|until)\b", re.I)
_WAIT_STEP = re.compile(r"^\W*(?:then,?\s+)?wait\b", re.I)
_DURATION = re.compile(r"^\s*(\d+)\s*" + _UNIT + r"\s*$", re.I)

_CODE_SPAN = re.compile(r"`+[^`]+`+")


def attach_checks(state: BuildState) -> None:
    """Turn the green command steps the runbook states as checks into prechecks and verifies
    of the change next to them, then renumber the steps that remain."""
    steps = state.steps
    referenced = {b.goto for s in steps for b in s.branches if b.goto}
    # Steps made from the same words (one sentence, two commands), found once: a 10,000-line
    # paste must not compare every step with every other.
    same_words: dict[tuple[str, int, int], list[Step]] = {}
    for s in steps:
        if s.command:
            same_words.setdefault((s.text, s.source.start_line, s.source.end_line), []).append(s)
    taken: set[int] = set()
    for index, step in enumerate(steps):
        if (
            step.kind != StepKind.COMMAND
            or step.command is None
            or step.id in referenced
            or step.rollback is not None  # the runbook says how to undo it: a change after all
            or step.language in _IN_A_SESSION
            or _ENDLESS.search(step.command)
        ):
            continue
        key = (step.text, step.source.start_line, step.source.end_line)
        if len(same_words[key]) > _SENTENCE_COMMANDS:
            continue  # a pasted blob (log lines, a shell session), not a sentence about a check
        others = [s.command for s in same_words[key] if s is not step and s.command]
        placed = _placement(steps, index, taken, state.step_section, others)
        if placed is None:
            continue
        slot, target, clause = placed
        if step.risk != RiskClass.GREEN:
            if not _stated_outright(step, clause):
                continue  # a change that merely sits next to check words
            state.warnings.append(
                f"line {step.source.start_line}: `{_short(step.command)}` reads as a {slot} of "
                f"{target.id} but is not read-only ({step.risk}: {step.risk_reason}); "
                "it stays a step of its own"
            )
            continue
        check = _check(step, clause)
        if check.within_seconds == 0:
            check.within_seconds = _wait_between(steps, index, target)
        setattr(target, slot, check)
        taken.add(index)
    if taken:
        _drop(state, taken)


def _placement(
    steps: list[Step], index: int, taken: set[int], section: dict[str, int], others: list[str]
) -> tuple[str, Step, str] | None:
    """Whether steps[index] is a check, of which change and in which slot, and the words
    about it (its clause). Words that only say "check" leave the place to the position: the
    change must then be under the same heading."""
    step = steps[index]
    assert step.command is not None
    clause = _clause(step.text, step.command, others)
    explicit = lx.EXPLICIT_CHECK.match(clause) or lx.EXPLICIT_CHECK.match(step.text)
    if explicit is not None:
        # An explicit line belongs to the step right above it (past its other checks).
        above = next((steps[j] for j in range(index - 1, -1, -1) if j not in taken), None)
        slot = PRECHECK if explicit.group("kind").lower().startswith("pre") else VERIFY
        if above is not None and above.command is not None and getattr(above, slot) is None:
            return slot, above, clause
        return None
    following = steps[index + 1] if index + 1 < len(steps) else None
    if following is not None and any(b.check for b in following.branches):
        return None  # the decision after it reads its result
    if lx.PREREQ_SENTENCE.search(clause) or _NOT_A_CHECK.search(clause):
        return None
    before = _neighbour(steps, index, -1, taken)
    after = _neighbour(steps, index, 1, taken)
    verify = (VERIFY, before, clause) if before is not None and before.verify is None else None
    precheck = (PRECHECK, after, clause) if after is not None and after.precheck is None else None
    if _AFTER.search(clause):
        return verify
    if _BEFORE.search(clause):
        return precheck
    near = [p for p in (precheck, verify) if p is not None and section[p[1].id] == section[step.id]]
    if _ENSURE.search(clause):
        return next(iter(near), None)
    if _RESULT.search(clause):
        return verify
    if _CHECKING.search(clause):
        return next(reversed(near), None)
    return None


def _stated_outright(step: Step, clause: str) -> bool:
    """Whether the runbook says in so many words that this command is the check: an explicit
    line, or "verify with `cmd`" / "confirm using `cmd`" right before it."""
    assert step.command is not None
    if lx.EXPLICIT_CHECK.match(clause) or lx.EXPLICIT_CHECK.match(step.text):
        return True
    before = clause.split(step.command, 1)[0] if step.command in clause else ""
    return _CHECK_WITH.search(before) is not None


def _neighbour(steps: list[Step], index: int, direction: int, taken: set[int]) -> Step | None:
    """The change next to steps[index] in ``direction``: the nearest command step past at
    most a few manual ones (and checks already attached), if it changes something."""
    manual = 0
    j = index + direction
    while 0 <= j < len(steps):
        other = steps[j]
        if j in taken:
            j += direction
            continue
        if other.kind == StepKind.MANUAL and manual < _MANUAL_GAP:
            manual += 1
            j += direction
            continue
        if (
            other.kind == StepKind.COMMAND
            and other.risk in STATE_CHANGING
            and not _NO_KNOWN_CHANGE.search(other.risk_reason or "")
        ):
            return other
        return None
    return None


def _clause(text: str, command: str, others: list[str]) -> str:
    """The words about one command of a step's text: from the command before it (or the
    start) to the command after it (or the end), whether written as a code span or bare; a
    code span that is an expected output (`Running`) is words. A code block's intro has no
    command in it: all of it."""
    at = text.find(command)
    if at < 0:
        return text
    bounds = [(m.start(), m.end()) for m in _CODE_SPAN.finditer(text) if not _is_literal(m.group())]
    for other in others:
        found = text.find(other)
        if found >= 0 and not found <= at < found + len(other):
            bounds.append((found, found + len(other)))
    start, stop = 0, len(text)
    for begin, end in sorted(bounds):
        if begin <= at < end:
            continue
        if end <= at:
            start = end
        elif begin >= at + len(command):
            stop = begin
            break
    return text[start:stop].strip()


def _is_literal(span: str) -> bool:
    """A code span that is an expected output (`Running`, `0`), not a command."""
    inner = span.strip("`").strip()
    return " " not in inner or _STATUS.fullmatch(inner) is not None


def _check(step: Step, clause: str) -> Check:
    assert step.command is not None
    words = _without(clause, step.command)
    check = Check(
        command=step.command,
        expect=expectation(words),
        within_seconds=window(words),
        text=step.text,
        source=step.source,
    )
    interval = _INTERVAL.search(words)
    if interval is not None:
        check.interval_seconds = max(1, _seconds(interval.group(1), interval.group(0)))
    return check


def _without(clause: str, command: str) -> str:
    """The clause with its command blanked: a command's own words are no expectation."""
    return clause.replace(f"`{command}`", " ").replace(command, " ")


def expectation(words: str) -> dict[str, Any]:
    """What the words say the check's output must be; exit code 0 when they say nothing
    more. Output patterns are only literal text of the source."""
    explicit = _EXPECT_OP.search(words)
    if explicit is not None:
        return {"threshold": {"op": explicit.group(1), "value": _number(explicit.group(2))}}
    literal = _OUTPUT_LITERAL.search(words)
    if literal is not None:
        value = next(g for g in literal.groups() if g)
        if not (value.strip().isdigit() and _THRESHOLD.search(words)):
            return {"output_pattern": value}
    status = _STATUS_SHOWN.search(words)
    if status is not None:
        return {"output_pattern": status.group("status")}
    written = _OUTPUT_WORDS.search(words)
    if written is not None and _MACHINE.search(written.group("out")):
        return {"output_pattern": written.group("out")}
    exact = _EXACT_NUMBER.search(words)
    if exact is not None:
        return {"threshold": {"op": "==", "value": _number(exact.group(1))}}
    threshold = _THRESHOLD.search(words)
    if threshold is not None:
        op = _COMPARISONS[threshold.group(1).lower()]
        return {"threshold": {"op": op, "value": _number(threshold.group(2))}}
    if _ZERO_COUNT.search(words):
        return {"threshold": {"op": "<=", "value": 0}}
    return {"exit_code": 0}


def window(words: str) -> int:
    """How long the words say to keep retrying, in seconds (0: one try)."""
    m = _WITHIN.search(words)
    if m is not None:
        return _seconds(m.group(1), m.group(0))
    return _UNTIL_DEFAULT if _UNTIL.search(words) else 0


def _wait_between(steps: list[Step], index: int, target: Step) -> int:
    """A manual "Wait 2 minutes." between a change and its verification is its window."""
    lo, hi = sorted((index, steps.index(target)))
    for step in steps[lo + 1 : hi]:
        if step.kind == StepKind.MANUAL and _WAIT_STEP.match(step.text):
            return window(step.text)
    return 0


def _seconds(amount: str, phrase: str) -> int:
    unit = phrase.rstrip().rsplit(None, 1)[-1].lower().lstrip("0123456789")
    value = int(amount)
    if unit.startswith("h"):
        return value * 3600
    if unit.startswith("m"):
        return value * 60
    return value


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _drop(state: BuildState, taken: set[int]) -> None:
    """Remove the steps that became checks; renumber the rest and their branches' targets."""
    kept = [s for i, s in enumerate(state.steps) if i not in taken]
    renamed: dict[str, str] = {}
    for number, step in enumerate(kept, 1):
        renamed[step.id] = f"s{number}"
    for step in kept:
        step.id = renamed[step.id]
        for branch in step.branches:
            if branch.goto is not None:
                branch.goto = renamed.get(branch.goto)
    state.steps[:] = kept


# --- front-matter -----------------------------------------------------------------------------
def mitigation(
    front: dict[str, Any], classify: Classifier, warnings: list[str]
) -> Mitigation | None:
    """Front-matter ``mitigated_when``: ``alert_resolved``, ``within`` (``30m``, seconds) and an
    optional read-only ``check: {command, expect, within, every}``. A bad value is a warning."""
    raw = front.get("mitigated_when")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        warnings.append("front-matter `mitigated_when` should be a mapping; ignored")
        return None
    result = Mitigation()
    resolved = raw.get("alert_resolved", True)
    if isinstance(resolved, bool):
        result.alert_resolved = resolved
    else:
        warnings.append("front-matter `mitigated_when.alert_resolved` should be true or false")
    if "within" in raw:
        seconds = duration(raw["within"])
        if seconds is None:
            warnings.append(
                "front-matter `mitigated_when.within` should be a duration such as 30m; "
                f"kept {result.within_seconds}s"
            )
        else:
            result.within_seconds = seconds
    if raw.get("check") is not None:
        result.check = _front_check(raw["check"], classify, warnings)
    return result


def _front_check(raw: Any, classify: Classifier, warnings: list[str]) -> Check | None:
    where = "front-matter `mitigated_when.check`"
    if isinstance(raw, str):
        raw = {"command": raw}
    command = raw.get("command") if isinstance(raw, dict) else None
    if not isinstance(command, str) or not command.strip():
        warnings.append(f"{where} needs a `command`; ignored")
        return None
    command = command.strip()
    try:
        level, reason = classify(command, None)
    except Exception as exc:  # a classifier bug must not lose the runbook
        warnings.append(f"{where}: `{_short(command)}` could not be classified ({exc}); ignored")
        return None
    if RiskClass(level) != RiskClass.GREEN:
        warnings.append(
            f"{where}: `{_short(command)}` is not read-only ({level}: {reason}); ignored"
        )
        return None
    check = Check(command=command, text=command)
    expect = _front_expect(raw.get("expect"))
    if expect is None:
        warnings.append(f"{where}.expect is not understood; expecting exit code 0")
    else:
        check.expect = expect
    for key, attr in (("within", "within_seconds"), ("every", "interval_seconds")):
        if key in raw:
            seconds = duration(raw[key])
            if seconds is None:
                warnings.append(f"{where}.{key} should be a duration such as 5m; ignored")
            else:
                setattr(check, attr, seconds)
    return check


def _front_expect(raw: Any) -> dict[str, Any] | None:
    """``{exit_code: 0}``, ``{output_pattern: X}``, ``{threshold: {op, value}}`` or words
    ("contains `Running`", "below 5", "exits 0"); None when it is none of those."""
    if raw is None:
        return {"exit_code": 0}
    if isinstance(raw, str):
        return expectation(raw) if raw.strip() else None
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    if isinstance(raw.get("exit_code"), int) and not isinstance(raw["exit_code"], bool):
        return {"exit_code": raw["exit_code"]}
    if isinstance(raw.get("output_pattern"), str) and raw["output_pattern"]:
        return {"output_pattern": raw["output_pattern"]}
    threshold = raw.get("threshold")
    if (
        isinstance(threshold, dict)
        and threshold.get("op") in ("<", "<=", ">", ">=", "==", "!=")
        and isinstance(threshold.get("value"), int | float)
        and not isinstance(threshold.get("value"), bool)
    ):
        return {"threshold": {"op": threshold["op"], "value": threshold["value"]}}
    return None


def duration(value: Any) -> int | None:
    """Seconds from ``1800``, ``"90s"``, ``"30m"``, ``"30 minutes"``, ``"1h"``; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is not None:
            return _seconds(m.group(1), m.group(0))
    return None


def _short(command: str, limit: int = 60) -> str:
    first = command.splitlines()[0] if command else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
