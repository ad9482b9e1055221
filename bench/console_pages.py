"""Render times of the web console's pages, over HTTP, beside `GET /health` in the same run.

    PYTHONPATH=. .venv/bin/python bench/console_pages.py [--rounds 200] [--warmup 10] [--profile DIR]

Real components: embedded PostgreSQL, the Temporal dev server, and `ddoc api`, `ddoc worker` and
`ddoc agent` as separate processes; this process only sends requests, one at a time, signed in
with `Authorization: Bearer <key>`.

What is on the pages: a 50-step markdown runbook (green, yellow and red commands, two decisions
checked by exit code, rollbacks, a manual and two escalation steps), stored through `POST
/runbooks`, and an execution of it started by hand in autopilot mode with its `workdir` variable
set to a temporary folder: the green and yellow steps run by themselves (harmless commands:
echo, df, ls, cat /proc/..., touch and mkdir under the folder) until the first red step, which
waits for an approver. So the execution page shows 50 steps: 39 succeeded (37 commands, most
with output, and the 2 decisions), 3 skipped (branches not taken), 1 awaiting approval and 7
pending; the workflow is live, so the page and its fragment query it, as they do while a human
watches.

Measured, interleaved (each round sends the five requests, starting one further along each
round, so noise hits all of them alike): `GET /health` (the baseline: asks PostgreSQL and
Temporal), `GET /ui/runbooks/{id}` (flowchart SVG cached after the first render),
`GET /ui/executions/{id}`, `GET /ui/executions/{id}/live` (what the page polls every second)
and `POST /ui/runbooks/preview` with a ~20 KB messy paste. Cold flowcharts: the first request
ever of the runbook page (templates compiled, `dot` run), then the first request of each of
`--cold` variants of the runbook (a different title, so a different DOT source: `dot` runs).

Targets (the issue): page p95 < 150 ms; the preview of a 20 KB paste < 300 ms.
Where the time goes: the handlers' steps are then timed one by one in this process, with the
API's own functions and templates against the same database and Temporal server (SQL statements
counted); `--profile DIR` also runs py-spy on the API process while each request is sent alone
`--profile-requests` times, keeps the collapsed stacks in DIR and adds a summary to the results.
Writes bench/results/console_pages.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from sqlalchemy import Engine, event
from sqlmodel import Session

from bench.harness import REPO, database
from ddoc.platform import tenancy
from ddoc.platform.embedded import EmbeddedTemporal, die_with_parent
from tests.conftest import free_port

RESULTS = REPO / "bench" / "results" / "console_pages.md"
PAGE_TARGET_MS = 150.0  # p95, runbook and execution pages (and the live fragment)
PREVIEW_TARGET_MS = 300.0  # p95, preview of a 20 KB paste
PASTE_BYTES = 20 * 1024
PROFILE_RATE = 500  # py-spy samples per second
TIMES = "\N{MULTIPLICATION SIGN}"

RUNBOOK = """---
title: {title}
alerts: CheckoutLatencyHigh
services: checkout
---

# {title}

The checkout API answers slowly. This runbook gathers facts, clears local caches and resets
the scratch area of the checkout worker. Everything it changes lives under `$WORKDIR`.

## Diagnosis

1. Say where we are: `echo "diagnosis for checkout in $WORKDIR"`
2. Check the load: `uptime -p`
3. Check the disks: `df -h`
4. Check the inodes: `df -i`
5. Look at the kernel: `uname -a`
6. Check who runs this: `id -un`
7. Check the time: `date -u`
8. List the work area: `ls -la $WORKDIR`
9. Count the files: `ls $WORKDIR | wc -l`
10. Check memory: `cat /proc/meminfo`
11. Check the load average file: `cat /proc/loadavg`
12. Show the locale: `echo "lang=$LANG"`
13. Check the cache folder: `ls -la $WORKDIR/cache`
14. If the command exits 0, go to step 16; otherwise run `mkdir -p $WORKDIR/cache`.
15. Note it: `echo "cache folder created"`
16. Show the cache size: `du -sh $WORKDIR/cache`
17. Check open files: `ls -l /proc/self/fd`
18. Check the CPU count: `nproc --all`
19. Check the hostname: `hostname -s`
20. List the configuration folder: `ls -la /etc`

## Mitigation

1. Mark the start of the mitigation: `touch $WORKDIR/mitigation-started`
2. Create the scratch folder: `mkdir -p $WORKDIR/scratch`
3. Copy the host name aside: `cp /etc/hostname $WORKDIR/scratch/hostname.bak`
4. Write a marker: `touch $WORKDIR/scratch/marker`
   To roll back: `rm -f $WORKDIR/scratch/marker`
