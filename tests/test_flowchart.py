"""ddoc.runbooks.flowchart: parsed runbooks (from the real parser) drawn by the real `dot`, the
SVG read back with xml.etree; hostile text; a missing, failing or slow `dot`."""

from __future__ import annotations

import re
import shutil
import stat
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ddoc.platform.errors import Unavailable
from ddoc.runbooks import flowchart
from ddoc.runbooks.flowchart import (
    MAX_STEPS,
    RISK_FILL,
    FlowchartUnavailable,
    dot_source,
    render_svg,
)
from ddoc.runbooks.parsing import parse_runbook

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runbooks"
SVG = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


@pytest.fixture(autouse=True)
def real_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDOC_DOT", raising=False)


def need_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail(
            "Debian's graphviz is needed (scripts/test installs it: apt-get install graphviz)"
        )


def parsed(markdown: str) -> dict[str, Any]:
    return parse_runbook(markdown, "markdown", source_path="x.md").to_dict()


def draw(data: dict[str, Any]) -> ET.Element:
    need_dot()
    svg = render_svg(data)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<!--" not in svg
    return ET.fromstring(svg)


def by_id(root: ET.Element, element_id: str) -> ET.Element:
    found = [g for g in root.iter(f"{SVG}g") if g.get("id") == element_id]
    assert len(found) == 1, f"{element_id}: {len(found)} elements"
    return found[0]


def texts(element: ET.Element) -> str:
    return " ".join(t.text or "" for t in element.iter(f"{SVG}text"))


def monospace(element: ET.Element) -> list[str]:
    return [
        t.text or ""
        for t in element.iter(f"{SVG}text")
        if "monospace" in (t.get("font-family") or "")
    ]


def fill(node: ET.Element) -> str | None:
    shapes = [e for e in node.iter() if e.tag in (f"{SVG}path", f"{SVG}polygon")]
    return shapes[0].get("fill")


def edges(root: ET.Element) -> dict[str, list[ET.Element]]:
    """Edges by Graphviz's title, `tail->head`."""
    out: dict[str, list[ET.Element]] = {}
    for g in root.iter(f"{SVG}g"):
        if "edge" in (g.get("class") or "").split():
            title = g.find(f"{SVG}title")
            assert title is not None and title.text is not None
            out.setdefault(title.text, []).append(g)
    return out


def dashed(edge: ET.Element) -> bool:
    path = edge.find(f"{SVG}path")
    return path is not None and path.get("stroke-dasharray") is not None


LINEAR = """# Restart the API

1. List the pods: `kubectl -n api get pods`
2. Restart the deployment: `kubectl -n api rollout restart deployment/api`
3. Delete the stuck pod: `kubectl -n api delete pod api-0 --grace-period=0`
4. Verify the error rate in the API dashboard.
"""


def test_linear_steps_are_filled_and_labelled_by_risk() -> None:
    data = parsed(LINEAR)
    assert [(s["id"], s["risk"]) for s in data["steps"]] == [
        ("s1", "green"),
        ("s2", "yellow"),
        ("s3", "red"),
        ("s4", None),
    ]
    root = draw(data)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Flowchart: Restart the API"
    assert root.get("class") == "flowchart"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "Flowchart: Restart the API"

    expected = {
        "s1": (RISK_FILL["green"], "GREEN · read-only", "risk-green"),
        "s2": (RISK_FILL["yellow"], "YELLOW · reversible change", "risk-yellow"),
        "s3": (RISK_FILL["red"], "RED · destructive", "risk-red"),
        "s4": (flowchart.NO_RISK_FILL, "MANUAL · no command", "risk-none"),
    }
    for sid, (colour, words, risk_class) in expected.items():
        node = by_id(root, f"flow-{sid}")
        assert fill(node) == colour, sid
        assert words in texts(node), sid
        assert risk_class in (node.get("class") or "").split(), sid
        link = node.find(f".//{SVG}a")
        assert link is not None and link.get(XLINK_HREF) == f"#step-{sid}"
    # The command is on a line of its own, in a monospace font.
    assert monospace(by_id(root, "flow-s2")) == ["kubectl -n api rollout restart deployment/api"]
    # In document order, from start to end.
    assert {"_start->s1", "s1->s2", "s2->s3", "s3->s4", "s4->_end"} <= set(edges(root))
    by_id(root, "flow-start")
    by_id(root, "flow-end")


