"""A runbook's flowchart: a DOT graph of its parsed steps, drawn as SVG by Graphviz's `dot`.

`dot_source(parsed)` builds the graph from the JSON dict stored per runbook version
(`ParsedRunbook.to_dict()`, docs/RUNBOOK_SCHEMA.md); `render_svg(parsed)` runs `dot -Tsvg` and
returns one `<svg>` element that a page can inline as is. Graphviz is a Debian package
(`apt-get install graphviz`); without it `render_svg` raises `FlowchartUnavailable` and the
console shows the steps without their flowchart.

The graph follows what an execution does (workflows/execution/workflow.py), not only the order
of the document:

- a start node, then one node per step in document order, then an end node;
- a step goes on to the next one, except that a step reached through a decision's branch skips
  the other branches' target steps (an execution marks those "branch not taken");
- a decision (a diamond) has one edge per branch, labelled with its condition, to the branch's
  `goto` step; a branch without one, or whose `goto` is unknown or not after the decision,
  goes where the execution goes on: the first step after the decision that is no branch's
  target (or the end). A decision without an `otherwise` branch also has a dotted "neither"
  edge there (a human may answer that none applies; its branch steps are then skipped);
- a step with a rollback has a dashed edge to a note holding the undo command, marked
  "suggested" (derived by us, to be checked) or "from the runbook";
- consecutive steps of one parallel group (`parallel`, docs/RUNBOOK_SCHEMA.md) are drawn side by
  side in a dashed box labelled "in parallel", between a fork bar (every edge into the group goes
  there, and it has an edge to each step) and a join bar (each step's edge goes there, and it has
  the edge on). A run holding a decision is drawn in order.

Runbook text is untrusted: every label is escaped for DOT (and for Graphviz's HTML-like labels
and `\\N`-style escapes), characters XML cannot hold are dropped, and the SVG that comes back is
checked: only drawing elements, no script, no event handler, no reference outside the document
(links point at `#step-<id>` anchors, anything else is stripped).
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from typing import Any

from ddoc.platform.errors import Unavailable

# Above this many steps no flowchart is drawn (`dot` would take seconds and the picture would be
# unreadable): render_svg returns a small SVG that says so instead.
MAX_STEPS = 300

INSTALL_HINT = (
    "Graphviz's dot is needed to draw the flowchart: install Graphviz "
    "(on Debian/Ubuntu: apt-get install graphviz), or point DDOC_DOT at the dot binary"
)

# Fill colours, and the words that say the same thing in the label (colour is not the only cue).
RISK_FILL = {"green": "#c8e6c9", "yellow": "#fff3b0", "red": "#f8c4c4"}
NO_RISK_FILL = "#e4e4e4"  # manual, decision and escalate steps, and unrated commands
RISK_WORD = {"green": "read-only", "yellow": "reversible change", "red": "destructive"}

TEXT_CHARS = 40  # per line of a step's text, two lines at most
COMMAND_CHARS = 60  # the command's first line
CONDITION_CHARS = 40  # a branch's label

_FONT = "Helvetica,Arial,sans-serif"
_MONO = "Courier,monospace"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_STDERR_CHARS = 500


class FlowchartUnavailable(Unavailable):
    """No flowchart: `dot` is missing, failed or took too long (the message says which)."""


# -- escaping ----------------------------------------------------------------------------------

# What XML 1.0 cannot hold (C0 controls but tab/newline, surrogates, U+FFFE/U+FFFF) and the
# bidirectional overrides that could make a label read differently from what it says.
_NOT_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)


def _clean(text: object) -> str:
    """Text that XML can hold, whitespace runs (newlines included) as single spaces."""
    return " ".join(_NOT_XML.sub("", str(text)).split())


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _html(text: str) -> str:
    """Plain text inside a Graphviz HTML-like label. Entities first (`<`, `>`, `&`, quotes);
    Graphviz then expands `\\N`, `\\G`, `\\L`, ... even there, so a backslash is doubled."""
    return html.escape(text, quote=True).replace("\\", "\\\\")


def _quoted(text: str) -> str:
    """A DOT double-quoted string (an escString: `\\N` and friends expand, so `\\` doubles)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(css: str | None = None, html_label: str | None = None, **attrs: str) -> str:
    """`[k="v" ... class="css" label=<html_label>]`: every value quoted, but the HTML-like
    label, which is built from escaped text only."""
    parts = [f"{key}={_quoted(value)}" for key, value in attrs.items()]
    if css is not None:
        parts.append(f"class={_quoted(css)}")
    if html_label is not None:
        parts.append(f"label=<{html_label}>")
    return "[" + " ".join(parts) + "]"