5. Check the marker is there: `ls -la $WORKDIR/scratch`
6. Record the state: `echo "state recorded" > $WORKDIR/scratch/state.txt`
7. Read it back: `cat $WORKDIR/scratch/state.txt`
8. Create the lock file: `touch $WORKDIR/checkout.lock`
   To roll back: `rm -f $WORKDIR/checkout.lock`
9. Check the lock: `ls -la $WORKDIR/checkout.lock`
10. If the command exits 0, go to step 11; otherwise escalate to the payments on-call.
11. Create a log folder: `mkdir -p $WORKDIR/logs`
12. Write a log line: `echo "mitigation running" >> $WORKDIR/logs/run.log`
13. Show the log: `cat $WORKDIR/logs/run.log`
14. Touch the heartbeat: `touch $WORKDIR/heartbeat`
15. Check the heartbeat: `stat $WORKDIR/heartbeat`
16. Copy the log aside: `cp $WORKDIR/logs/run.log $WORKDIR/scratch/run-log.bak`
17. Show the scratch folder: `ls -la $WORKDIR/scratch`
18. Count the lines logged: `wc -l $WORKDIR/logs/run.log`
19. Note the progress: `echo "scratch ready"`
20. Check the disks again: `df -h $WORKDIR`

## Clean up

1. Delete the old cache for good: `rm -rf $WORKDIR/cache` (this cannot be undone)
2. Delete the scratch folder: `rm -rf $WORKDIR/scratch`
   To roll back: `mkdir -p $WORKDIR/scratch`
3. Remove the lock: `rm -f $WORKDIR/checkout.lock`
4. Say it is done: `echo "checkout mitigation finished"`
5. Check the work area once more: `ls -la $WORKDIR`
6. Check the load once more: `uptime -p`
7. Confirm in the checkout dashboard that p99 latency is back under 300 ms.
8. Escalate to the checkout team if latency stays high.
"""
TITLE = "Checkout API latency high"
STEPS = 50
FIRST_RED = "s43"

# One service's part of the paste: a Confluence page pasted as text, a chat thread, commands
# with and without backticks, a table, a decision, rollbacks, prose in two languages.
PASTE_PART = """\
{service} \N{EN DASH} runbook (last edited by {person}, {day} Nov)   Page tree \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} SRE \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} {team}
Owned by: {team}  |  Escalation: #{service}-oncall  |  Dashboards: grafana / {service}-overview

Overview
The {service} service sits behind the ingress in namespace {ns}. When the {alert} alert fires
it is usually one of: a bad deploy, a full disk on the {db} primary, or the queue backing up.

Diagnosis  Start by checking the pods with kubectl get pods -n {ns} -o wide and look for
restarts. Then read the logs: `kubectl logs deploy/{service} -n {ns} --tail=200`
{person} 02:{minute}
  anyone else seeing the 502s? i ran kubectl describe pod -l app={service} -n {ns} and the
  readiness probe is failing
  (edited)
:eyes: 2

Check the disk on the database host:
```
$ ssh {db}-01 df -h /var/lib/postgresql
$ ssh {db}-01 sudo du -sh /var/lib/postgresql/14/main/pg_wal
```
If the output contains `100%`, go to "Free space"; otherwise continue with the queue.

| what | command | notes |
| --- | --- | --- |
| queue depth | `redis-cli -h {service}-redis LLEN {service}:jobs` | above 10k is bad |
| consumers | `kubectl get deploy {service}-worker -n {ns}` | should be 4/4 |

Prüfen Sie danach die Verbindungen mit psql -h {db}-01 -c "select count(*) from pg_stat_activity" und
melden Sie das Ergebnis im Kanal.

Mitigation
1. Scale the workers up: `kubectl scale deploy/{service}-worker -n {ns} --replicas=8`
   To roll back: `kubectl scale deploy/{service}-worker -n {ns} --replicas=4`
2. Restart the API: kubectl rollout restart deploy/{service} -n {ns}
3. If the restart does not help within 5 minutes, roll back the release with
   `helm rollback {service} -n {ns}` and tell #{service}-oncall.

Free space
- Remove old WAL archives: `sudo find /var/lib/postgresql/archive -mtime +7 -delete`
  (this cannot be undone, be careful)
- Vacuum the jobs table: psql -h {db}-01 -c "VACUUM (VERBOSE) {service}_jobs;"

Escalate to the {team} on-call if the error rate stays above {rate}% for 15 minutes.

