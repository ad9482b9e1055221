"""A postmortem becomes a draft runbook: its timeline's and what-we-did sections' actions are the
steps (commands verbatim), its action items are notes, the events are counted in `dropped`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from ddoc.platform.errors import Invalid
from ddoc.runbooks.drafts import Draft, to_markdown, ungrounded
from ddoc.runbooks.drafts.postmortem import MAX_BYTES, draft_from_postmortem
from ddoc.runbooks.model import RiskClass, StepKind
from ddoc.runbooks.parsing import parse_runbook

FIXTURES = Path(__file__).parent / "fixtures" / "postmortems"
PGBOUNCER = (FIXTURES / "pgbouncer_exhaustion.md").read_text(encoding="utf-8")
GDOC = (FIXTURES / "session_cache_gdoc.html").read_text(encoding="utf-8")
CONFLUENCE = (FIXTURES / "etl_disk_full_confluence.txt").read_text(encoding="utf-8")


def _steps(draft: Draft) -> list[tuple[str | None, str, str | None]]:
    return [(step.at, step.text, step.command) for step in draft.steps]


def _input_text(content: str, fmt: str) -> str:
    """What a reader of the postmortem sees: an HTML export's text, whitespace collapsed."""
    if fmt == "html":
        return " ".join(BeautifulSoup(content, "html.parser").get_text().split())
    return content


def _assert_grounded(draft: Draft, content: str, fmt: str, *, as_parsed: bool = True) -> None:
    """Every command (rendered with its variables' examples) is in the input, line by line,
    and (`as_parsed`) is one the runbook parser itself finds in the postmortem."""
    text = _input_text(content, fmt)
    for step in draft.steps:
        for command in (step.command, step.rollback):
            if command is not None:
                for line in draft.render(command).split("\n"):
                    assert line.strip() in text, line
    if not as_parsed:
        return
    parsed = parse_runbook(content, fmt)
    found = {s.command for s in parsed.steps if s.command}
    found |= {s.rollback.command for s in parsed.steps if s.rollback and s.rollback.command}
    assert ungrounded(draft, found) == []


def _assert_reparses(draft: Draft) -> list[tuple[StepKind, RiskClass | None]]:
    """The draft's document parses as a runbook into the same steps; their kinds and risks."""
    parsed = parse_runbook(to_markdown(draft), "markdown")
    assert len(parsed.steps) == len(draft.steps)
    for ours, theirs in zip(draft.steps, parsed.steps, strict=True):
        assert theirs.command == ours.command
    return [(s.kind, s.risk) for s in parsed.steps]


# --- the markdown postmortem ---------------------------------------------------------------
def test_markdown_postmortem_steps_are_the_timelines_actions_in_order() -> None:
    draft = draft_from_postmortem(PGBOUNCER, "markdown")

    assert draft.kind == "postmortem"
    assert draft.title == "Checkout 503s from PgBouncer connection exhaustion — draft runbook"
    assert _steps(draft) == [
        (
            "14:06",
            "Checked who holds the connections on db-main-1",
            "SELECT count(*) FROM pg_stat_activity",
        ),
        ("14:11", "Restarted pgbouncer on db-proxy-1", "sudo systemctl restart pgbouncer"),
        (
            "14:18",
            "Paused the invoice exporter",
            "kubectl -n billing scale deployment/invoice-exporter --replicas=0",
        ),
        (
            "14:22",
            "Terminated the exporter's leftover idle-in-transaction sessions",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = "
            "'idle in transaction' AND application_name = 'invoice-exporter';",
        ),
        ("14:27", "Raised max_client_conn from 800 to 2000 in /etc/pgbouncer/pgbouncer.ini", None),
        ("14:28", "Reloaded pgbouncer to pick up the new limit", "sudo systemctl reload pgbouncer"),
        (
            "14:31",
            "Verified the pools",
            "psql -h db-proxy-1 -p 6432 -U pgbouncer pgbouncer -c 'SHOW POOLS'",
        ),
    ]
    _assert_grounded(draft, PGBOUNCER, "markdown")