def test_a_decision_has_an_edge_per_branch_to_its_target() -> None:
    data = parsed((FIXTURES / "conditionals.md").read_text())
    root = draw(data)
    s2 = by_id(root, "flow-s2")
    assert "kind-decision" in (s2.get("class") or "").split()
    diamond = s2.find(f".//{SVG}polygon")
    assert diamond is not None and len((diamond.get("points") or "").split()) == 5  # 4 corners
    found = edges(root)

    def label(title: str) -> list[str]:
        return [texts(edge) for edge in found[title]]

    # "If the command exits 0, go to step 4; otherwise run `sudo systemctl start ...`".
    assert label("s2->s6") == ["the command exits 0"]
    assert label("s2->s3") == ["otherwise"]
    assert "s2->s4" not in found  # the decision does not simply fall through
    # One checked branch and no "otherwise": "neither" goes on after the branch's step.
    assert label("s4->s5") == ["the output contains `Unit…"]
    assert label("s4->s6") == ["neither"]
    assert "neither" in (found["s4->s6"][0].get("class") or "")
    assert by_id(root, "neither-s4") is found["s4->s6"][0]
    # Heading cases: one branch each; a branch's step skips the other branch's step.
    assert label("s7->s8") == ["the backlog is growing"]
    assert label("s7->s9") == ["the backlog is stable"]
    assert label("s7->_end") == ["neither"]
    assert "s8->s9" not in found and "s8->_end" in found


def test_rollbacks_are_dashed_edges_to_a_note_that_says_where_they_come_from() -> None:
    data = parsed(
        "# Drain a node\n\n"
        "1. Cordon the node: `kubectl cordon node-7`\n"
        "2. Stop the shipper: `sudo systemctl stop log-shipper`\n"
        "3. List the pods: `kubectl get pods -o wide`\n\n"
        "## Rollback\n\n"
        "- Put the node back: `kubectl uncordon node-7`\n"
    )
    steps = data["steps"]
    assert [(s["id"], (s["rollback"] or {}).get("origin")) for s in steps] == [
        ("s1", "runbook"),
        ("s2", "suggested"),
        ("s3", None),
    ]
    root = draw(data)
    found = edges(root)
    assert dashed(found["s1->_undo_s1"][0]) and dashed(found["s2->_undo_s2"][0])
    assert not any(dashed(edge) for edge in found["s1->s2"] + found["s2->s3"])
    assert not any(title.startswith("s3->_undo") for title in found)
    runbook, suggested = by_id(root, "rollback-s1"), by_id(root, "rollback-s2")
    assert "rollback-runbook" in (runbook.get("class") or "").split()
    assert "from the runbook" in texts(runbook) and "kubectl uncordon node-7" in texts(runbook)
    assert "rollback-suggested" in (suggested.get("class") or "").split()
    assert "SUGGESTED" in texts(suggested)
    assert "sudo systemctl start log-shipper" in texts(suggested)
    assert texts(found["s2->_undo_s2"][0]) == "suggested rollback"


HOSTILE = r"""# Fix "it" \ <script>alert(1)</script> {a|b} 🔥

1. Print it: `echo "a\" <script>alert(1)</script> {a|b} \N \G \\ ]] > < & 🔥 日本語"`
2. Check the "quoted" {dashboard} | with \N, a <b>tag</b>, &amp; and 🧯 then stop \
3. If the output contains `"}<x>\`, escalate to the {on-call} <team> 🚒.
4. Delete it: `rm -rf "/tmp/x\"y" \`
"""