"""
SERVICES = [
    ("checkout", "payments", "Ana", "CheckoutErrorsHigh", "pg-payments"),
    ("search-indexer", "search", "Jordan Lee", "IndexerLagging", "pg-search"),
    ("billing", "finance", "Mei", "BillingJobsStuck", "pg-billing"),
    ("notifications", "growth", "Ravi", "NotificationQueueFull", "pg-notify"),
    ("auth", "identity", "Sofia", "AuthLatencyHigh", "pg-auth"),
    ("inventory", "retail", "Tom", "InventorySyncFailing", "pg-inventory"),
    ("gateway", "edge", "Lucía", "GatewayFiveHundreds", "pg-gateway"),
    ("reports", "analytics", "Noah", "ReportsSlow", "pg-reports"),
    ("media", "content", "Kenji", "MediaUploadsFailing", "pg-media"),
    ("ledger", "payments", "Fatima", "LedgerDrift", "pg-ledger"),
]


def messy_paste(size: int = PASTE_BYTES) -> str:
    """A ~20 KB messy runbook: one part per service, as many services as fit."""
    parts = [f"{TITLE} and friends \N{EN DASH} the on-call notes\n\n"]
    n = 0
    while len("".join(parts).encode()) < size:
        service, team, person, alert, db = SERVICES[n % len(SERVICES)]
        suffix = "" if n < len(SERVICES) else f"-{n // len(SERVICES) + 1}"
        parts.append(
            PASTE_PART.format(
                service=service + suffix,
                ns=f"{team}-prod",
                team=team,
                person=person,
                alert=alert,
                db=db,
                day=10 + n,
                minute=f"{(7 * n) % 60:02d}",
                rate=2 + n % 5,
            )
        )
        n += 1
    return "".join(parts)


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50": statistics.median(ms),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "max_round": ms.index(max(ms)),
    }


# -- the stack -----------------------------------------------------------------------------------


def start_services(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    return {
        role: subprocess.Popen(
            [sys.executable, "-m", "ddoc.cli.main", role],
            env=env,
            preexec_fn=die_with_parent(),
            stdout=subprocess.DEVNULL,
        )
        for role in ("worker", "agent", "api")
    }


def stop_services(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_healthy(http: httpx.Client) -> None:
    for _ in range(600):
        try:
            if http.get("/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become healthy in 60 s")


def add_runbook(http: httpx.Client, title: str) -> str:
    added = http.post(
        "/runbooks",
        json={"content": RUNBOOK.format(title=title), "source_path": f"bench/{title}.md"},
    )
    assert added.status_code == 201, added.text
    body = added.json()
    steps = len(body["parsed"]["steps"])
    assert steps == STEPS, f"{steps} steps parsed, {STEPS} expected"
    return str(body["id"])


def start_execution(http: httpx.Client, runbook_id: str, workdir: Path) -> dict[str, Any]:
    """Autopilot: green and yellow steps run by themselves; the first red step waits."""
    (workdir / "cache").mkdir(parents=True, exist_ok=True)
    started = http.post(
        "/executions",
        json={
            "runbook_id": runbook_id,
            "mode": "autopilot",
            "variables": {"workdir": str(workdir)},
        },
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["id"]
    body: dict[str, Any] = {}
    for _ in range(1200):
        body = http.get(f"/executions/{execution_id}").json()
        waiting = [s["id"] for s in body["steps"] if s.get("awaiting")]
        if body["status"] in ("succeeded", "failed", "aborted", "rolled_back"):
            break
        if waiting:
            break
        time.sleep(0.1)
    waiting = [s["id"] for s in body["steps"] if s.get("awaiting")]
    assert waiting == [FIRST_RED], f"expected {FIRST_RED} waiting, got {body['status']} {waiting}"
    return body


# -- measurement ---------------------------------------------------------------------------------

Request = Callable[[], httpx.Response]


def timed(call: Request) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (response.status_code, response.text[:500])
    return elapsed, response


def requests_for(
    http: httpx.Client, runbook_id: str, execution_id: str, paste: str
) -> dict[str, Request]:
    return {
        "GET /health (baseline)": lambda: http.get("/health"),
        "GET /ui/runbooks/{id}": lambda: http.get(f"/ui/runbooks/{runbook_id}"),
        "GET /ui/executions/{id}": lambda: http.get(f"/ui/executions/{execution_id}"),
        "GET /ui/executions/{id}/live": lambda: http.get(f"/ui/executions/{execution_id}/live"),
        "POST /ui/runbooks/preview (20 KB)": lambda: http.post(
            "/ui/runbooks/preview", data={"content": paste, "format": "markdown"}
        ),
    }


def check_pages(responses: dict[str, httpx.Response]) -> None:
    """The pages hold what they should (a broken page can be fast)."""
    runbook = responses["GET /ui/runbooks/{id}"].text
    assert 'id="flowchart"' in runbook and "<svg" in runbook, "no flowchart on the runbook page"
    for name in ("GET /ui/executions/{id}", "GET /ui/executions/{id}/live"):
        text = responses[name].text
        shown = len(re.findall(r'<li id="step-s\d+"', text))
        assert shown == STEPS, f"{name}: {shown} steps shown, {STEPS} expected"
    preview = responses["POST /ui/runbooks/preview (20 KB)"].text
    assert "parsed-steps" in preview, "the preview shows no steps"


_FULL_GC = re.compile(r'^python_gc_collections_total\{generation="2"\} ([0-9.e+]+)$', re.M)


def full_collections(http: httpx.Client) -> float:
    """The API process's count of full (generation 2) garbage collections, from /metrics."""
    found = _FULL_GC.search(http.get("/metrics").text)
    return float(found.group(1)) if found else float("nan")