def test_markdown_postmortem_action_items_are_notes_never_steps() -> None:
    draft = draft_from_postmortem(PGBOUNCER, "markdown")

    assert draft.notes == [
        "Cap idle transactions for the exporter role: `ALTER ROLE invoice_exporter SET "
        "idle_in_transaction_session_timeout = '60s';` (Priya, DB-812)",
        "Move PDF uploads out of the database transaction (billing team, BILL-2203)",
        "Alert on `cl_waiting` per pool, not only per host (Tomasz, OBS-377)",
        "Turn this postmortem into the PgBouncer saturation runbook",
    ]
    assert not any("ALTER ROLE" in (step.command or "") for step in draft.steps)
    document = to_markdown(draft)
    assert "## Action items" in document
    assert "- [ ]" not in document  # the checkboxes are not carried over


def test_markdown_postmortem_events_and_what_came_before_are_counted_not_steps() -> None:
    draft = draft_from_postmortem(PGBOUNCER, "markdown")
    dropped = "\n".join(draft.dropped)

    events = next(line for line in draft.dropped if "record events" in line)
    assert events.startswith("left out 6 entries")
    for event in ("14:02 Alert", "14:03 PagerDuty paged", "14:05 Priya acknowledged"):
        assert event in events
    assert "14:09 Tomasz declared a SEV-2" in events
    assert "14:43 Monitoring confirmed" in events
    assert "15:10 Customer support reported" in events
    # an observation, no action
    assert "left out 1 entry that tells what was seen" in dropped
    assert "14:13 Errors dropped" in dropped
    # the deploy that caused it is not part of the response
    assert "before the incident was detected" in dropped
    assert "13:40 Deployed invoice-exporter" in dropped
    assert not any("helm upgrade" in (s.command or "") for s in draft.steps)
    # the resolution section repeats the timeline: the timeline's steps (and times) stay
    assert "left out 3 entries that repeat a step" in dropped
    restarts = [s for s in draft.steps if s.command == "sudo systemctl restart pgbouncer"]
    assert [s.at for s in restarts] == ["14:11"]


def test_markdown_postmortem_draft_parses_back_with_its_risks() -> None:
    draft = draft_from_postmortem(PGBOUNCER, "markdown")

    kinds = _assert_reparses(draft)
    assert kinds[0] == (StepKind.COMMAND, RiskClass.GREEN)  # SELECT count(*) …
    assert kinds[1] == (StepKind.COMMAND, RiskClass.YELLOW)  # systemctl restart
    assert kinds[4][0] == StepKind.MANUAL  # raised max_client_conn by hand
    assert kinds[6] == (StepKind.COMMAND, RiskClass.GREEN)  # psql … SHOW POOLS


def test_labels_become_variables_in_commands_whole_tokens_only() -> None:
    labels = {
        "instance": "db-proxy-1",
        "namespace": "billing",
        "alertname": "PgBouncerClientWaiting",
    }
    draft = draft_from_postmortem(
        PGBOUNCER, alerts=["PgBouncerClientWaiting"], labels=labels, title="PgBouncer saturation"
    )

    assert draft.title == "PgBouncer saturation"
    assert draft.alerts == ["PgBouncerClientWaiting"]
    assert [(v.name, v.example, v.label) for v in draft.variables] == [
        ("instance", "db-proxy-1", "instance"),
        ("namespace", "billing", "namespace"),
    ]
    commands = [s.command for s in draft.steps if s.command]
    assert "kubectl -n {{namespace}} scale deployment/invoice-exporter --replicas=0" in commands
    assert "psql -h {{instance}} -p 6432 -U pgbouncer pgbouncer -c 'SHOW POOLS'" in commands
    # the step's words keep the host: only commands take variables
    assert draft.steps[1].text == "Restarted pgbouncer on db-proxy-1"
    _assert_grounded(draft, PGBOUNCER, "markdown")
    assert "`{{instance}}`: e.g. `db-proxy-1` (alert label `instance`)" in to_markdown(draft)

    near = "## Timeline\n- 10:01 Restarted it: `ssh db-proxy-10 sudo systemctl restart pgbouncer`\n"
    other = draft_from_postmortem(near, labels={"instance": "db-proxy-1"})
    assert other.steps[0].command == "ssh db-proxy-10 sudo systemctl restart pgbouncer"
    assert other.variables == []