def test_hostile_text_is_drawn_as_text() -> None:
    data = parsed(HOSTILE)
    assert [s["kind"] for s in data["steps"]][:2] == ["command", "manual"]
    source = dot_source(data)
    root = draw(data)
    assert not [e for e in root.iter() if e.tag.lower().endswith("script")]
    for element in root.iter():
        assert not [k for k in element.attrib if k.lower().startswith("on")]
        for key in ("href", XLINK_HREF):
            assert element.get(key) is None or (element.get(key) or "").startswith("#")
    s1 = texts(by_id(root, "flow-s1"))
    # Escapes are kept literally: `\N` is not replaced by the node's name, nor `\G` by the graph's.
    shown = monospace(by_id(root, "flow-s1"))
    assert len(shown) == 1 and shown[0].endswith("…")
    assert data["steps"][0]["command"].startswith(shown[0].removesuffix("…"))
    assert r"\N \G \\" in s1 and "<script>" in s1
    s2 = texts(by_id(root, "flow-s2"))
    assert '"quoted" {dashboard} |' in s2 and r"\N" in s2
    assert "🔥" in (root.get("aria-label") or "") and "<script>" in (root.get("aria-label") or "")
    assert "&lt;script&gt;" in source  # in the HTML-like labels
    assert {"flow-s1", "flow-s2", "flow-s3", "flow-s4"} <= {
        g.get("id") for g in root.iter(f"{SVG}g")
    }


def test_hostile_ids_and_fields_do_not_break_the_graph() -> None:
    hostile = '"];\n x -> y [URL="http://evil.example/"] \\'
    data = {
        "title": hostile,
        "steps": [
            {"id": hostile, "kind": "command", "text": hostile, "command": hostile, "risk": "red"},
            {
                "id": "s2",
                "kind": "decision",
                "text": "\x00\x07\ufffe\u202e" + hostile,
                "branches": [
                    {"condition": hostile, "text": hostile, "goto": hostile},
                    {"condition": "x", "text": "y", "goto": "nowhere"},
                ],
            },
            {"id": "s1", "kind": "manual", "text": "ok", "rollback": {"text": hostile}},
            {"id": "s1", "kind": "weird<kind>", "text": "a repeated id"},
        ],
    }
    root = draw(data)
    ids = [g.get("id") for g in root.iter(f"{SVG}g")]
    assert {"flow-_step1", "flow-s2", "flow-s1", "flow-_step4", "rollback-s1"} <= set(ids)
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert "x" not in titles and "y" not in titles and "x->y" not in titles
    for element in root.iter():
        for key in ("href", XLINK_HREF):
            assert element.get(key) is None or (element.get(key) or "").startswith("#")
    found = edges(root)
    # A backward or unknown goto goes where an execution goes: on past the decision (as does
    # "neither").
    assert "s2->_step1" not in found and len(found["s2->s1"]) == 3


def test_fifty_steps_render_well_under_a_second() -> None:
    need_dot()
    commands = [
        "kubectl -n web get pods",
        "kubectl -n web rollout restart deployment/web",
        "kubectl -n web delete pod web-0",
        "kubectl cordon node-{i}",
    ]
    lines = [f"# Fifty steps {time.time_ns()}", ""]
    for i in range(1, 51):
        lines.append(f"{i}. Step number {i}: `{commands[i % 4].format(i=i)}`")
    data = parsed("\n".join(lines) + "\n")
    assert len(data["steps"]) == 50
    started = time.perf_counter()
    svg = render_svg(data)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    root = ET.fromstring(svg)
    assert by_id(root, "flow-s50") is not None
    # Cached by DOT source: the same runbook again costs nothing.
    started = time.perf_counter()
    assert render_svg(data) is svg
    assert time.perf_counter() - started < 0.01


