"""Terminal sessions and shell histories become draft runbooks (ddoc/runbooks/drafts/sessions.py
reads them, streaming; distill.py makes the draft).

The fixtures in tests/fixtures/sessions are recordings as the tools write them: asciinema casts
with every keystroke's echo, colours, window titles, bracketed paste, readline's backspaces and
its line wrap at the right margin; a `script` typescript; a bash history with HISTTIMEFORMAT
stamps; a zsh extended history with multi-line commands.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ddoc.contracts.redact import Redactor
from ddoc.runbooks.drafts import Draft, DraftVariable, to_markdown, ungrounded
from ddoc.runbooks.drafts.distill import draft_from_session
from ddoc.runbooks.drafts.sessions import (
    OUTPUT_CHARS,
    OUTPUT_LINES,
    Ran,
    SessionError,
    detect,
    read_session,
)
from ddoc.runbooks.model import ParsedRunbook
from ddoc.runbooks.parsing import parse_runbook

FIXTURES = Path(__file__).parent / "fixtures" / "sessions"


def _runs(name: str) -> list[Ran]:
    with (FIXTURES / name).open("rb") as stream:
        return list(read_session(stream))


def _parsed(draft: Draft) -> ParsedRunbook:
    """The draft as the runbook parser reads it: one step per draft step, the same commands."""
    parsed = parse_runbook(to_markdown(draft), "markdown")
    assert [s.command for s in parsed.steps] == [s.command for s in draft.steps]
    return parsed


def _risks(parsed: ParsedRunbook) -> dict[str, str]:
    return {s.command or "": s.risk.value if s.risk else "" for s in parsed.steps}


def _cast(*events: tuple[float, str, str], width: int = 80, version: int = 2) -> io.BytesIO:
    header: dict[str, object] = {"version": version, "timestamp": 1700000000}
    header |= {"term": {"cols": width, "rows": 24}} if version == 3 else {"width": width}
    lines = [json.dumps(header)] + [json.dumps(list(e)) for e in events]
    return io.BytesIO(("\n".join(lines) + "\n").encode())


def _grounded(draft: Draft, runs: Iterable[Ran], redactor: Redactor | None = None) -> None:
    redactor = redactor or Redactor()
    assert ungrounded(draft, [redactor.redact(r.command) for r in runs]) == []


# -- the disk-full fix, recorded with asciinema ------------------------------------------------

DISK_FULL_STEPS = [
    "ssh ubuntu@ip-10-0-3-7",
    "df -h",
    "sudo du -sh /var/log/* | sort -h",
    "journalctl --disk-usage",
    "sudo journalctl --vacuum-size=200M",
    "sudo find /var/log -type f -name '*.gz' -mtime +7 -delete",
    "df -h",
]


def test_the_cast_reads_as_the_engineer_saw_it() -> None:
    runs = _runs("disk-full.cast")
    assert [r.command for r in runs] == [
        "ssh ubuntu@ip-10-0-3-7",  # at a zsh (oh-my-zsh) prompt on the laptop
        "df -h",  # at bash's colour prompt on the host
        "df -h",
        "cd /var/log",
        "ls",
        "sudo du -sh /var/log/* | sort -h",  # typed "-hx", then a backspace
        "jounralctl --disk-usage",
        "journalctl --disk-usage",  # typed "journalclt", three backspaces, "ctl …"
        "man journalctl",  # the pager's screen (alternate screen) is no output
        "sudo journalctl --vacuum-size=200M",
        "find /var/log -type f -name '*.gz' -mtime +7 -delete",  # wraps at column 80
        "sudo find /var/log -type f -name '*.gz' -mtime +7 -delete",
        "clear",
        "df -h",
        "exit",
    ]
    by_command = {r.command: r for r in runs}
    assert by_command["man journalctl"].output == ""
    assert by_command["ls"].output.startswith("apt          dist-upgrade")  # colours gone
    assert "\x1b" not in "".join(r.output for r in runs)
    assert by_command["exit"].output == "logout\nConnection to ip-10-0-3-7 closed."
    assert runs[1].at == datetime(2023, 11, 15, 11, 52, 4, 967104, tzinfo=UTC)
    assert runs[-2].output.splitlines()[1] == "/dev/root        30G   18G   12G  61% /"
    assert all(r.failed is None for r in runs)  # a recording does not say


def test_a_disk_full_fix_becomes_a_draft_runbook() -> None:
    runs = _runs("disk-full.cast")
    labels = {
        "alertname": "NodeFilesystemAlmostOutOfSpace",
        "instance": "ip-10-0-3-7",
        "mountpoint": "/",
        "severity": "critical",
    }
    draft = draft_from_session(
        runs, kind="cast", labels=labels, alerts=["NodeFilesystemAlmostOutOfSpace"]
    )

    assert draft.title == "NodeFilesystemAlmostOutOfSpace"
    assert draft.alerts == ["NodeFilesystemAlmostOutOfSpace"]
    assert [draft.render(s.command or "") for s in draft.steps] == DISK_FULL_STEPS
    assert draft.steps[0].command == "ssh ubuntu@{{instance}}"
    assert draft.variables == [DraftVariable("instance", example="ip-10-0-3-7", label="instance")]
    _grounded(draft, runs)
    assert [s.text for s in draft.steps] == [
        "Log in to the host",
        "Check disk usage",
        "Find what takes up the space",
        "Check the journal's disk usage",
        "Shrink the journal",
        "Delete the matching files",
        "Check disk usage",
    ]
    assert draft.steps[1].at == "2023-11-15T11:52:06+00:00"  # the second `df -h`, kept
    # what a diagnostic showed before a change: "you should see"
    assert draft.steps[3].expect == (
        "Archived and active journals take up 3.9G in the file system."
    )
    assert [s.expect for s in draft.steps if s.expect] == [draft.steps[3].expect]
    assert all(s.rollback is None for s in draft.steps)

    assert draft.dropped == [
        "2 navigation commands (cd /var/log, ls)",
        "2 shell housekeeping commands (clear, exit)",
        "1 help lookup: `man journalctl`",
        "1 typo: `jounralctl --disk-usage`",
        "1 failed attempt, redone just after: "
        "`find /var/log -type f -name '*.gz' -mtime +7 -delete`",
        "1 repeated command (the last run kept): `df -h`",
    ]

    parsed = _parsed(draft)
    assert _risks(parsed) == {
        "ssh ubuntu@{{instance}}": "yellow",
        "df -h": "green",
        "sudo du -sh /var/log/* | sort -h": "green",
        "journalctl --disk-usage": "green",
        "sudo journalctl --vacuum-size=200M": "red",
        "sudo find /var/log -type f -name '*.gz' -mtime +7 -delete": "red",
    }
    assert parsed.triggers.alerts == ["NodeFilesystemAlmostOutOfSpace"]
    assert [(v.name, v.key) for v in parsed.variables] == [("instance", "instance")]


def test_without_labels_the_host_is_suggested_as_a_variable() -> None:
    draft = draft_from_session(_runs("disk-full.cast"), kind="cast")
    assert draft.title == "Terminal session: journalctl, find"
    assert draft.steps[0].command == "ssh ubuntu@{{host}}"
    assert draft.variables == [DraftVariable("host", example="ip-10-0-3-7", label=None)]
    markdown = to_markdown(draft)
    assert "- `{{host}}`: e.g. `ip-10-0-3-7`" in markdown
    assert "Drafted from an asciinema recording" in markdown


# -- a crash-looping pod, from a bash history ---------------------------------------------------


def test_a_bash_history_with_timestamps_becomes_a_draft() -> None:
    runs = _runs("crashloop.bash_history")
    assert runs[0] == Ran(
        "kubectl config current-context", "", datetime(2023, 11, 16, 9, 24, tzinfo=UTC), None
    )
    assert all(r.at is not None and r.output == "" for r in runs)

    draft = draft_from_session(
        runs, kind="history", labels={"namespace": "payments", "deployment": "checkout"}
    )
    assert [s.command for s in draft.steps] == [
        "kubectl config current-context",
        "kubectl get pods -n {{namespace}}",
        "kubectl describe pod {{pod}} -n {{namespace}}",
        "kubectl logs {{pod}} -n {{namespace}} --previous",
        "kubectl logs {{pod}} -n {{namespace}} --previous | grep -i -m 20 error",
        "kubectl rollout history deployment/{{deployment}} -n {{namespace}}",
        "kubectl rollout undo deployment/{{deployment}} -n {{namespace}}",
        "kubectl rollout status deployment/{{deployment}} -n {{namespace}}",
        "kubectl get pods -n {{namespace}}",  # after the fix: the same check, kept
    ]
    assert draft.variables == [
        DraftVariable("namespace", example="payments", label="namespace"),
        DraftVariable("pod", example="checkout-7d9f8b6c4-x2k4q", label=None),
        DraftVariable("deployment", example="checkout", label="deployment"),
    ]
    assert [s.at for s in draft.steps][:2] == [
        "2023-11-16T09:24:00+00:00",
        "2023-11-16T09:24:15+00:00",
    ]
    assert draft.steps[6].text == "Roll back to the previous revision"
    assert draft.steps[3].text == "Read the previous container's logs"
    assert draft.title == "Shell history: kubectl"
    assert draft.dropped == [
        "2 shell housekeeping commands (clear, history)",
        "2 typos: `kubeclt get pods -n payments`, "
        "`kubectl rollout stauts deployment/checkout -n payments`",
        "1 repeated command (the last run kept): `kubectl get pods -n payments`",
    ]
    assert all(s.expect is None for s in draft.steps)  # a history has no output
    _grounded(draft, runs)
    risks = _risks(_parsed(draft))
    assert risks["kubectl rollout undo deployment/{{deployment}} -n {{namespace}}"] == "yellow"
    assert risks["kubectl logs {{pod}} -n {{namespace}} --previous"] == "green"
    assert "Drafted from a shell history" in to_markdown(draft)


# -- a node taken out, from a zsh extended history ----------------------------------------------


def test_a_zsh_extended_history_with_multi_line_commands() -> None:
    runs = _runs("node-notready.zsh_history")
    node = "ip-10-0-7-21.eu-west-1.compute.internal"
    assert runs[4] == Ran(
        f"kubectl drain {node} \\\n  --ignore-daemonsets --delete-emptydir-data --timeout=300s",
        "",
        datetime(2023, 11, 17, 5, 47, 51, tzinfo=UTC),
        None,
    )
    assert runs[5].command == (
        f"for p in $(kubectl get pods -A -o name --field-selector spec.nodeName={node}); do\n"
        '  echo "$p"\n'
        "done"
    )

    draft = draft_from_session(runs, kind="history")
    assert [v.name for v in draft.variables] == ["host", "node"]
    assert draft.variables[1] == DraftVariable("node", example=node)
    assert draft.steps[4].command == (
        "kubectl drain {{node}} \\\n  --ignore-daemonsets --delete-emptydir-data --timeout=300s"
    )
    assert "spec.nodeName={{node}}" in (draft.steps[5].command or "")
    assert "Values={{node}}" in (draft.steps[6].command or "")  # the same value, everywhere
    assert draft.dropped == [
        "1 navigation command (pwd)",
        "1 shell housekeeping command (exit)",
    ]
    _grounded(draft, runs)
    parsed = _parsed(draft)
    by_command = {s.command: s for s in parsed.steps}
    drain = by_command[draft.steps[4].command]
    assert drain.risk is not None and drain.risk.value == "red"
    assert drain.rollback is not None and drain.rollback.command == "kubectl uncordon {{node}}"
    terminate = by_command["aws ec2 terminate-instances --instance-ids i-0a1b2c3d4e5f67890"]
    assert terminate.risk is not None and terminate.risk.value == "red"


def test_zsh_metafied_bytes_are_read_back() -> None:
    # zsh writes Cyrillic u (d1 83) as d1 83 a3: 0x83 marks the next byte, xor 32
    cyrillic_u = "\u0443"
    history = b": 1700000000:0;echo \xd1\x83\xa3\n"
    assert [r.command for r in read_session(io.BytesIO(history))] == [f"echo {cyrillic_u}"]
    # a bash history in UTF-8 is left alone (the same byte is part of a character there)
    bash = f"echo {cyrillic_u}\n".encode()
    assert [r.command for r in read_session(io.BytesIO(bash))] == [f"echo {cyrillic_u}"]


def test_a_plain_history_without_timestamps() -> None:
    history = io.StringIO("df -h\n\nsudo systemctl restart nginx\nkubectl get pods \\\n  -A\n")
    runs = list(read_session(history))
    assert [r.command for r in runs] == [
        "df -h",
        "sudo systemctl restart nginx",
        "kubectl get pods \\\n  -A",
    ]
    assert all(r.at is None for r in runs)


# -- an nginx fix, recorded with `script` -------------------------------------------------------


def test_a_script_typescript_becomes_a_draft() -> None:
    runs = _runs("nginx-upstream.typescript")
    assert [r.command for r in runs] == [
        "systemctl status nginx --no-pager -l | head -n 8",  # "ngn", "ix", backspaces, "inx"
        "tail -n 3 /var/log/nginx/error.log",
        "ss -ltnp | grep 808",
        "cd /etc/nginx/conf.d",
        "vim app.conf",
        "nginx -t",
        "systemctl reload nginx",
        "curl -sI http://localhost/healthz",
        "exit",
    ]
    assert runs[-1].output == "exit"  # not "Script done on …"
    assert runs[4].output == ""  # vim's screen is not output
    assert runs[0].output.splitlines()[0] == (
        "● nginx.service - The nginx HTTP and reverse proxy server"
    )

    draft = draft_from_session(runs, kind="script")
    assert [s.command for s in draft.steps] == [
        r.command
        for r in runs
        if r.command
        not in (
            "cd /etc/nginx/conf.d",
            "exit",
        )
    ]
    edit = draft.steps[3]
    assert edit.text == "Edit the file (write down the change made)"  # an editor stays
    assert draft.steps[2].expect == (
        'LISTEN 0      4096       127.0.0.1:8082      0.0.0.0:*    users:(("java",pid=2231,fd=41))'
    )
    assert draft.steps[4].text == "Test the configuration"
    _grounded(draft, runs)
    risks = _risks(_parsed(draft))
    assert risks["systemctl reload nginx"] == "yellow"
    assert risks["curl -sI http://localhost/healthz"] == "green"
    assert "Drafted from a `script` recording" in to_markdown(draft)


# -- a recording with its keystrokes (asciinema rec --stdin) -------------------------------------


def test_keystrokes_say_where_commands_start_whatever_the_prompt() -> None:
    runs = _runs("pgbouncer-keys.cast")
    assert [r.command for r in runs] == [
        "systemctl status pgbouncer --no-pager | head -n 5",  # after "pg-primary-1 [prod] >>> "
        "sudo tail -n 20 /var/log/postgresql/pgbouncer.log",  # completed with Tab
        "sudo certbot renew --cert-name pgbouncer",  # a restart typed first, then Ctrl-C
        "sudo systemctl restart pgbouncer",
        "systemctl is-active pgbouncer",
    ]
    # the answer to certbot's question is output, not a command
    assert "Install the renewed certificate now? [Y/n] y" in runs[2].output
    assert runs[-1].output == "active"  # Ctrl-D ended the shell: its prompt is no output
    draft = draft_from_session(runs, kind="cast", labels={"instance": "pg-primary-1"})
    assert draft.steps[1].expect == (
        "2023-11-16 13:29:51.410 UTC [48211] FATAL cannot load TLS certificate "
        "/etc/pgbouncer/server.crt: expired"
    )
    assert draft.variables == []  # the host is only in the prompt
    _grounded(draft, runs)


# -- secrets ------------------------------------------------------------------------------------

SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "Sup3rS3cret-2023",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "3q2Zb1yQ0gq8l7nE5c0Yt1kR2wPj9vX4mH6sL8dA0fU",
    "hunter2-prod-7781",
    "cbt_live_5f1e2d3c4b5a69788796",
]


def test_secrets_typed_or_printed_never_reach_the_draft() -> None:
    runs = _runs("secrets.cast")
    recorded = "\n".join(r.command + "\n" + r.output for r in runs)
    assert all(secret in recorded for secret in SECRETS)

    redactor = Redactor({"DB_PASSWORD": "hunter2-prod-7781"})  # the engineer's known secrets
    draft = draft_from_session(runs, kind="cast", redactor=redactor)
    everything = to_markdown(draft) + repr(dataclasses.asdict(draft))
    assert [s for s in SECRETS if s in everything] == []
    commands = [s.command for s in draft.steps]
    assert "export AWS_SECRET_ACCESS_KEY=[REDACTED]" in commands
    assert "export AWS_ACCESS_KEY_ID=[REDACTED]" in commands
    assert any('-H "Authorization: Bearer [REDACTED]"' in (c or "") for c in commands)
    assert any("postgresql://app:[REDACTED]@db-1.internal" in (c or "") for c in commands)
    vault = next(s for s in draft.steps if (s.command or "").startswith("vault"))
    assert vault.expect == "[REDACTED:DB_PASSWORD]"
    _grounded(draft, runs, redactor)

    # without a redactor, the common credential shapes are still redacted
    default = draft_from_session(runs, kind="cast")
    assert [s for s in SECRETS[:5] if s in to_markdown(default)] == []


# -- bad input ----------------------------------------------------------------------------------


def test_binary_junk_in_a_cast_is_refused_naming_the_line() -> None:
    lines = (FIXTURES / "disk-full.cast").read_bytes().split(b"\n")
    junk = b"\n".join([*lines[:4], b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", *lines[4:]])
    with pytest.raises(SessionError, match=r"line 5: not UTF-8 text \(binary data at byte 1\)"):
        list(read_session(io.BytesIO(junk)))

    not_json = b"\n".join([*lines[:2], b"[0.5, 'o', 'single quotes']", *lines[2:]])
    with pytest.raises(SessionError, match=r"line 3: expected an asciinema event \[time, code"):
        list(read_session(io.BytesIO(not_json), "cast"))

    with pytest.raises(SessionError, match=r"line 1: expected an asciinema header"):
        list(read_session(io.BytesIO(b"\n".join(lines[1:])), "cast"))

    v1 = b'{"version": 1, "width": 80, "height": 24, "stdout": [[0.1, "hi"]]}\n'
    with pytest.raises(SessionError, match="version 1 is not supported"):
        list(read_session(io.BytesIO(v1)))

    with pytest.raises(SessionError, match=r"line 2: longer than 1024 KiB"):
        list(read_session(io.BytesIO(lines[0] + b"\n" + b"x" * (2 << 20))))


def test_what_is_not_a_session_at_all() -> None:
    with pytest.raises(SessionError, match="binary data"):
        detect(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(SessionError, match="empty"):
        list(read_session(io.BytesIO(b"")))
    with pytest.raises(SessionError, match=r"line 2: binary data \(a NUL byte\)"):
        list(read_session(io.BytesIO(b"df -h\nls\x00\x01\n"), "history"))
    with pytest.raises(SessionError, match="unknown kind 'pcap'"):
        read_session(io.BytesIO(b"x"), "pcap")


def test_detect() -> None:
    assert detect(b'{"version": 2, "width": 80}') == "cast"
    assert detect(b"\xef\xbb\xbf\n{") == "cast"
    assert detect(b"Script started on 2023-11-17 08:41:07+00:00 [TERM=") == "script"
    assert detect(b"\x1b]0;root@web-3:~\x07[root@web-3 ~]# ") == "script"
    assert detect(b"#1700126640\nkubectl get pods\n") == "history"
    assert detect(b": 1700200000:0;ssh bastion\n") == "history"


def test_too_many_commands_stop_with_a_clear_message() -> None:
    history = "".join(f"#{1700000000 + i}\nkubectl get pods -n ns-{i}\n" for i in range(5001))
    runs = read_session(io.StringIO(history))
    with pytest.raises(SessionError, match=r"line 10002: more than 5,000 commands"):
        for _ in runs:
            pass
    events = [(float(i), "o", f"$ echo {i}\r\n{i}\r\n") for i in range(10)]
    with pytest.raises(SessionError, match="more than 3 commands"):
        list(read_session(_cast(*events), max_commands=3))


def test_a_50_mb_cast_is_read_with_bounded_memory(tmp_path: Path) -> None:
    """A long `kubectl logs -f` left running in the recording: 50 MB of output events."""
    path = tmp_path / "big.cast"
    log = (
        "\x1b[2m2023-11-15T11:52:{s:02d}.123Z\x1b[0m \x1b[32mINFO\x1b[0m "
        "[http-nio-8080-exec-{n}] o.s.web.servlet.DispatcherServlet - Completed 200 OK in {n}ms\r\n"
    )
    size = 0
    with path.open("w") as cast:
        cast.write(json.dumps({"version": 2, "width": 120, "height": 40}) + "\n")
        event = 0
        while size < 50 << 20:
            if event % 5000 == 0:
                command = f"kubectl logs -f deploy/api-{event // 5000} -n payments"
                data = f"\x1b]0;ops@bastion: ~\x07ops@bastion:~$ {command}\r\n"
            else:
                data = "".join(log.format(s=i % 60, n=event % 500) for i in range(16))
            line = json.dumps([event * 0.01, "o", data]) + "\n"
            cast.write(line)
            size += len(line)
            event += 1
    assert path.stat().st_size >= 50 << 20

    started = time.perf_counter()
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            runs = list(read_session(stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started

    assert peak < 30 << 20, f"peak {peak / 2**20:.1f} MB"
    assert elapsed < 120, f"{elapsed:.0f} s"
    assert len(runs) == (event - 1) // 5000 + 1
    assert runs[0].command == "kubectl logs -f deploy/api-0 -n payments"
    for run in runs:
        assert len(run.output) <= OUTPUT_CHARS
        assert len(run.output.splitlines()) <= OUTPUT_LINES
    assert runs[0].output.endswith("Completed 200 OK in 499ms")


# -- the terminal, replayed ---------------------------------------------------------------------


def test_the_terminal_replay() -> None:
    runs = list(
        read_session(
            _cast(
                (0.1, "o", "$ "),
                (0.2, "o", "kubectl get pods"),
                (0.3, "o", "\x1b[D\x1b[D\x1b[D\x1b[D\x1b[1@p"),  # cursor left, insert
                (0.4, "o", "\r\n"),
                (0.5, "o", "downloading  10%\rdownloading  55%\rdownloading 100%\r\n"),
                (0.6, "o", "\x1b]0;a very long window t"),  # an escape cut across events
                (0.7, "o", "itle\x07$ echo "),
                (0.8, "o", "\x1b[1;3"),
                (0.9, "o", "1mred\x1b[0m\r\n"),
                (1.0, "o", "red\r\n$ "),
            )
        )
    )
    assert [(r.command, r.output) for r in runs] == [
        ("kubectl get ppods", "downloading 100%"),
        ("echo red", "red"),
    ]
    assert runs[0].at == datetime(2023, 11, 14, 22, 13, 20, 400000, tzinfo=UTC)


def test_the_recording_ends() -> None:
    # a line of output without its newline counts; a command typed but never entered does not
    runs = list(read_session(_cast((0.1, "o", "$ cat VERSION\r\n1.4.2$ sudo rebo"))))
    assert [(r.command, r.output) for r in runs] == [("cat VERSION", "1.4.2$ sudo rebo")]
    runs = list(read_session(_cast((0.1, "o", "$ date\r\nFri Nov 17\r\n$ sudo rebo"))))
    assert [(r.command, r.output) for r in runs] == [("date", "Fri Nov 17")]


def test_output_that_only_looks_like_a_prompt() -> None:
    runs = list(
        read_session(
            _cast(
                (0.1, "o", "ops@bastion:~$ kubectl top nodes\r\n"),
                (0.2, "o", "alice@example.com 100%\r\n$ not a command\r\n# nor this\r\n"),
            )
        )
    )
    assert [(r.command, r.output) for r in runs] == [
        ("kubectl top nodes", "alice@example.com 100%\n$ not a command\n# nor this")
    ]


def test_a_long_command_wraps_at_the_recorded_width() -> None:
    # readline at the right margin: the character, a space and a carriage return
    typed = "kubectl -n payments get pods -o wide"
    echo = "".join(c + (" \r" if (2 + i + 1) % 20 == 0 else "") for i, c in enumerate(typed))
    cast = _cast((0.1, "o", "$ "), (0.2, "o", echo), (0.3, "o", "\r\n"), width=20)
    runs = list(read_session(cast))
    assert [r.command for r in runs] == [typed]


def test_asciinema_v3_and_prompts() -> None:
    runs = list(
        read_session(
            _cast(
                (0.5, "o", "[ec2-user@ip-10-0-1-5 ~]$ "),
                (0.5, "o", "uptime\r\n 11:02:03 up 3 days,  load average: 9.12, 8.40, 7.95\r\n"),
                (0.25, "o", "(venv) dev@laptop:~/src/api$ pytest -x\r\n1 passed\r\n"),
                (0.25, "m", "a marker"),
                (0.25, "o", "dev@laptop ~/src % git status\r\nclean\r\n"),
                (0.25, "o", "➜  api git:(main) ✗ make lint\r\nok\r\n"),
                (0.25, "o", "# a comment in a file, printed\r\n"),
                (0.25, "o", "bash-5.2# exit\r\n"),
                version=3,
            )
        )
    )
    assert [(r.command, r.output) for r in runs] == [
        ("uptime", " 11:02:03 up 3 days,  load average: 9.12, 8.40, 7.95"),
        ("pytest -x", "1 passed"),
        ("git status", "clean"),
        ("make lint", "ok\n# a comment in a file, printed"),
        ("exit", ""),
    ]
    assert runs[1].at == datetime(2023, 11, 14, 22, 13, 21, 250000, tzinfo=UTC)  # relative


def test_a_continued_command_at_ps2() -> None:
    runs = list(
        read_session(
            _cast(
                (0.1, "o", "$ helm upgrade api ./chart \\\r\n"),
                (0.2, "o", "> --set image.tag=1.4.2\r\n"),
                (0.3, "o", 'Release "api" has been upgraded.\r\n$ '),
            )
        )
    )
    assert [(r.command, r.output) for r in runs] == [
        ("helm upgrade api ./chart \\\n--set image.tag=1.4.2", 'Release "api" has been upgraded.')
    ]


# -- what is left out, and why ------------------------------------------------------------------


def _kept(*commands: str | Ran) -> tuple[list[str], list[str]]:
    runs = [c if isinstance(c, Ran) else Ran(c) for c in commands]
    draft = draft_from_session(runs, kind="history")
    return [draft.render(s.command or "") for s in draft.steps], draft.dropped


def test_navigation_housekeeping_help_and_viewers_are_left_out() -> None:
    kept, dropped = _kept(
        "",
        "# the disk again",
        "pwd",
        "ls -la /var/log",
        "cd /srv && du -sh *",  # a cd that is part of a command stays
        "whoami",
        "sudo -i",
        "bash",
        "man df",
        "kubectl rollout --help",
        "which kubectl",
        "less /var/log/syslog",
        "top",
        "top -b -n 1 | head -n 20",  # prints: stays
        "history | grep drain",
        "vim /etc/fstab",  # a change was made there: stays
        "logout",
    )
    assert kept == ["cd /srv && du -sh *", "top -b -n 1 | head -n 20", "vim /etc/fstab"]
    assert dropped == [
        "1 empty line",
        "1 comment",
        "2 navigation commands (pwd, ls)",
        "5 shell housekeeping commands (whoami, sudo -i, bash, history, logout)",
        "3 help lookups: `man df`, `kubectl rollout --help`, `which kubectl`",
        "2 interactive viewers (nothing to replay; add commands that print what was looked "
        "at): `less /var/log/syslog`, `top`",
    ]


def test_typos_and_corrections() -> None:
    kept, dropped = _kept(
        Ran("kubeclt get pods", "bash: kubeclt: command not found"),
        Ran("./scripts/rotate.sh", "bash: ./scripts/rotate.sh: No such file or directory"),
        Ran("cat /etc/nginx/nginx.cnf", "cat: /etc/nginx/nginx.cnf: No such file or directory"),
        Ran("cat /etc/nginx/nginx.conf", "user www-data;"),
        Ran(
            "systemctl restart nginx",
            "Failed to restart nginx.service: Access denied\n"
            "See system logs and 'systemctl status nginx.service' for details.\n"
            "Interactive authentication required. Permission denied",
        ),
        Ran("sudo systemctl restart nginx"),
        "kubectl cordon node-1",  # cordon then uncordon: both real words, both kept
        "kubectl uncordon node-1",
        "kubectl scale deploy/api --replicas=2",  # a number changed: both kept
        "kubectl scale deploy/api --replicas=3",
        "kubectl rollout stauts deploy/api",  # no output, but "stauts" is no word
        "kubectl rollout status deploy/api",
        "kubectl get pod",
        "kubectl get pods",
    )
    assert kept == [
        "cat /etc/nginx/nginx.conf",
        "sudo systemctl restart nginx",
        "kubectl cordon node-1",
        "kubectl uncordon node-1",
        "kubectl scale deploy/api --replicas=2",
        "kubectl scale deploy/api --replicas=3",
        "kubectl rollout status deploy/api",
        "kubectl get pod",
        "kubectl get pods",
    ]
    assert dropped == [
        "3 typos: `kubeclt get pods`, `./scripts/rotate.sh`, `kubectl rollout stauts deploy/api`",
        "2 failed attempts, redone just after: `cat /etc/nginx/nginx.cnf`, "
        "`systemctl restart nginx`",
    ]


def test_a_search_for_errors_is_no_failed_command() -> None:
    found = "\n".join(f"ERROR 2023-11-15 11:52:{i:02d} upstream timed out" for i in range(12))
    kept, dropped = _kept(
        Ran("grep -i error /var/log/app/app.log", found),
        Ran("grep -i error /var/log/app/app.log.1", found),
    )
    assert kept == ["grep -i error /var/log/app/app.log", "grep -i error /var/log/app/app.log.1"]
    assert dropped == []


def test_a_repeat_keeps_the_last_run_but_a_check_before_and_after_stays() -> None:
    kept, dropped = _kept(
        Ran("df -h /", "97%"),
        "ls",
        Ran("df -h /", "98%"),
        "sudo journalctl --vacuum-size=200M",
        Ran("df -h /", "61%"),
    )
    assert kept == ["df -h /", "sudo journalctl --vacuum-size=200M", "df -h /"]
    assert dropped[-1] == "1 repeated command (the last run kept): `df -h /`"
    draft = draft_from_session(
        [Ran("df -h /", "97%"), Ran("df -h /", "98%"), Ran("sudo journalctl --vacuum-size=1G")],
        kind="session",
    )
    assert draft.steps[0].expect == "98%"


def test_expect_is_the_tail_of_a_diagnostic_before_a_change() -> None:
    output = "\n".join(f"line {i}" for i in range(30))
    draft = draft_from_session(
        [Ran("kubectl get pods -n web", output), Ran("kubectl delete pod web-1 -n web", "gone")],
        kind="session",
    )
    assert draft.steps[0].expect == "\n".join(f"line {i}" for i in range(20, 30))
    assert draft.steps[1].expect is None  # a change's own output is not expected


# -- variables ----------------------------------------------------------------------------------


def test_variables_from_labels_are_whole_tokens_only() -> None:
    runs = [
        Ran("kubectl -n checkout get deploy checkout-api"),  # not inside checkout-api
        Ran("df -h /var && du -sh /var/log"),  # the mount, not a path below it
        Ran("ssh admin@db-7 'sudo systemctl status postgresql'"),
    ]
    draft = draft_from_session(
        runs,
        kind="session",
        labels={"namespace": "checkout", "mountpoint": "/var", "instance": "db-7", "job": "node"},
    )
    assert [s.command for s in draft.steps] == [
        "kubectl -n {{namespace}} get deploy checkout-api",
        "df -h {{mountpoint}} && du -sh /var/log",
        "ssh admin@{{instance}} 'sudo systemctl status postgresql'",
    ]
    assert [(v.name, v.example, v.label) for v in draft.variables] == [
        ("namespace", "checkout", "namespace"),
        ("mountpoint", "/var", "mountpoint"),
        ("instance", "db-7", "instance"),
    ]
    _grounded(draft, runs)


def test_suggested_variables_and_names_already_used() -> None:
    runs = [
        Ran("kubectl get pods -n payments -o go-template='{{pod}} {{.metadata.name}}'"),
        Ran("kubectl --namespace=payments delete pod api-5c7b9d6f4-q8z2m"),
        Ran("kubectl describe nodes ip-10-0-1-9.ec2.internal"),
        Ran("kubectl drain node/ip-10-0-1-9.ec2.internal --ignore-daemonsets"),
        Ran("tail -n 50 /var/log/syslog"),  # -n here is no namespace
        Ran("ssh -i ~/.ssh/ops.pem -p 2222 ubuntu@10.0.1.9"),
    ]
    draft = draft_from_session(runs, kind="session")
    assert [s.command for s in draft.steps] == [
        "kubectl get pods -n {{namespace}} -o go-template='{{pod}} {{.metadata.name}}'",
        "kubectl --namespace={{namespace}} delete pod {{pod_2}}",
        "kubectl describe nodes {{node}}",
        "kubectl drain node/{{node}} --ignore-daemonsets",
        "tail -n 50 /var/log/syslog",
        "ssh -i ~/.ssh/ops.pem -p 2222 ubuntu@{{host}}",
    ]
    assert [(v.name, v.example) for v in draft.variables] == [
        ("namespace", "payments"),
        ("pod_2", "api-5c7b9d6f4-q8z2m"),  # "{{pod}}" was already in a command
        ("node", "ip-10-0-1-9.ec2.internal"),
        ("host", "10.0.1.9"),
    ]
    _grounded(draft, runs)


def test_titles() -> None:
    runs = [
        Ran("df -h"),
        Ran("sudo systemctl restart nginx"),
        Ran("kubectl rollout restart deploy/x"),
    ]
    assert draft_from_session(runs, kind="cast").title == "Terminal session: systemctl, kubectl"
    assert draft_from_session(runs[:1], kind="history").title == "Shell history: df"
    assert draft_from_session([], kind="cast").title == "Terminal session"
    assert draft_from_session(runs, kind="cast", title="Nginx down").title == "Nginx down"
    assert draft_from_session(runs, kind="cast", alerts=["A", "B"]).title == "A, B"