# --- the Google-doc export -----------------------------------------------------------------
def test_google_doc_export_with_a_time_event_table() -> None:
    draft = draft_from_postmortem(GDOC, "html")

    assert draft.title == "Session API latency after a Redis config push — draft runbook"
    assert _steps(draft) == [
        ("09:19", "Looked at the cache", "redis-cli -h redis-sessions-1 INFO memory"),
        (
            "09:25",
            "Reverted the config push",
            "kubectl -n sessions rollout undo statefulset/redis-sessions",
        ),
        (
            "09:29",
            "Raised maxmemory on the running primary without waiting for the rollout",
            "redis-cli -h redis-sessions-1 CONFIG SET maxmemory 8gb",
        ),
        (
            "09:33",
            "Scaled session-api up from 6 to 12 replicas to absorb the database fallback",
            None,
        ),
        # what-we-did: its revert repeats the timeline's; the rest is new
        (
            None,
            "Cleared the stale negative-cache entries",
            "redis-cli -h redis-sessions-1 -n 2 UNLINK session:negative-cache",
        ),
        (
            None,
            "Scaled session-api back down to 6 replicas at 10:30 once the hit rate recovered",
            None,
        ),
    ]
    assert draft.notes == [
        "Validate maxmemory in CI against the instance size (Luis)",
        "Alert on evicted_keys rate above 100/s (Amara)",
    ]
    dropped = "\n".join(draft.dropped)
    assert "left out 3 entries that record events" in dropped
    assert "09:16 Amara acknowledged the page" in dropped
    assert "09:22 Luis found the config push" in dropped  # what was found, not done
    assert "left out 1 entry that repeats a step" in dropped
    _assert_grounded(draft, GDOC, "html")
    kinds = _assert_reparses(draft)
    assert kinds[0] == (StepKind.COMMAND, RiskClass.GREEN)  # INFO memory reads
    assert kinds[4] == (StepKind.COMMAND, RiskClass.RED)  # UNLINK deletes keys


# --- the Confluence paste ------------------------------------------------------------------
def test_confluence_text_paste() -> None:
    draft = draft_from_postmortem(CONFLUENCE, "text")

    assert draft.title == "Nightly ETL stalled on a full disk on etl-worker-3 — draft runbook"
    assert _steps(draft) == [
        ("02:21", "Checked the volume", "df -h /var/lib/etl"),
        (
            "02:26",
            "Deleted the stale spill files",
            "find /var/lib/etl/spill -name '*.tmp' -mtime +2 -delete",
        ),
        ("02:30", "Restarted the scheduler", "sudo systemctl restart etl-scheduler"),
        ("02:34", "Resized the data volume from 500 GiB to 1 TiB in the cloud console", None),
        ("02:41", "To grow the filesystem", "sudo xfs_growfs /var/lib/etl"),
        ("02:45", "Re-ran the failed stage", "etlctl run --stage join --from-checkpoint"),
    ]
    assert draft.notes[:3] == [
        "Add a disk usage alert at 80% for /var/lib/etl (owner: Dana)",
        "Restore the cleanup cron: `find /var/lib/etl/spill -name '*.tmp' -mtime +2 -delete` "
        "(owner: Femi)",
        "Check the other ETL workers for the same gap",
    ]
    assert draft.notes[3].startswith("We only noticed")  # lessons learned
    events = next(line for line in draft.dropped if "record events" in line)
    assert events.startswith("left out 3 entries")
    assert "06:58 Run finished; status page updated" in events
    _assert_grounded(draft, CONFLUENCE, "text")
    kinds = _assert_reparses(draft)
    assert kinds[0] == (StepKind.COMMAND, RiskClass.GREEN)  # df
    assert kinds[1] == (StepKind.COMMAND, RiskClass.RED)  # find … -delete
    assert kinds[3][0] == StepKind.MANUAL