def test_too_many_steps_get_a_message_instead() -> None:
    steps = [
        {"id": f"s{i}", "kind": "manual", "text": f"step {i}"} for i in range(1, MAX_STEPS + 2)
    ]
    svg = render_svg({"title": "Huge <one>", "steps": steps})
    root = ET.fromstring(svg)
    assert "flowchart-too-large" in (root.get("class") or "")
    assert root.get("aria-label") == "Flowchart: Huge <one>"
    assert f"{MAX_STEPS + 1} steps" in texts(root)


def test_missing_dot_says_to_install_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    data = parsed(LINEAR)
    monkeypatch.setenv("DDOC_DOT", "/nonexistent/bin/dot")
    with pytest.raises(FlowchartUnavailable, match=r"apt-get install graphviz") as raised:
        render_svg(data)
    assert isinstance(raised.value, Unavailable)
    monkeypatch.delenv("DDOC_DOT")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(FlowchartUnavailable, match=r"install Graphviz"):
        render_svg(data)


def fake_dot(tmp_path: Path, body: str) -> str:
    script = tmp_path / "dot"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_a_failing_or_slow_dot_is_unavailable_with_its_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = parsed(LINEAR)
    monkeypatch.setenv(
        "DDOC_DOT", fake_dot(tmp_path, "cat >/dev/null\necho 'syntax error' >&2\nexit 3\n")
    )
    with pytest.raises(FlowchartUnavailable, match=r"exit 3\): syntax error"):
        render_svg(data)
    slow = tmp_path / "slow"
    slow.mkdir()
    monkeypatch.setenv("DDOC_DOT", fake_dot(slow, "exec sleep 5\n"))
    started = time.perf_counter()
    with pytest.raises(FlowchartUnavailable, match=r"longer than 0.3s"):
        render_svg(data, timeout=0.3)
    assert time.perf_counter() - started < 3


SVG_HEAD = (
    '<?xml version="1.0"?>\n<!-- c -->\n<svg xmlns="http://www.w3.org/2000/svg" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" height="10pt">'
)


def test_links_out_of_the_page_are_stripped_and_scripts_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = parsed(LINEAR)
    linked = SVG_HEAD + (
        '<g id="a"><a xlink:href="https://evil.example/x" href="javascript:alert(1)">'
        '<text>x</text></a><a xlink:href="#step-s1"><text>y</text></a></g></svg>\n'
    )
    monkeypatch.setenv(
        "DDOC_DOT", fake_dot(tmp_path, f"cat >/dev/null\ncat <<'EOF'\n{linked}EOF\n")
    )
    svg = render_svg(data)
    assert "evil" not in svg and "javascript" not in svg and 'xlink:href="#step-s1"' in svg
    assert "<!--" not in svg and "<?xml" not in svg
    for bad in ("<script>alert(1)</script>", '<g onload="alert(1)"/>', "<image/>"):
        other = tmp_path / str(abs(hash(bad)))
        other.mkdir()
        body = SVG_HEAD + f"{bad}</svg>\n"
        monkeypatch.setenv("DDOC_DOT", fake_dot(other, f"cat >/dev/null\ncat <<'EOF'\n{body}EOF\n"))
        with pytest.raises(FlowchartUnavailable):
            render_svg(data)


# --- parallel groups ------------------------------------------------------------------------

PARALLEL = """---
parallel: [[2, 3]]
---
# Payments

1. Check the pods: `kubectl get pods -n pay`
2. Cordon the node: `kubectl cordon node-1`
3. Restart the workers: `kubectl rollout restart deploy/workers -n pay`
4. Check the logs: `kubectl logs deploy/api -n pay`
"""


