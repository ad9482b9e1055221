"""The README's tour, as a newcomer runs it: its commands are read from README.md itself and run
with bash, in order, against a real `ddoc up`; every `# →` line under a command is text that
the command's output must contain. Changing the README without the product, or the product
without the README, fails here.

Only what differs on a test machine is changed: the ports (the README's 8080/8233/7233), the
data dir (`.ddoc/`) and the scratch files in /tmp. The CLI is told the same through the
environment (`DDOC_API_URL`, `DDOC_DATA_DIR`, `TEMPORAL_ADDRESS`) that a user's defaults give.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ddoc.contracts import temporal as attrs
from ddoc.platform.embedded import bin_path
from tests.conftest import REPO, free_port
from tests.test_up import Up, start_up, stop_up

README = REPO / "README.md"
TOUR = "## A five-minute tour"
EXPECT = "# → "
_FENCE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
_SEPARATOR = "@@ddoc-tour-chunk@@"


@dataclass
class Chunk:
    """Commands up to a group of `# →` lines, and what their output must contain."""

    block: int
    lines: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)

    @property
    def first_command(self) -> str:
        return next((x for x in self.lines if x.strip() and not x.startswith("#")), "")


def tour_section(text: str) -> str:
    start = text.index(TOUR)
    end = text.find("\n## ", start + len(TOUR))
    return text[start : end if end != -1 else len(text)]


def tour_chunks(text: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    for number, match in enumerate(_FENCE.finditer(tour_section(text))):
        current = Chunk(number)
        for line in match.group(1).splitlines():
            if line.lstrip().startswith(EXPECT):
                current.expect.append(line.lstrip()[len(EXPECT) :].rstrip())
                continue
            if current.expect:
                chunks.append(current)
                current = Chunk(number)
            current.lines.append(line)
        if any(x.strip() for x in current.lines) or current.expect:
            chunks.append(current)
    return chunks


def test_the_tour_is_read_from_the_readme() -> None:
    chunks = tour_chunks(README.read_text())
    assert len({c.block for c in chunks}) >= 2
    checked = [c for c in chunks if c.expect]
    assert len(checked) >= 12, [c.first_command for c in checked]
    commands = "\n".join(line for c in chunks for line in c.lines)
    # The tour finishes the execution: the decisions, the approval, the resolved alert, and
    # the search in Temporal.
    for needed in (
        "ddoc exec choose",
        "ddoc exec approve",
        "disk-space-low.resolved.json",
        "temporal workflow list --query",
        "ddoc runbook import examples/",
        "high-load.json",
    ):
        assert needed in commands, needed


@dataclass
class Ran:
    chunk: Chunk
    output: str
    status: int


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    started = start_up(tmp_path / "data", api=free_port(), temporal=free_port(), ui=free_port())
    try:
        yield started
    finally:
        stop_up(started)


def run_tour(up: Up, data_dir: Path, scratch: Path) -> list[Ran]:
    chunks = tour_chunks(README.read_text())
    api_port = up.api.rsplit(":", 1)[1]
    replacements = {
        "http://127.0.0.1:8080": up.api,
        "http://127.0.0.1:8233": f"http://127.0.0.1:{up.ui_port}",
        ".ddoc/": f"{data_dir}/",
        "/tmp/ddoc-": f"{scratch}/ddoc-",
    }
    script = ["set -o pipefail"]
    for n, chunk in enumerate(chunks):
        script.append(f'echo "{_SEPARATOR} {n}"')
        for line in chunk.lines:
            for old, new in replacements.items():
                line = line.replace(old, new)
            script.append(line)
        script.append(f'echo "{_SEPARATOR}-status $?"')
    path = scratch / "tour.sh"
    path.write_text("\n".join(script) + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DDOC_", "TEMPORAL_")) and k != "VIRTUAL_ENV"
    }
    env |= {
        "DDOC_API_URL": f"http://127.0.0.1:{api_port}",
        "DDOC_DATA_DIR": str(data_dir),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{up.temporal_port}",
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    parts = result.stdout.split(f"{_SEPARATOR} ")[1:]
    assert len(parts) == len(chunks), result.stdout[-3000:]
    ran = []
    for chunk, part in zip(chunks, parts, strict=True):
        body, _, status = part.partition(f"{_SEPARATOR}-status ")
        ran.append(
            Ran(chunk, body.split("\n", 1)[1] if "\n" in body else "", int(status.split()[0]))
        )
    return ran


def temporal_list(up: Up, query: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [bin_path("temporal"), "workflow", "list", "--address",
         f"127.0.0.1:{up.temporal_port}", "--query", query],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip


def test_the_readme_tour_works_to_its_last_line(up: Up, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ran = run_tour(up, data_dir, tmp_path)
    problems = []
    for step in ran:
        if step.status != 0:
            problems.append(f"{step.chunk.first_command!r} exited {step.status}:\n{step.output}")
        for expected in step.chunk.expect:
            if expected not in step.output:
                problems.append(
                    f"{step.chunk.first_command!r}: the README says its output contains\n"
                    f"  {expected!r}\nbut it was:\n{step.output}"
                )
    assert not problems, "\n\n".join(problems)

    # The file the approved step deleted was in the sandbox, and the sandbox is the agent's
    # TMPDIR in the policy `ddoc up` wrote.
    policy = (data_dir / "agent-policy.yaml").read_text()
    assert f'TMPDIR: "{data_dir / "sandbox" / "tmp"}"' in policy

    # Every search attribute the README names works unquoted in a query, and finds the tour's
    # execution; the old `Mode` is documented as needing back-quotes, and does.
    text = README.read_text()
    registered = {key.name for key in attrs.SEARCH_ATTRIBUTES}
    named = set(re.findall(r"`([A-Za-z]+)`", text)) & (registered | {"ExecutionStatus"})
    queryable = {key.name for key in attrs.QUERYABLE_ATTRIBUTES}
    assert queryable <= named, f"not in the README: {sorted(queryable - named)}"
    for name in sorted(named - {attrs.LEGACY_MODE.name}):
        value = "Completed" if name == "ExecutionStatus" else "x"
        listed = temporal_list(up, f'{name} = "{value}"')
        assert listed.returncode == 0, (name, listed.stdout + listed.stderr)
    alert = (tmp_path / "ddoc-alert.json").read_text()
    execution_id = re.search(r'"execution_id":"([^"]+)"', alert)
    assert execution_id is not None and re.fullmatch(r"ex_[0-9a-f]{20}", execution_id[1])
    for query in (
        'DdocMode = "copilot" AND TenantId = "default" AND Severity = "warning"',
        'Service = "host" AND ExecutionStatus = "Completed" AND CurrentStep IS NULL',
        f'DdocExecutionStatus = "succeeded" AND WorkflowId = "{execution_id[1]}"',
        '`Mode` = "copilot" AND Service = "host"',
    ):
        listed = temporal_list(up, query)
        assert execution_id[1] in listed.stdout, (query, listed.stdout + listed.stderr)
    if attrs.LEGACY_MODE.name in named:
        assert '`` `Mode` = "copilot" ``' in text
        unquoted = temporal_list(up, 'Mode = "copilot"')
        assert unquoted.returncode != 0 and "invalid search attribute" in unquoted.stderr