# --- what an entry is ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "at"),
    [
        ("- 14:02 Restarted nginx on web-3", "14:02"),
        ("- **14:02 UTC** Restarted nginx on web-3", "14:02 UTC"),
        ("- [14:02] Restarted nginx on web-3", "14:02"),
        ("- 2026-03-01 14:02 - Restarted nginx on web-3", "2026-03-01 14:02"),
        ("- 2026-03-01T14:02:00Z Restarted nginx on web-3", "2026-03-01T14:02:00Z"),
        ("- T+12m: Restarted nginx on web-3", "T+12m"),
        ("- 2:02 PM — Restarted nginx on web-3", "2:02 PM"),
        ("- 14:02:33 | Restarted nginx on web-3", "14:02:33"),
        ("- Restarted nginx on web-3", None),
    ],
)
def test_an_entrys_time_goes_to_at_as_written(line: str, at: str | None) -> None:
    draft = draft_from_postmortem(f"# Outage\n\n## Timeline\n\n{line}\n")
    assert _steps(draft) == [(at, "Restarted nginx on web-3", None)]


@pytest.mark.parametrize(
    "entry",
    [
        "Restarted pgbouncer on db-proxy-1",
        "we rolled back the deploy",
        "Priya failed over the primary to db-2",
        "Drained node-7",
        "Cordoned node-7 and node-8",
        "Bumped the worker pool from 8 to 16",
        "Flushed the CDN cache for /static",
        "Killed the runaway query",
        "Disabled the feature flag checkout_v2",
        "Promoted the replica on db-2",
        "Rotated the expired TLS certificate",
        "Vacuumed the jobs table",
        "Re-ran the nightly export",
        "Switched traffic to eu-central-1",
        "Manually scaled the api to 12 replicas",
    ],
)
def test_actions_are_manual_steps(entry: str) -> None:
    draft = draft_from_postmortem(f"## What we did\n\n- 10:00 {entry}\n")
    assert [(s.text, s.command) for s in draft.steps] == [(entry[:1].upper() + entry[1:], None)]


@pytest.mark.parametrize(
    "entry",
    [
        "Alert HighErrorRate fired",
        "PagerDuty paged the on-call",
        "Sam acknowledged the page",
        "Sam joined the call",
        "Declared a SEV-1",
        "Noticed the queue was full",
        "Customer reported checkout errors",
        "Status page updated",
        "Monitoring confirmed recovery",
        "Latency increased to 2 s",
        "Errors dropped briefly",
        "The pod restarted by itself",
        "Deploy of v7 completed",
        "Run finished",
        "Started investigating the queue",
    ],
)
def test_events_and_observations_are_not_steps(entry: str) -> None:
    draft = draft_from_postmortem(f"## Timeline\n\n- 10:00 {entry}\n- 10:05 Restarted nginx\n")
    assert [s.text for s in draft.steps] == ["Restarted nginx"]
    assert any(f"10:00 {entry}" in line for line in draft.dropped)


def test_commands_in_prose_code_blocks_outputs_and_rollbacks() -> None:
    content = """# Incident 42: API outage

## Timeline

- 14:02 Alert `ApiErrorRate` fired
- 14:05 Rolled back to 1.2 (`helm rollback api 41 -n api`), revert: `helm rollback api 42 -n api`
- 14:09 Priya drained node-7:

  ```
  kubectl drain node-7 --ignore-daemonsets
  node/node-7 cordoned
  ```

- 14:12 Ran kubectl -n api rollout restart deploy/api to pick up the new config
- 14:20 Restarted the api again with `kubectl -n api rollout restart deploy/api`
"""
    draft = draft_from_postmortem(content)
    assert _steps(draft) == [
        ("14:05", "Rolled back to 1.2", "helm rollback api 41 -n api"),
        ("14:09", "Priya drained node-7", "kubectl drain node-7 --ignore-daemonsets"),
        ("14:12", "To pick up the new config", "kubectl -n api rollout restart deploy/api"),
        # the same command twice in one timeline: done twice, kept twice
        ("14:20", "Restarted the api again", "kubectl -n api rollout restart deploy/api"),
    ]
    assert draft.steps[0].rollback == "helm rollback api 42 -n api"
    assert draft.steps[1].expect == "node/node-7 cordoned"
    assert draft.title == "API outage — draft runbook"
    # the parser keeps a block with no prompts whole; the draft tells the output from the command
    _assert_grounded(draft, content, "markdown", as_parsed=False)
    _assert_reparses(draft)