# -- the graph ---------------------------------------------------------------------------------


def _text_lines(text: str) -> list[str]:
    lines = textwrap.wrap(_clean(text), TEXT_CHARS)
    if len(lines) > 2:  # wrapping is greedy: the rest is longer than a line, so it is cut
        lines = [lines[0], _cut(" ".join(lines[1:]), TEXT_CHARS)]
    return lines


def _command_line(command: str) -> str:
    lines = [line for line in str(command).splitlines() if line.strip()]
    first = _clean(lines[0]) if lines else ""
    more = len(lines) > 1
    shown = _cut(first, COMMAND_CHARS - (2 if more else 0))
    return shown + (" …" if more and not shown.endswith("…") else "")


def _label(head: str, lines: list[str], command: str | None, foot: str | None) -> str:
    rows = [f"<B>{_html(head)}</B>"]
    rows += [_html(line) for line in lines if line]
    if command:
        rows.append(f'<FONT FACE="{_MONO}">{_html(command)}</FONT>')
    if foot:
        rows.append(f"<I>{_html(foot)}</I>")
    return '<BR ALIGN="LEFT"/>'.join(rows) + '<BR ALIGN="LEFT"/>'


def _risk_of(step: dict[str, Any]) -> str | None:
    risk = step.get("risk")
    return risk if risk in RISK_FILL else None


def _step_node(step: dict[str, Any], sid: str) -> str:
    kind = str(step.get("kind") or "manual")
    risk = _risk_of(step)
    command = step.get("command")
    lines = _text_lines(str(step.get("text") or ""))
    rated = f"{risk.upper()} · {RISK_WORD[risk]}" if risk else None
    if kind == "decision":
        head, foot, shape = f"{sid} · DECISION", rated, "diamond"
        lines = [_cut(" ".join(lines), TEXT_CHARS)]
    elif kind == "escalate":
        head, foot, shape = f"{sid} · ESCALATE", rated or "escalate: page a human", "octagon"
    elif command:
        head, foot, shape = sid, rated or "risk not rated", "box"
    else:
        head, foot, shape = sid, rated or "MANUAL · no command", "box"
    label = _label(head, lines, _command_line(command) if command else None, foot)
    known = kind in ("command", "manual", "decision", "escalate")
    classes = ["step", f"kind-{kind if known else 'other'}", f"risk-{risk or 'none'}"]
    return f'  "{sid}" ' + _attrs(
        id=f"flow-{sid}",
        css=" ".join(classes),
        URL=f"#step-{sid}",
        tooltip=_cut(_clean(step.get("text") or sid), 300),
        shape=shape,
        style="rounded,filled" if shape == "box" else "filled",
        fillcolor=RISK_FILL[risk] if risk else NO_RISK_FILL,
        html_label=label,
    )


def _rollback_node(rollback: dict[str, Any], name: str, sid: str) -> str:
    suggested = rollback.get("origin") == "suggested"
    head = f"undo {sid} · " + ("SUGGESTED, check it" if suggested else "from the runbook")
    command = rollback.get("command")
    # A suggested undo's text is our own boilerplate ("Suggested inverse of ..."): the head says it.
    text = "" if suggested and command else str(rollback.get("text") or "")
    lines = _text_lines(text)
    label = _label(head, lines, _command_line(command) if command else None, None)
    origin = "suggested" if suggested else "runbook"
    return f'  "{name}" ' + _attrs(
        id=f"rollback-{sid}",
        css=f"rollback rollback-{origin}",
        shape="note",
        style="dashed,filled",
        fillcolor="#ffffff",
        html_label=label,
    )


def _edge(tail: str, head: str, css: str, **attrs: str) -> str:
    return f'  "{tail}" -> "{head}" ' + _attrs(css=css, **attrs)