def measure(
    requests: dict[str, Request], rounds: int, warmup: int, gc_count: Callable[[], float]
) -> tuple[dict[str, list[float]], dict[str, int], list[bool]]:
    """Latencies by request, in round order; body sizes; and for each measured round whether
    the API ran a full garbage collection since the round before (read between rounds)."""
    names = list(requests)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, int] = {}
    collected: list[bool] = []
    last = gc_count()
    for r in range(warmup + rounds):
        offset = r % len(names)
        for name in names[offset:] + names[:offset]:
            elapsed, response = timed(requests[name])
            sizes[name] = len(response.content)
            if r >= warmup:
                latencies[name].append(elapsed)
        now = gc_count()
        if r >= warmup:
            collected.append(now > last)
        last = now
    return latencies, sizes, collected


GC_PROBE = """
import gc, json, statistics, time
import api.app
from ddoc.runbooks.embedding import default_embedder
default_embedder().warm_up()

def full():
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000

full()
before = statistics.median(full() for _ in range(3))
objects = len(gc.get_objects())
gc.freeze()
after = statistics.median(full() for _ in range(3))
print(json.dumps({"objects": objects, "full_ms": before, "frozen_ms": after}))
"""


def gc_pause() -> dict[str, float]:
    """A full garbage collection in a fresh process holding what the API holds (its modules and
    the embedding model), and the same after `gc.freeze()`."""
    done = subprocess.run(
        [sys.executable, "-c", GC_PROBE], capture_output=True, text=True, check=True, cwd=REPO
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- profiling -----------------------------------------------------------------------------------

# Frames whose inclusive time is reported (a frame counts once per sample).
WATCHED = [
    ("auth: `current_user` (API key lookup)", r"^current_user \("),
    ("form: `Request.form` (parse the posted form)", r"^Request\._get_form \("),
    ("`_runbook_context` (database reads, a pool thread)", r"^_runbook_context \("),
    ("  of which `learning.runbook_report`", r"^runbook_report \("),
    ("  of which `trust.guards`", r"^guards \(ddoc/trust/levels"),
    ("`flowchart.render_svg` (a pool thread)", r"^render_svg \("),
    ("  of which `dot` (subprocess)", r"^run \(subprocess"),
    ("`live._trail` (database, a pool thread)", r"^_trail \(ddoc/execution/live"),
    ("the workflow's `state` query (event loop)", r"^WorkflowHandle\.query \("),
    ("  of which decoding its result", r"^DataConverter\.decode \("),
    ("    of which `typing.get_type_hints`", r"^get_type_hints \(typing"),
    ("`live.merge`", r"^merge \(ddoc/execution/live"),
    ("`service.parse` (the parser, risk rules; a pool thread)", r"^parse \(ddoc/runbooks/service"),
    ("`ParsedRunbook.to_dict`", r"^to_dict \(ddoc/runbooks/model"),
    ("template render (Jinja, event loop)", r"^Template\.render \(jinja2"),
    ("SQLAlchemy `Session.execute` (all queries)", r"^Session\.execute \(sqlalchemy"),
    ("waiting for PostgreSQL (psycopg `Connection.wait`)", r"^Connection\.wait \(psycopg"),
    ("socket writes (the response)", r"^_SelectorSocketTransport\.write \("),
]
_WATCHED = [(label, re.compile(pattern)) for label, pattern in WATCHED]


def collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _idle(frames: list[str]) -> bool:
    """An event loop waiting in select, a pool thread waiting for work, a monitor thread."""
    if frames[-1].startswith("EpollSelector.select ("):
        return True
    if any(f.startswith("_WorkItem.run (") for f in frames):
        return False
    return any(
        f.startswith(("_worker (concurrent", "Queue.get (queue.py", "TMonitor.run ("))
        for f in frames
    )


def _group(frames: list[str]) -> str:
    return "event loop (main thread)" if "MainThread" in frames[0] else "worker threads"


def where_time_goes(path: Path, requests: int, rate: int, top: int = 12) -> dict[str, Any]:
    """Milliseconds per request, from py-spy's collapsed stacks (`--format raw --idle`): time
    spent busy by the event loop and by the threads, the watched frames (inclusive: waits
    included, e.g. for PostgreSQL) and the frames with the most own time."""
    per_request = 1000 / rate / requests
    busy = [(frames, n) for frames, n in collapsed(path) if not _idle(frames)]
    groups: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in busy:
        groups[_group(frames)] += n
        for label, pattern in _WATCHED:
            if any(pattern.search(frame) for frame in frames):
                inclusive[label] += n
        own[_short(frames[-1])] += n
    return {
        "groups": {k: v * per_request for k, v in sorted(groups.items())},
        "inclusive": {k: inclusive[k] * per_request for k, _ in _WATCHED if inclusive[k]},
        "own": [(frame, n * per_request) for frame, n in own.most_common(top)],
    }


def _short(frame: str) -> str:
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "wt-bench/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


def profile(
    api_pid: int, requests: dict[str, Request], count: int, out: Path
) -> dict[str, dict[str, Any]]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, call in requests.items():
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = out / f"{slug}.txt"
        recorder = subprocess.Popen(
            [py_spy, "record", "--pid", str(api_pid), "--rate", str(PROFILE_RATE), "--format", "raw",
             "--threads", "--idle", "--nonblocking", "--output", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches
        samples = [timed(call)[0] for _ in range(count)]
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        found[name] = {
            "p50_while_profiled": statistics.median(samples),
            **where_time_goes(path, count, PROFILE_RATE),
        }
        print(f"profiled {name}: {path}")
    return found


# -- sections, timed in this process -------------------------------------------------------------


def _median_ms(call: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


class StatementCounter:
    """SQL statements sent through an engine while counting."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def per_call(self, call: Callable[[], Any]) -> int:
        before = self.count
        call()
        return self.count - before


def sections(
    engine: Engine,
    temporal_address: str,
    api_key: str,
    runbook_id: str,
    execution_id: str,
    paste: str,
    runs: int,
) -> list[tuple[str, str, float, int | None]]:
    """What the three handlers do, step by step, with the same functions and templates as the
    API, against the same database and Temporal server: (page, section, median ms, SQL
    statements). Templates are rendered without the HTTP response around them."""
    from temporalio.converter import _payload_converter

    from api.routes.ui import executions as ui_executions
    from api.routes.ui import runbooks as ui_runbooks
    from api.routes.ui.common import User, csrf_token, templates
    from ddoc.contracts.execution import ExecutionResult
    from ddoc.execution import live
    from ddoc.runbooks import flowchart, service
    from ddoc.runbooks.parsing import runbook_parser

    counter = StatementCounter(engine)

    def authenticate() -> Any:
        with Session(engine) as session:
            return tenancy.authenticate_api_key(session, api_key)

    principal = authenticate()
    user = User(principal=principal, csrf=csrf_token(api_key), by_cookie=False)
    settings = SimpleNamespace(temporal_ui_url=None, temporal=SimpleNamespace(namespace="default"))
    state = SimpleNamespace(engine=engine, parse=runbook_parser(None), settings=settings)
    rows: list[tuple[str, str, float, int | None]] = []

    def row(page: str, name: str, call: Callable[[], Any], sql: bool = False) -> None:
        statements = counter.per_call(call) if sql else None
        rows.append((page, name, _median_ms(call, runs), statements))

    def render(template: str, context: dict[str, Any]) -> str:
        return templates.get_template(template).render({"user": user, **context})

    row("all pages", "sign-in: the API key's principal (`principal_for_key`)", authenticate, True)

    page = "`GET /ui/runbooks/{id}`"
    context = ui_runbooks._runbook_context(state, user, runbook_id, None, None, None)
    parsed = context["shown"].parsed
    row(page, "`_runbook_context` (runbook, versions, trust, guards, stats, ...)",
        lambda: ui_runbooks._runbook_context(state, user, runbook_id, None, None, None), True)  # fmt: skip
    row(page, "`flowchart.render_svg`, cached (builds the DOT source, cache hit)",
        lambda: flowchart.render_svg(parsed))  # fmt: skip
    source = flowchart.dot_source(parsed)
    binary = shutil.which("dot") or "dot"
    row(page, "`dot -Tsvg` and checking its SVG (what a cold render adds)",
        lambda: flowchart._render.__wrapped__(source, binary, 10.0, TITLE))  # fmt: skip
    svg = flowchart.render_svg(parsed)
    full = {"nav": "runbooks", "notice": None, "flowchart": svg, "flowchart_error": None,
            **context}  # fmt: skip
    row(page, "template `runbook.html`", lambda: render("runbook.html", full))

    def compiled_first() -> str:
        templates.env.cache.clear()  # as on the first request after a start
        return render("runbook.html", full)

    row(page, "template `runbook.html` compiled first (the first request after a start)",
        compiled_first)  # fmt: skip

    page = "`GET /ui/executions/{id}` and `/live`"
    row(page, "`live._trail` (execution and step rows)",
        lambda: live._trail(engine, principal.tenant_id, execution_id), True)  # fmt: skip
    trail = live._trail(engine, principal.tenant_id, execution_id)
    timings = asyncio.run(_query_timings(temporal_address, execution_id, runs))
    raw, typed = timings.pop("raw"), timings.pop("typed")
    for name, ms in timings.items():
        rows.append((page, name, ms, None))
    row(page, "decoding that JSON into `ExecutionResult` (`value_to_type`)",
        lambda: _payload_converter.value_to_type(ExecutionResult, raw, []))  # fmt: skip
    original = _payload_converter.get_type_hints
    _payload_converter.get_type_hints = functools.lru_cache(maxsize=None)(original)
    try:
        row(page, "the same with `get_type_hints` cached (not the product: what a fix gains)",
            lambda: _payload_converter.value_to_type(ExecutionResult, raw, []))  # fmt: skip
    finally:
        _payload_converter.get_type_hints = original
    row(page, "`live.merge` (the live state over the trail)", lambda: live.merge(trail, typed))
    view = live.merge(trail, typed).model_copy(update={"live": True})
    row(page, "`_context` (the buttons each step may show)",
        lambda: ui_executions._context(view, user, state))  # fmt: skip
    ctx = {"nav": "executions", "notice": None, **ui_executions._context(view, user, state)}
    row(page, "template `execution.html` (the page)", lambda: render("execution.html", ctx))
    row(page, "template `_execution_live.html` (the fragment)",
        lambda: render("_execution_live.html", ctx))  # fmt: skip

    page = "`POST /ui/runbooks/preview`"
    row(page, f"`service.parse` of the {len(paste.encode()) // 1024} KB paste (risk rules, parser)",
        lambda: service.parse(engine, state.parse, tenant_id=principal.tenant_id,
                              content=paste, fmt="markdown", source_path=None),
        True)  # fmt: skip
    pasted = service.parse(
        engine, state.parse, tenant_id=principal.tenant_id, content=paste, fmt="markdown",
        source_path=None,
    )  # fmt: skip
    row(page, "`ParsedRunbook.to_dict`", pasted.to_dict)
    as_dict = pasted.to_dict()
    row(page, "template `_preview.html`",
        lambda: render("_preview.html", {"parsed": as_dict, "error": None}))  # fmt: skip
    return rows


async def _query_timings(address: str, execution_id: str, runs: int) -> dict[str, Any]:
    """The workflow's `state` query as the API makes it (decoded into `ExecutionResult`), and
    the same query left as JSON; medians."""
    from temporalio.client import Client

    from ddoc.contracts import names
    from ddoc.contracts.execution import ExecutionResult

    client = await Client.connect(address)
    handle = client.get_workflow_handle(execution_id)

    async def median(call: Callable[[], Any]) -> float:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    typed = await handle.query(names.STATE_QUERY, result_type=ExecutionResult)
    raw = await handle.query(names.STATE_QUERY)
    return {
        "the workflow's `state` query, decoded into `ExecutionResult` (as the API does)": (
            await median(lambda: handle.query(names.STATE_QUERY, result_type=ExecutionResult))
        ),
        "the same query left as JSON (no dataclass conversion)": (
            await median(lambda: handle.query(names.STATE_QUERY))
        ),
        "raw": raw,
        "typed": typed,
    }


# -- report --------------------------------------------------------------------------------------


def render(found: dict[str, Any]) -> str:
    rows, base = found["rows"], found["rows"]["GET /health (baseline)"]
    lines = [
        "# Web console page render times (`bench/console_pages.py`)",
        "",
        f"{found['started']}, {found['machine']}; {found['rounds']} interleaved rounds after "
        f"{found['warmup']} warm-up rounds, one request at a time over HTTP (loopback) to "
        "`ddoc api` (one process), with `ddoc worker`, `ddoc agent`, the Temporal dev server and "
        "embedded PostgreSQL running beside it. Client-side milliseconds.",
        "",
        "| request | p50 | p95 | p99 | max | p50 / health p50 | p95 / health p95 | body | target (p95) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        target = found["targets"].get(name)
        verdict = (
            ""
            if target is None
            else f"< {target:.0f} ms: {'met' if row['p95'] < target else '**missed**'}"
        )
        lines.append(
            f"| `{name}` | {row['p50']:.1f} ms | {row['p95']:.1f} ms | {row['p99']:.1f} ms "
            f"| {row['max']:.1f} ms | {row['p50'] / base['p50']:.1f}{TIMES} "
            f"| {row['p95'] / base['p95']:.1f}{TIMES} | {found['sizes'][name] / 1024:.0f} KiB | {verdict} |"
        )
    cold = found["cold"]
    lines += [
        "",
        f"Cold flowchart: the first request ever of the runbook page (templates compiled, `dot` "
        f"run) took **{found['first_ms']:.1f} ms**; the first request of each of {len(cold)} "
        f"variants of the runbook (templates warm, `dot` run for a new DOT source): p50 "
        f"**{statistics.median(cold):.1f} ms**, max {max(cold):.1f} ms. Warm (cached SVG): the "
        "table's runbook row.",
        "",
        f"The execution: {found['execution']}.",
        f"The paste: {found['paste_bytes']:,} bytes, {found['paste_steps']} steps parsed.",
    ]
    by_round: dict[int, list[str]] = {}
    for name, row in rows.items():
        by_round.setdefault(row["max_round"], []).append(f"`{name}` {row['max']:.0f} ms")
    lines.append(
        "Each request's largest value and its round (a round sends the five requests moments "
        "apart): "
        + "; ".join(f"round {r + 1}: {', '.join(v)}" for r, v in sorted(by_round.items()))
        + "."
    )
    lines += ["", gc_paragraph(found)]
    lines += [
        "",
        "## Where the time goes",
        "",
        "### Sections, timed in the benchmark's process",
        "",
        "The handlers' steps called one by one with the API's own functions and templates, "
        "against the same database and Temporal server (medians of "
        f"{found['section_runs']} calls; SQL = statements sent).",
        "",
        "| page | section | median | SQL |",
        "| --- | --- | --- | --- |",
    ]
    for page, name, ms, statements in found["sections"]:
        sql = "" if statements is None else str(statements)
        lines.append(f"| {page} | {name} | {ms:.2f} ms | {sql} |")
    if found.get("profile"):
        lines += [
            "",
            "### py-spy on the API process",
            "",
            f"Each request sent alone {found['profile_requests']} times while `py-spy record "
            f"--rate {PROFILE_RATE} --threads --idle` sampled the API process; milliseconds per "
            "request of samples in which a thread was not idle (the event loop not waiting in "
            "`select`, a pool thread running a task). Inclusive: a frame's time includes what it "
            "waits for (PostgreSQL, Temporal, the GIL). Sampling slows the API: the p50 while "
            "profiled is given beside each.",
        ]
        for name, prof in found["profile"].items():
            groups = ", ".join(f"{group} {ms:.1f} ms" for group, ms in prof["groups"].items())
            lines += [
                "",
                f"`{name}`: p50 {prof['p50_while_profiled']:.1f} ms while profiled; busy per "
                f"request: {groups}.",
                "",
                "| frame (inclusive) | ms per request |",
                "| --- | --- |",
            ]
            lines += [f"| {label} | {ms:.2f} |" for label, ms in prof["inclusive"].items()]
            own = "; ".join(f"`{frame}` {ms:.2f}" for frame, ms in prof["own"][:6])
            lines += ["", f"Most own time (ms per request): {own}."]
    return "\n".join(lines) + "\n"


def gc_paragraph(found: dict[str, Any]) -> str:
    collected, gc = found["collected"], found["gc"]
    slowest = [max(ms[i] for ms in found["latencies"].values()) for i in range(len(collected))]
    with_gc = sorted(v for v, c in zip(slowest, collected, strict=True) if c)
    without = [v for v, c in zip(slowest, collected, strict=True) if not c]
    rounds = (
        "slowest request of each round with one: " + ", ".join(f"{v:.0f} ms" for v in with_gc)
        if with_gc
        else "none"
    )
    return (
        f"Full (generation 2) garbage collections in the API process during the measured rounds: "
        f"{len(with_gc)} (its `/metrics` read between rounds; a collection can also fall on that "
        f"read); {rounds}; slowest request of the {len(without)} other rounds: p50 "
        f"{statistics.median(without):.0f} ms, max {max(without):.0f} ms. A full collection in a "
        f"fresh process holding what the API holds (its modules and the embedding model, "
        f"{gc['objects']:,} objects) takes **{gc['full_ms']:.0f} ms**; after `gc.freeze()`, "
        f"{gc['frozen_ms']:.1f} ms."
    )


def print_rows(found: dict[str, Any]) -> None:
    base = found["rows"]["GET /health (baseline)"]
    print(f"{'request':<36} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9} {'p50/health':>10}")
    for name, row in found["rows"].items():
        print(
            f"{name:<36} {row['p50']:7.1f}ms {row['p95']:7.1f}ms {row['p99']:7.1f}ms "
            f"{row['max']:7.1f}ms {row['p50'] / base['p50']:9.1f}x"
        )
    cold = found["cold"]
    print(
        f"first runbook page ever {found['first_ms']:.1f} ms; cold flowchart "
        f"p50 {statistics.median(cold):.1f} ms, max {max(cold):.1f} ms (n={len(cold)})"
    )
    print(gc_paragraph(found))


def bench(args: argparse.Namespace, engine: Engine, temporal: EmbeddedTemporal) -> dict[str, Any]:
    database_url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    port = free_port()
    env = {
        **os.environ,
        "DDOC_DATABASE_URL": database_url,
        "DDOC_TEMPORAL_ADDRESS": temporal.address,
        "DDOC_API_PORT": str(port),
        "DDOC_TENANT": "bench",
        "DDOC_ENVIRONMENT": "local",
        "DDOC_LOG_LEVEL": "WARNING",
    }
    procs = start_services(env)
    try:
        headers = {"Authorization": f"Bearer {args.api_key}"}
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http,
            tempfile.TemporaryDirectory(prefix="ddoc-console-") as workdir,
        ):
            wait_healthy(http)
            runbook_id = add_runbook(http, TITLE)
            execution = start_execution(http, runbook_id, Path(workdir))
            statuses = Counter(s["status"] for s in execution["steps"])
            with_output = sum(1 for s in execution["steps"] if s.get("output"))
            first_ms, _ = timed(lambda: http.get(f"/ui/runbooks/{runbook_id}"))
            cold = []
            for n in range(args.cold):
                variant = add_runbook(http, f"{TITLE} (variant {n + 1})")
                cold.append(timed(lambda v=variant: http.get(f"/ui/runbooks/{v}"))[0])
            paste = messy_paste()
            requests = requests_for(http, runbook_id, execution["id"], paste)
            check_pages({name: call() for name, call in requests.items()})
            parsed = http.post("/runbooks/parse", json={"content": paste, "format": "markdown"})
            paste_steps = len(parsed.json()["steps"]) if parsed.status_code == 200 else "?"
            latencies, sizes, collected = measure(
                requests, args.rounds, args.warmup, lambda: full_collections(http)
            )
            profiled = (
                profile(procs["api"].pid, requests, args.profile_requests, Path(args.profile))
                if args.profile
                else None
            )
            timed_sections = sections(
                engine,
                temporal.address,
                args.api_key,
                runbook_id,
                execution["id"],
                paste,
                args.section_runs,
            )
    finally:
        stop_services(procs)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    return {
        "rows": {name: summary(ms) for name, ms in latencies.items()},
        "sizes": sizes,
        "first_ms": first_ms,
        "cold": cold,
        "execution": f"autopilot, {len(execution['steps'])} steps ({shown}), "
        f"{with_output} with output, live (waiting at {FIRST_RED})",
        "paste_bytes": len(paste.encode()),
        "paste_steps": paste_steps,
        "profile": profiled,
        "sections": timed_sections,
        "collected": collected,
        "latencies": latencies,
        "gc": gc_pause(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--cold", type=int, default=10, help="runbook variants, first render")
    parser.add_argument("--section-runs", type=int, default=30, help="per in-process section")
    parser.add_argument("--profile", default=None, help="folder for py-spy's collapsed stacks")
    parser.add_argument("--profile-requests", type=int, default=100)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    args.api_key = "ddoc_bench_" + uuid.uuid4().hex
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with database() as engine, tempfile.TemporaryDirectory() as tmp:
        tenancy.bootstrap(engine, tenant_id="bench", api_key=args.api_key)
        temporal = EmbeddedTemporal(Path(tmp), port=free_port(), ui_port=None)
        temporal.start()
        try:
            found = bench(args, engine, temporal)
        finally:
            temporal.stop()
    found.update(
        started=started,
        machine=f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at the end",
        rounds=args.rounds,
        warmup=args.warmup,
        section_runs=args.section_runs,
        profile_requests=args.profile_requests,
        targets={
            "GET /ui/runbooks/{id}": PAGE_TARGET_MS,
            "GET /ui/executions/{id}": PAGE_TARGET_MS,
            "GET /ui/executions/{id}/live": PAGE_TARGET_MS,
            "POST /ui/runbooks/preview (20 KB)": PREVIEW_TARGET_MS,
        },
    )
    print_rows(found)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(found))
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