def test_what_we_did_gives_the_command_of_a_timeline_step() -> None:
    content = """# Kafka consumer lag

## Timeline
| When (UTC) | Who | What |
|---|---|---|
| 08:01 | bot | Alert KafkaConsumerLag fired |
| 08:09 | Ana | Increased the partitions of orders |

## What we did
We increased the partitions of `orders` from 12 to 24 with
`kafka-topics --bootstrap-server kafka-0:9092 --alter --topic orders --partitions 24`.
"""
    draft = draft_from_postmortem(content)
    assert _steps(draft) == [
        (
            "08:09",
            "Increased the partitions of orders",
            "kafka-topics --bootstrap-server kafka-0:9092 --alter --topic orders --partitions 24",
        )
    ]
    assert any("gives the command of a step" in line for line in draft.dropped)


def test_titles() -> None:
    body = "\n\n## Timeline\n\n- 10:00 Restarted nginx\n"
    cases = {
        "# Postmortem: INC-1234 — Login outage (2026-03-01)": "Login outage",
        "# Incident review: Payments latency, March 1, 2026": "Payments latency",
        "# RCA - Disk full on build-agent-4": "Disk full on build-agent-4",
        "# Postmortem": "Untitled postmortem",
    }
    for heading, title in cases.items():
        assert draft_from_postmortem(heading + body).title == f"{title} — draft runbook"
    front = "---\ntitle: 'Post-mortem: Queue backlog'\n---\n" + body
    assert draft_from_postmortem(front).title == "Queue backlog — draft runbook"
    assert draft_from_postmortem(body, title="  Nginx restarts ").title == "Nginx restarts"


# --- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "  \n\n\t\n"])
@pytest.mark.parametrize("fmt", ["markdown", "text", "html"])
def test_an_empty_document_is_a_draft_with_no_steps(content: str, fmt: str) -> None:
    draft = draft_from_postmortem(content, fmt)
    assert draft.steps == []
    assert draft.dropped == ["no actions were found: the postmortem is empty"]


def test_a_postmortem_without_a_timeline_has_no_steps_and_says_why() -> None:
    content = """# Postmortem: Search outage

## Summary
Search returned errors for 20 minutes. We restarted the cluster.

## Root cause
A mapping change.

## Action items
- Review mapping changes before they ship
"""
    draft = draft_from_postmortem(content)
    assert draft.steps == []
    assert draft.notes == ["Review mapping changes before they ship"]
    assert draft.dropped == [
        "no actions were found: the postmortem has no timeline or what-we-did section (a "
        "heading such as Timeline, Actions taken, Mitigation or Resolution)"
    ]


def test_a_timeline_of_events_only_has_no_steps_and_says_why() -> None:
    content = "## Timeline\n\n- 10:00 Alert fired\n- 10:02 Sam acknowledged\n- 10:30 It recovered\n"
    draft = draft_from_postmortem(content)
    assert draft.steps == []
    assert draft.dropped[0].startswith("no actions were found: no entry of the timeline")
    assert any("left out 2 entries that record events" in line for line in draft.dropped)


def test_time_stamped_lines_without_a_timeline_heading() -> None:
    content = (
        "Notes from the call\n10:01 Restarted nginx on web-3 with sudo systemctl restart nginx\n"
    )
    draft = draft_from_postmortem(content, "text")
    assert _steps(draft) == [("10:01", "Restarted nginx on web-3", "sudo systemctl restart nginx")]
    assert "no timeline heading" in draft.dropped[0]