def _parallel_runs(steps: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(first, last) of each run of 2 or more consecutive steps with the same parallel group
    and no decision among them."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(steps):
        group, last = steps[i].get("parallel"), i
        if isinstance(group, str) and group:
            while last + 1 < len(steps) and steps[last + 1].get("parallel") == group:
                last += 1
        members = steps[i : last + 1]
        if last > i and not any(step.get("kind") == "decision" for step in members):
            runs.append((i, last))
        i = last + 1
    return runs


def _bar(name: str, element_id: str, css: str, tooltip: str) -> str:
    return f'  "{name}" ' + _attrs(
        id=element_id,
        css=css,
        shape="box",
        style="filled",
        color="#333333",
        fillcolor="#333333",
        width="1.6",
        height="0.06",
        fixedsize="true",
        ordering="out",
        label="",
        tooltip=tooltip,
    )


class _Flow:
    """Where each step goes on to, as an execution walks the steps (see the module docstring)."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        for number, step in enumerate(steps):
            raw = str(step.get("id") or "")
            plain = _SAFE_ID.fullmatch(raw) is not None and raw not in self.index
            self.names.append(raw if plain else f"_step{number + 1}")
            self.index.setdefault(raw, number)
        # A step reached through a branch skips its sibling branches' targets.
        self.siblings: dict[int, set[int]] = {}
        for number, step in enumerate(steps):
            forward = self.forward(number, step)
            for target in forward:
                self.siblings.setdefault(target, set()).update(forward - {target})
        self.runs = _parallel_runs(steps)
        self.run_of = {k: run for run in self.runs for k in range(run[0], run[1] + 1)}

    def entry(self, number: int) -> str:
        """The node an edge to step `number` goes to: a parallel group's fork bar for its
        first step."""
        run = self.run_of.get(number)
        return f"_fork_{self.names[number]}" if run and run[0] == number else self.names[number]

    def branches(self, step: dict[str, Any]) -> list[dict[str, Any]]:
        if step.get("kind") != "decision":
            return []
        return [b for b in step.get("branches") or [] if isinstance(b, dict)]

    def target(self, branch: dict[str, Any]) -> int | None:
        goto = branch.get("goto")
        return self.index.get(str(goto)) if goto is not None else None

    def forward(self, number: int, step: dict[str, Any]) -> set[int]:
        """The branch targets after the decision: an execution never jumps back."""
        targets = (self.target(b) for b in self.branches(step))
        return {t for t in targets if t is not None and t > number}

    def after(self, number: int, skip: set[int]) -> str:
        """The node after step `number`, passing the steps in `skip`."""
        following = number + 1
        while following < len(self.steps) and following in skip:
            following += 1
        return self.entry(following) if following < len(self.steps) else "_end"

    def edges(self, number: int) -> list[str]:
        step, name = self.steps[number], self.names[number]
        branches = self.branches(step)
        if not branches:
            run = self.run_of.get(number)
            if run is not None:
                join = f"_join_{self.names[run[0]]}"
                return [_edge(name, join, "next join", id=f"next-{name}")]
            following = self.after(number, self.siblings.get(number, set()))
            return [_edge(name, following, "next", id=f"next-{name}")]
        forward = self.forward(number, step)
        out = []
        for count, branch in enumerate(branches, 1):
            target = self.target(branch)
            # No goto, or a step behind: the execution goes on past the branches' steps.
            head = self.entry(target) if target in forward else self.after(number, forward)
            condition = _cut(_clean(branch.get("condition") or f"branch {count}"), CONDITION_CHARS)
            out.append(
                _edge(
                    name,
                    head,
                    "branch checked" if branch.get("check") else "branch",
                    id=f"branch-{name}-{count}",
                    tooltip=_cut(_clean(branch.get("text") or condition), 300),
                    html_label=_html(condition),
                )
            )
        if not any(_clean(b.get("condition") or "").lower() == "otherwise" for b in branches):
            out.append(
                _edge(
                    name,
                    self.after(number, forward),
                    "neither",
                    id=f"neither-{name}",
                    tooltip="none of the branches applies: their steps are skipped",
                    style="dotted",
                    label="neither",
                )
            )
        return out

    def rollback(self, number: int) -> list[str]:
        rollback, name = self.steps[number].get("rollback"), self.names[number]
        if not isinstance(rollback, dict):
            return []
        undo = f"_undo_{name}"
        suggested = rollback.get("origin") == "suggested"
        # A parallel step's note is ranked with it inside the group's box (see `group`): a rank
        # outside the box would pull the step out of it.
        rank = [] if number in self.run_of else [f'  {{ rank=same; "{name}"; "{undo}"; }}']
        return [
            _rollback_node(rollback, undo, name),
            _edge(
                name,
                undo,
                "rollback rollback-suggested" if suggested else "rollback rollback-runbook",
                id=f"undo-{name}",
                label="suggested rollback" if suggested else "rollback",
                style="dashed",
                arrowhead="empty",
            ),
            *rank,
        ]

    def group(self, count: int, first: int, last: int) -> list[str]:
        """A parallel group's fork and join bars, their edges, and the dashed box around it."""
        head = self.names[first]
        fork, join = f"_fork_{head}", f"_join_{head}"
        members = range(first, last + 1)
        skip = set().union(*(self.siblings.get(k, set()) for k in members))
        out = [
            _bar(fork, f"parallel-fork-{head}", "fork", "the steps below run in parallel"),
            _bar(join, f"parallel-join-{head}", "join", "the next step waits for all of them"),
        ]
        out += [
            _edge(fork, self.names[k], "next fork", id=f"fork-{self.names[k]}") for k in members
        ]
        out.append(_edge(join, self.after(last, skip), "next", id=f"join-{head}"))
        box = [f'    "{self.names[k]}";' for k in members]
        box += [
            f'    {{ rank=same; "{self.names[k]}"; "_undo_{self.names[k]}"; }}'
            for k in members
            if isinstance(self.steps[k].get("rollback"), dict)
        ]
        graph = _attrs(
            id=f"parallel-{head}",
            css="parallel",
            label="in parallel",
            style="dashed,rounded",
            color="#777777",
            fontname=_FONT,
            fontsize="10",
        )
        return [
            *out,
            f'  subgraph "cluster_parallel_{count}" {{',
            f"    graph {graph}",
            *box,
            "  }",
        ]


def dot_source(parsed: dict[str, Any]) -> str:
    """The DOT graph of a parsed runbook (the dict of `ParsedRunbook.to_dict()`).

    Node names are the step ids (`s1`, ...; an id that is not a plain token, or is repeated,
    is named `_step<n>` instead); the start, end, rollback and parallel fork/join nodes
    (`_start`, `_end`, `_undo_<id>`, `_fork_<id>`, `_join_<id>`, named by the group's first
    step) start with `_`, so they never clash with a step. See the module docstring for the
    edges."""
    flow = _Flow([s for s in parsed.get("steps") or [] if isinstance(s, dict)])
    title = _cut(_clean(parsed.get("title") or "Runbook"), 200)
    out = [
        f"digraph {_quoted(title)} {{",
        "  graph " + _attrs(rankdir="TB", nodesep="0.4", ranksep="0.45", fontname=_FONT),
        "  node " + _attrs(fontname=_FONT, fontsize="11", margin="0.12,0.06"),
        "  edge " + _attrs(fontname=_FONT, fontsize="10"),
        '  "_start" ' + _attrs("terminal start", id="flow-start", shape="oval", label="start"),
    ]
    out += [_step_node(step, name) for step, name in zip(flow.steps, flow.names, strict=True)]
    out.append('  "_end" ' + _attrs("terminal end", id="flow-end", shape="oval", label="end"))
    first = flow.entry(0) if flow.names else "_end"
    out.append(_edge("_start", first, "next", id="next-start"))
    for number in range(len(flow.steps)):
        out += flow.edges(number)
        out += flow.rollback(number)
    for count, (first_step, last_step) in enumerate(flow.runs, start=1):
        out += flow.group(count, first_step, last_step)
    out.append("}")
    return "\n".join(out) + "\n"


# -- rendering ---------------------------------------------------------------------------------


def _dot_binary() -> str:
    configured = os.environ.get("DDOC_DOT")
    if configured:
        return configured
    found = shutil.which("dot")
    if found is None:
        raise FlowchartUnavailable(INSTALL_HINT)
    return found


def render_svg(parsed: dict[str, Any], *, timeout: float = 10.0) -> str:
    """The runbook's flowchart as one `<svg>` element to inline in HTML (no XML prolog, DOCTYPE
    or comments), drawn by `dot -Tsvg`: the binary named by env `DDOC_DOT`, else `dot` on PATH.
    Results are cached by DOT source (the last 256).

    A runbook of more than `MAX_STEPS` (300) steps gets no drawing: a small SVG whose text
    says so (`class="flowchart flowchart-too-large"`).

    The element: `<svg class="flowchart" role="img" aria-label="Flowchart: <title>">`, its first
    child a `<title>`; each step a `<g id="flow-<id>" class="node step kind-<kind>
    risk-<green|yellow|red|none>">` holding `<a xlink:href="#step-<id>">`; rollbacks
    `<g id="rollback-<id>" class="node rollback rollback-<suggested|runbook>">`; start and end
    `flow-start` / `flow-end`; a parallel group (named by its first step) `<g id="parallel-<id>"
    class="cluster parallel">` (its dashed box) and bars `parallel-fork-<id>` /
    `parallel-join-<id>` (`class="node fork|join"`); edges `<g class="edge
    next|branch|neither|rollback">` (`next fork` into a group's step, `next join` out of it)
    with ids `next-<id>`, `branch-<id>-<n>`, `neither-<id>`, `undo-<id>`, `fork-<id>` (fork bar
    to a step), `join-<first id>` (join bar on) and the usual `<title>` of Graphviz
    (`s1->s2`).

    Raises `FlowchartUnavailable` when `dot` is missing (the message says to install Graphviz),
    fails, or takes longer than `timeout` seconds (the message carries dot's stderr)."""
    title = _clean(parsed.get("title") or "Runbook")
    steps = parsed.get("steps") or []
    if len(steps) > MAX_STEPS:
        return _message_svg(
            f"This runbook has {len(steps)} steps: a flowchart is drawn for at most "
            f"{MAX_STEPS}. The steps are listed below.",
            title,
        )
    return _render(dot_source(parsed), _dot_binary(), float(timeout), title)


@functools.lru_cache(maxsize=256)
def _render(source: str, binary: str, timeout: float, title: str) -> str:
    try:
        done = subprocess.run(
            [binary, "-Tsvg"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
        raise FlowchartUnavailable(f"{INSTALL_HINT} ({binary}: {err.strerror})") from err
    except subprocess.TimeoutExpired as err:
        raise FlowchartUnavailable(
            f"dot took longer than {timeout:g}s to draw the flowchart" + _stderr(err.stderr)
        ) from err
    if done.returncode != 0:
        raise FlowchartUnavailable(
            f"dot failed to draw the flowchart (exit {done.returncode})" + _stderr(done.stderr)
        )
    return _inline(done.stdout.decode("utf-8", errors="replace"), title)


def _stderr(raw: bytes | None) -> str:
    text = _clean((raw or b"").decode("utf-8", errors="replace"))
    return f": {_cut(text, _STDERR_CHARS)}" if text else ""


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HREF = re.compile(r'\s(?:xlink:)?href="([^"]*)"')
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")
_SVG_NS = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
# What dot's SVG is made of; anything else (script, foreignObject, image, ...) is refused.
_ALLOWED = frozenset(
    "svg g title desc a path polygon polyline ellipse circle rect line text tspan defs "
    "linearGradient radialGradient stop".split()
)


def _inline(svg: str, title: str) -> str:
    start, end = svg.find("<svg"), svg.rfind("</svg>")
    if start < 0 or end < 0:
        raise FlowchartUnavailable("dot's output holds no <svg> element")
    svg = _COMMENT.sub("", svg[start : end + len("</svg>")])
    svg = _HREF.sub(lambda m: m.group(0) if m.group(1).startswith("#") else "", svg)
    label = html.escape(f"Flowchart: {title}", quote=True)
    opened = _SVG_OPEN.match(svg)
    assert opened is not None  # it starts with "<svg" and dot closes its tags
    tag = opened.group(0)[:-1].rstrip("/")
    svg = (
        f'{tag} class="flowchart" role="img" aria-label="{label}">'
        f"\n<title>{label}</title>" + svg[opened.end() :]
    )
    _check(svg)
    return svg


def _check(svg: str) -> None:
    """Refuse an SVG that could do more than draw: an element dot does not make, an event
    handler, or a reference outside the document."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as err:
        raise FlowchartUnavailable(f"dot's SVG is not well-formed XML: {err}") from err
    for element in root.iter():
        tag = element.tag
        if not tag.startswith(_SVG_NS) or tag[len(_SVG_NS) :] not in _ALLOWED:
            raise FlowchartUnavailable(f"dot's SVG holds an unexpected element {tag!r}")
        for key, value in element.attrib.items():
            local = key.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise FlowchartUnavailable(f"dot's SVG holds an unexpected attribute {local!r}")
            if key in ("href", _XLINK_HREF) and not value.startswith("#"):
                raise FlowchartUnavailable("dot's SVG links outside the page")
            if "url(" in value and not re.fullmatch(r"url\(#[^)]*\)", value.strip()):
                raise FlowchartUnavailable("dot's SVG refers to something outside the page")


def _message_svg(message: str, title: str) -> str:
    label = html.escape(f"Flowchart: {title}", quote=True)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" class="flowchart flowchart-too-large" '
        f'role="img" aria-label="{label}" width="560" height="40" viewBox="0 0 560 40">\n'
        f"<title>{label}</title>\n"
        f'<text x="8" y="24" font-family="{_FONT}" font-size="13">'
        f"{html.escape(message)}</text>\n</svg>"
    )
