"""The policy `ddoc up` gives its local agent: the tour's and the examples' read-only commands
run, their destructive step runs in the sandbox, and what would change the machine is denied."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_worker.policy import decide, load_policy
from ddoc.cli.up import default_agent_policy

ALLOWED = [
    "df -h",
    'du -sh "${TMPDIR:-/tmp}"',
    'find "${TMPDIR:-/tmp}" -xdev -type f -size +10M -mtime +7 -print',
    'find "${TMPDIR:-/tmp}" -xdev -type f -size +10M -mtime +7 -delete',
    'rm -f "$TMPDIR/build-1042.tar"',
    "uptime",
    "ps aux --sort=-%cpu | head -n 10",
    "free -m",
    'echo "pod=${DDOC_VAR_POD} namespace=${DDOC_VAR_NAMESPACE}"',
    "ls -la /var/log 2>/dev/null",
]
DENIED = [
    "find /tmp -xdev -type f -size +10M -mtime +7 -delete",
    "rm -rf /",
    "echo ok; rm -rf ~/projects",
    "echo ok\nrm -rf ~/projects",
    'rm -rf "$TMPDIR/../../important"',
    "mv ~/.ssh /tmp/x",
    'sudo systemctl restart "${DDOC_VAR_SERVICE}"',
    "systemctl stop nginx",
    "kill -9 1",
    "apt-get install -y curl",
    "dd if=/dev/zero of=/dev/sda",
    "chmod -R 777 /etc",
]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent-policy.yaml"
    path.write_text(default_agent_policy(tmp_path / "sandbox" / "tmp"))
    return path


@pytest.mark.parametrize("command", ALLOWED)
def test_what_the_examples_run_is_allowed(policy_file: Path, command: str) -> None:
    assert decide(load_policy(policy_file), command) is None


@pytest.mark.parametrize("command", DENIED)
def test_what_would_change_the_machine_is_denied(policy_file: Path, command: str) -> None:
    assert decide(load_policy(policy_file), command) is not None


def test_the_sandbox_is_the_agents_tmpdir(policy_file: Path, tmp_path: Path) -> None:
    policy = load_policy(policy_file)
    assert policy.env == {"TMPDIR": str(tmp_path / "sandbox" / "tmp")}
    assert policy.inherit_env is False and policy.max_timeout_seconds == 300
    # A value that would escape is checked as the command would run, too.
    assert decide(policy, 'rm -f "${DDOC_VAR_FILE}"', {"DDOC_VAR_FILE": "/etc/passwd"})