def box(element: ET.Element) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the shapes' points, in the SVG's coordinates."""
    pairs = [
        (float(x), float(y))
        for shape in element.iter()
        if shape.tag in (f"{SVG}path", f"{SVG}polygon")
        for x, y in re.findall(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)", shape.get("d") or "")
        + re.findall(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)", shape.get("points") or "")
    ]
    xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
    return min(xs), min(ys), max(xs), max(ys)


def test_a_parallel_group_is_drawn_side_by_side_between_a_fork_and_a_join() -> None:
    data = parsed(PARALLEL)
    assert [(s["id"], s["parallel"]) for s in data["steps"]] == [
        ("s1", None),
        ("s2", "p1"),
        ("s3", "p1"),
        ("s4", None),
    ]
    root = draw(data)
    found = edges(root)
    assert {
        "s1->_fork_s2",
        "_fork_s2->s2",
        "_fork_s2->s3",
        "s2->_join_s2",
        "s3->_join_s2",
        "_join_s2->s4",
        "s4->_end",
    } <= set(found)
    assert "s2->s3" not in found and "s1->s2" not in found and "s3->s4" not in found
    assert by_id(root, "fork-s3") is found["_fork_s2->s3"][0]
    assert by_id(root, "next-s3") is found["s3->_join_s2"][0]
    assert by_id(root, "join-s2") is found["_join_s2->s4"][0]
    assert "fork" in (by_id(root, "parallel-fork-s2").get("class") or "").split()
    assert "join" in (by_id(root, "parallel-join-s2").get("class") or "").split()
    cluster = by_id(root, "parallel-s2")
    assert {"cluster", "parallel"} <= set((cluster.get("class") or "").split())
    assert texts(cluster) == "in parallel"
    # Side by side, inside the box, the rollback note of s2 beside it.
    left, top, right, bottom = box(cluster)
    s2, s3 = box(by_id(root, "flow-s2")), box(by_id(root, "flow-s3"))
    for step in (s2, s3, box(by_id(root, "rollback-s2"))):
        assert left <= step[0] and step[2] <= right and top <= step[1] and step[3] <= bottom
    assert abs((s2[1] + s2[3]) - (s3[1] + s3[3])) < 2  # one rank: the same vertical centre
    assert s2[2] < s3[0] or s3[2] < s2[0]


def test_a_branch_into_a_parallel_group_goes_to_its_fork() -> None:
    data = parsed(
        "---\nparallel: [[s4, s5]]\n---\n# T\n\n"
        "1. Check the disk: `df -h`\n"
        "2. If the disk is full, go to step 4.\n"
        "3. Check memory: `free -m`\n"
        "4. Check the logs: `journalctl -n 50`\n"
        "5. Check the kernel: `dmesg -T`\n"
    )
    assert [(s["id"], s["parallel"]) for s in data["steps"]][3:] == [("s4", "p1"), ("s5", "p1")]
    assert data["steps"][1]["branches"][0]["goto"] == "s4"
    source = dot_source(data)
    assert '"s2" -> "_fork_s4" [id="branch-s2-1"' in source
    assert '"s3" -> "_fork_s4" [id="next-s3"' in source
    assert '"_join_s4" -> "_end" [id="join-s4"' in source


def test_a_run_holding_a_decision_or_a_lone_step_is_drawn_in_order() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "s1", "kind": "command", "text": "a", "command": "df -h", "parallel": "p1"},
        {"id": "s2", "kind": "decision", "text": "if", "branches": [], "parallel": "p1"},
        {"id": "s3", "kind": "command", "text": "b", "command": "free", "parallel": "p2"},
        {"id": "s4", "kind": "manual", "text": "c", "parallel": ["not", "a", "string"]},
        {"id": "s5", "kind": "manual", "text": "d", "parallel": 7},
    ]
    source = dot_source({"title": "t", "steps": steps})
    assert "_fork" not in source and "_join" not in source and "cluster" not in source
    assert '"s1" -> "s2"' in source and '"s3" -> "s4"' in source and '"s4" -> "s5"' in source