def test_bad_format_binary_and_oversized_input_are_invalid() -> None:
    with pytest.raises(Invalid, match="unsupported postmortem format"):
        draft_from_postmortem("## Timeline", "docx")
    with pytest.raises(Invalid, match="binary"):
        draft_from_postmortem("## Timeline\n\x00\x01", "text")
    huge = PGBOUNCER * (5_000_000 // len(PGBOUNCER) + 1)  # 5 MB
    started = time.monotonic()
    with pytest.raises(Invalid, match=f"the limit is {MAX_BYTES:,} bytes"):
        draft_from_postmortem(huge)
    assert time.monotonic() - started < 1


def test_a_long_timeline_under_the_limit_is_drafted_in_reasonable_time() -> None:
    entry = "- 14:{m:02d} Restarted pgbouncer on db-{n} (`sudo systemctl restart pgbouncer`)\n"
    content = "## Timeline\n" + "".join(entry.format(m=n % 60, n=n) for n in range(5000))
    assert len(content) > 350_000
    started = time.monotonic()
    draft = draft_from_postmortem(content)
    assert len(draft.steps) == 5000
    assert time.monotonic() - started < 20


def test_sub_headings_of_the_timeline_and_time_headings() -> None:
    content = """# Outage

## Incident timeline

### Detection
- 14:00 Alert `NginxDown` fired
- 14:01 Restarted nginx on web-1

### 14:05 UTC
Drained node-7 with `kubectl drain node-7 --ignore-daemonsets`.

Then cordoned node-8.

### Response
- Restarted nginx on web-2

## Root cause
- Restarted nginx on web-3 is what we should have done
"""
    draft = draft_from_postmortem(content)
    assert _steps(draft) == [
        ("14:01", "Restarted nginx on web-1", None),
        ("14:05 UTC", "Drained node-7", "kubectl drain node-7 --ignore-daemonsets"),
        ("14:05 UTC", "Cordoned node-8", None),
        # another section, but another host: not a repeat
        (None, "Restarted nginx on web-2", None),
    ]
    _assert_reparses(draft)


def test_confluence_storage_html_code_macros_and_commands_in_prose() -> None:
    content = """<h1>Postmortem: Crashlooping web pods</h1>
<h2>Timeline</h2>
<p>10:02 Ran kubectl get pods -n web | grep CrashLoop to list them</p>
<p>10:05 Deleted the bad pods: kubectl -n web delete pod -l app=web,version=v2 &amp;&amp; \
kubectl -n web get pods</p>
<h2>Mitigation</h2>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>\
<ac:plain-text-body><![CDATA[kubectl -n web rollout undo deploy/web]]></ac:plain-text-body>\
</ac:structured-macro>
<p>Rolled back web with the command above.</p>
"""
    draft = draft_from_postmortem(content, "html")
    assert draft.title == "Crashlooping web pods — draft runbook"
    assert _steps(draft) == [
        ("10:02", "To list them", "kubectl get pods -n web | grep CrashLoop"),
        (
            "10:05",
            "Deleted the bad pods",
            "kubectl -n web delete pod -l app=web,version=v2 && kubectl -n web get pods",
        ),
        (None, "Rolled back web with the command above", "kubectl -n web rollout undo deploy/web"),
    ]
    _assert_grounded(draft, content, "html", as_parsed=False)
    kinds = _assert_reparses(draft)
    assert kinds[1] == (StepKind.COMMAND, RiskClass.RED)  # kubectl delete


def test_google_doc_lines_as_paragraphs_and_bold_paragraphs_as_headings() -> None:
    content = """<html><body><p class="title"><span>Postmortem&nbsp;&mdash; Queue backlog</span></p>
<p><span style="font-weight:700">Timeline</span></p>
<p><span>14:02&nbsp;UTC </span><span>Alert QueueBacklog fired</span></p>
<p><span>14:07&nbsp;UTC </span><span>Scaled the workers to 20: </span>\
<span style="font-family:'Courier New'">kubectl -n jobs scale deploy/worker --replicas=20</span></p>
<p><span>14:30 UTC Backlog drained</span></p>
<p><span style="font-weight:700">Action items</span></p>
<ul><li><span>Autoscale workers on queue depth</span></li></ul>
</body></html>"""
    draft = draft_from_postmortem(content, "html", labels={"namespace": "jobs"})
    assert draft.title == "Queue backlog — draft runbook"
    assert _steps(draft) == [
        (
            "14:07 UTC",
            "Scaled the workers to 20",
            "kubectl -n {{namespace}} scale deploy/worker --replicas=20",
        )
    ]
    assert draft.notes == ["Autoscale workers on queue depth"]
    assert len(draft.dropped) == 2
    _assert_grounded(draft, content, "html")
