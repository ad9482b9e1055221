"""Connectors against real files, a real local git repository and fake Confluence/Notion APIs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from ddoc.runbooks.ingest import SourceDocument, SourceError
from ddoc.runbooks.ingest.confluence import ConfluenceSource
from ddoc.runbooks.ingest.files import iter_files
from ddoc.runbooks.ingest.git import GitSource, redact_url
from ddoc.runbooks.ingest.notion import NotionSource
from tests.fakes.confluence import FakeConfluence, FakePage
from tests.fakes.notion import FakeNotion, block, text


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# -- files ----------------------------------------------------------------------------------


def test_files_walks_folders_by_extension_with_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "runbooks"
    write(root / "README.md", "# Index\n")
    write(root / "db" / "failover.markdown", "# Failover\n")
    write(root / "db" / "notes.txt", "check replication lag\n")
    write(root / "web" / "Restart.HTML", "<h1>Restart</h1>")
    write(root / "web" / "old.htm", "<p>old</p>")
    write(root / "web" / "diagram.png", b"\x89PNG")
    write(root / ".git" / "hooks.md", "# not a runbook\n")
    write(root / ".draft.md", "# hidden\n")
    secret = write(tmp_path / "outside" / "secret.md", "# secret\n")
    (root / "leak.md").symlink_to(secret)
    (root / "alias.txt").symlink_to(root / "db" / "notes.txt")
    (root / "db" / "loop").symlink_to(root)  # inside, but already visited
    single = write(tmp_path / "elsewhere" / "single.md", "# Single\n")

    docs = list(iter_files([root, single]))

    assert [(d.source_path, d.format, d.content) for d in docs] == [
        ("README.md", "markdown", "# Index\n"),
        ("alias.txt", "text", "check replication lag\n"),
        ("db/failover.markdown", "markdown", "# Failover\n"),
        ("db/notes.txt", "text", "check replication lag\n"),
        ("web/Restart.HTML", "html", "<h1>Restart</h1>"),
        ("web/old.htm", "html", "<p>old</p>"),
        ("single.md", "markdown", "# Single\n"),
    ]
    assert all(d.title_hint is None and d.metadata == {} for d in docs)


def test_files_non_utf8_is_collected_or_raised(tmp_path: Path) -> None:
    write(tmp_path / "good.md", "# Good\n")
    bad = write(tmp_path / "bad.md", "ok\nétat\n".encode("latin-1"))
    write(tmp_path / "bom.txt", "\ufeffwith bom\n".encode())
    expected = f"{bad}: not UTF-8 text (invalid byte at offset 3); re-save the file as UTF-8"

    errors: list[SourceError] = []
    docs = list(iter_files([tmp_path], errors=errors))
    assert [(d.source_path, d.content) for d in docs] == [
        ("bom.txt", "with bom\n"),
        ("good.md", "# Good\n"),
    ]
    assert [str(e) for e in errors] == [expected]

    with pytest.raises(SourceError) as raised:
        list(iter_files([tmp_path]))
    assert str(raised.value) == expected


def test_files_missing_and_unsupported_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    pdf = write(tmp_path / "guide.pdf", b"%PDF")
    good = write(tmp_path / "a.md", "# A\n")
    with pytest.raises(SourceError) as raised:
        list(iter_files([missing, good]))
    assert str(raised.value) == f"{missing}: no such file or folder"

    errors: list[SourceError] = []
    docs = list(iter_files([missing, pdf, good], errors))
    assert docs == [SourceDocument("a.md", "# A\n", "markdown")]
    assert [str(e) for e in errors] == [
        f"{missing}: no such file or folder",
        f"{pdf}: unsupported file type .pdf; expected one of .md, .markdown, .txt, .html, .htm",
    ]


# -- git ------------------------------------------------------------------------------------

_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.test",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.test",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=_GIT_ENV, check=True, capture_output=True, text=True
    )
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "ops-runbooks"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "README.md", "# About this repo\n")
    write(repo / "runbooks" / "db" / "failover.md", "# DB failover\n\n1. Promote replica\n")
    write(repo / "runbooks" / "web" / "restart.txt", "Restart the web tier\n")
    write(repo / "runbooks" / "legacy.html", "<h1>Legacy</h1>")
    write(repo / "runbooks" / "bad.md", "caf\xe9\n".encode("latin-1"))
    commit_all(repo, "initial runbooks")
    return repo


def test_git_clone_then_fetch_follows_new_commits(repo: Path, tmp_path: Path) -> None:
    source = GitSource(str(repo), None, "runbooks/", tmp_path / "cache")
    first = source.sync()

    assert first.commit == git(repo, "rev-parse", "HEAD")
    assert first.documents == [
        SourceDocument(
            "git:ops-runbooks:runbooks/db/failover.md",
            "# DB failover\n\n1. Promote replica\n",
            "markdown",
            metadata={"repo": str(repo), "path": "runbooks/db/failover.md"},
        ),
        SourceDocument(
            "git:ops-runbooks:runbooks/legacy.html",
            "<h1>Legacy</h1>",
            "html",
            metadata={"repo": str(repo), "path": "runbooks/legacy.html"},
        ),
        SourceDocument(
            "git:ops-runbooks:runbooks/web/restart.txt",
            "Restart the web tier\n",
            "text",
            metadata={"repo": str(repo), "path": "runbooks/web/restart.txt"},
        ),
    ]
    assert [str(e) for e in first.errors] == [
        "git:ops-runbooks:runbooks/bad.md: not UTF-8 text (invalid byte at offset 3); "
        "re-save the file as UTF-8"
    ]
    assert source.head_commit() == first.commit
    assert source.changed_since(first.commit) is False
    assert source.changed_since(None) is True

    write(
        repo / "runbooks" / "db" / "failover.md",
        "# DB failover\n\n1. Promote replica\n2. Fix DNS\n",
    )
    (repo / "runbooks" / "legacy.html").unlink()
    (repo / "runbooks" / "bad.md").unlink()
    second_commit = commit_all(repo, "update failover, drop legacy")
    assert source.changed_since(first.commit) is True

    second = source.sync()
    assert second.commit == second_commit != first.commit
    assert [(d.source_path, d.content) for d in second.documents] == [
        (
            "git:ops-runbooks:runbooks/db/failover.md",
            "# DB failover\n\n1. Promote replica\n2. Fix DNS\n",
        ),
        ("git:ops-runbooks:runbooks/web/restart.txt", "Restart the web tier\n"),
    ]
    assert second.errors == []
    assert len(list((tmp_path / "cache").iterdir())) == 1  # one checkout, reused


def test_git_branch_over_file_url(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-b", "release")
    write(repo / "runbooks" / "web" / "restart.txt", "Restart the web tier (release)\n")
    release = commit_all(repo, "release tweak")
    git(repo, "checkout", "-q", "main")

    source = GitSource(repo.as_uri(), "release", "runbooks/web", tmp_path / "cache")
    snapshot = source.sync()
    assert snapshot.commit == release == source.head_commit()
    assert [(d.source_path, d.content) for d in snapshot.documents] == [
        ("git:ops-runbooks:runbooks/web/restart.txt", "Restart the web tier (release)\n")
    ]

    missing = GitSource(repo.as_uri(), "nope", None, tmp_path / "cache")
    with pytest.raises(SourceError) as raised:
        missing.sync()
    assert str(raised.value) == (
        f"git clone of {repo.as_uri()} (branch nope) failed: warning: Could not find remote "
        "branch nope to clone. fatal: Remote branch nope not found in upstream origin"
    )
    with pytest.raises(SourceError, match=r"branch nope\): branch not found on the remote"):
        missing.head_commit()


def test_git_bad_url_is_a_plain_error(tmp_path: Path) -> None:
    url = str(tmp_path / "no-such-repo")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as raised:
        GitSource(url, None, None, cache).sync()
    assert str(raised.value) == (
        f"git clone of {url} failed: fatal: repository '{url}' does not exist"
    )
    assert list(cache.iterdir()) == []  # no half-made checkout left behind


def test_git_credentials_never_reach_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    url = "https://deploy:s3cr3t-token@127.0.0.1:9/ops/runbooks.git"  # port 9: refused at once
    source = GitSource(url, "main", None, tmp_path / "cache", timeout=20)
    for action in (source.sync, source.head_commit):
        with pytest.raises(SourceError) as raised:
            action()
        message = str(raised.value)
        assert "s3cr3t-token" not in message
        assert "https://***@127.0.0.1:9/ops/runbooks.git (branch main) failed: " in message
        assert "Failed to connect to 127.0.0.1 port 9" in message
    assert redact_url("clone https://u:p@h/x and ssh://git@h/y, not git@h:z") == (
        "clone https://***@h/x and ssh://***@h/y, not git@h:z"
    )


# -- Confluence -----------------------------------------------------------------------------

STORAGE = (
    '<h1>DB failover</h1><p>Run:</p><ac:structured-macro ac:name="code">'
    '<ac:parameter ac:name="language">bash</ac:parameter>'
    "<ac:plain-text-body><![CDATA[pg_ctl promote -D /var/lib/pg && echo ok]]>"
    "</ac:plain-text-body></ac:structured-macro>"
)


def confluence(
    fake: FakeConfluence,
    sleeps: list[float],
    *,
    space: str | None = "OPS",
    label: str | None = "runbook",
    api_token: str | None = None,
    page_size: int = 25,
) -> ConfluenceSource:
    return ConfluenceSource(
        fake.base_url + "/wiki/",  # as pasted by users; the connector trims it
        fake.email,
        api_token or fake.api_token,
        space,
        label,
        fake.client(),
        sleep=sleeps.append,
        page_size=page_size,
    )


def test_confluence_space_label_pagination_and_storage_passthrough() -> None:
    pages = [
        FakePage(str(1000 + i), f"Runbook {i}", "OPS", f"<p>step {i}</p>", labels=("runbook",))
        for i in range(1, 6)
    ]
    pages[0] = FakePage("1001", "DB failover", "OPS", STORAGE, version=3, labels=("runbook",))
    pages += [
        FakePage("2001", "Team lunch", "OPS", "<p>pizza</p>"),  # no label
        FakePage("3001", "Other space", "DEV", "<p>x</p>", labels=("runbook",)),
    ]
    fake = FakeConfluence(pages=pages)
    sleeps: list[float] = []

    docs = confluence(fake, sleeps, page_size=2).fetch()

    assert docs[0] == SourceDocument(
        "confluence:OPS:1001",
        STORAGE,
        "html",
        title_hint="DB failover",
        metadata={
            "version": "3",
            "url": "https://acme.atlassian.net/wiki/spaces/OPS/pages/1001/DB+failover",
        },
    )
    assert [(d.source_path, d.title_hint, d.content) for d in docs[1:]] == [
        (f"confluence:OPS:100{i}", f"Runbook {i}", f"<p>step {i}</p>") for i in range(2, 6)
    ]
    assert len(fake.requests) == 3 and sleeps == []
    first = fake.queries[0]
    assert first == {
        "cql": 'type=page AND space="OPS" AND label="runbook"',
        "expand": "body.storage,version,space",
        "limit": "2",
        "start": "0",
    }
    assert [(q["start"], "cursor" in q) for q in fake.queries] == [
        ("0", False),
        ("2", True),
        ("4", True),
    ]
    token = base64.b64encode(b"oncall@acme.test:atl-token-123").decode()
    assert {r.headers["authorization"] for r in fake.requests} == {f"Basic {token}"}
    assert {r.url.path for r in fake.requests} == {"/wiki/rest/api/content/search"}


def test_confluence_cql_for_space_only_and_label_only() -> None:
    fake = FakeConfluence(pages=[FakePage("7", "Quoted", "OPS", "<p/>", labels=('say "hi"',))])
    assert confluence(fake, [], label=None).cql == 'type=page AND space="OPS"'
    by_label = confluence(fake, [], space=None, label='say "hi"')
    assert by_label.cql == 'type=page AND label="say \\"hi\\""'
    assert [d.source_path for d in by_label.fetch()] == ["confluence:OPS:7"]
    with pytest.raises(SourceError, match="give a space key, a label, or both"):
        confluence(fake, [], space=None, label=None)


def test_confluence_refused_credentials() -> None:
    fake = FakeConfluence(pages=[FakePage("1", "A", "OPS", "<p/>", labels=("runbook",))])
    with pytest.raises(SourceError) as raised:
        confluence(fake, [], api_token="wrong").fetch()
    assert str(raised.value) == (
        "Confluence refused the credentials (HTTP 401) while searching "
        'https://acme.atlassian.net for type=page AND space="OPS" AND label="runbook"; '
        "check the account and API token and that it can read this content"
    )
    assert len(fake.requests) == 1  # no retries on bad credentials


def test_confluence_rate_limit_and_server_errors_retry() -> None:
    fake = FakeConfluence(pages=[FakePage("1", "A", "OPS", "<p>a</p>", labels=("runbook",))])
    sleeps: list[float] = []
    fake.fail_next(429, retry_after="7")
    docs = confluence(fake, sleeps).fetch()
    assert [d.source_path for d in docs] == ["confluence:OPS:1"]
    assert sleeps == [7.0] and len(fake.requests) == 2

    sleeps.clear()
    fake.fail_next(503, times=4)
    with pytest.raises(SourceError) as raised:
        confluence(fake, sleeps).fetch()
    assert str(raised.value).startswith("Confluence server error (HTTP 503) while searching")
    assert str(raised.value).endswith("; gave up after 3 retries")
    assert sleeps == [1.0, 2.0, 4.0]


# -- Notion ---------------------------------------------------------------------------------

FAILOVER_BLOCKS = [
    block("heading_1", "Postgres failover"),
    block(
        "paragraph",
        "Use when ",
        text("pg_is_in_recovery()", code=True),
        " is false; see ",
        text("the dashboard", href="https://grafana.example.test/d/pg"),
        ".",
    ),
    block("paragraph"),  # Notion's spacer lines carry no text
    block("callout", "Page the DBA first.", icon={"type": "emoji", "emoji": "⚠️"}),
    block("heading_2", "Steps"),
    block(
        "numbered_list_item",
        "Check lag",
        children=[
            block("code", "psql -c 'select pg_last_xact_replay_timestamp();'", language="bash")
        ],
    ),
    block("numbered_list_item", "Promote the replica"),
    block("bulleted_list_item", "Verify", children=[block("bulleted_list_item", "writes work")]),
    block("to_do", "Update the status page", checked=False),
    block("to_do", "Tell #incidents", checked=True),
    block("divider"),
    block("quote", "Never promote both nodes."),
    block(
        "toggle",
        "Rollback",
        children=[
            block("paragraph", "Demote and resync:"),
            block("code", "pg_rewind -D /var/lib/pg\nsystemctl start postgresql", language="bash"),
        ],
    ),
    block(
        "table",
        table_width=2,
        has_column_header=True,
        children=[
            block("table_row", cells=[[text("Host")], [text("Role")]]),
            block("table_row", cells=[[text("pg-1")], [text("primary")]]),
        ],
    ),
    block("child_page", title="Old notes", children=[block("paragraph", "not this page")]),
]

FAILOVER_MARKDOWN = """\
# Postgres failover

Use when `pg_is_in_recovery()` is false; see [the dashboard](https://grafana.example.test/d/pg).

> ⚠️ Page the DBA first.

## Steps

1. Check lag

   ```bash
   psql -c 'select pg_last_xact_replay_timestamp();'
   ```
1. Promote the replica
- Verify
  - writes work
- [ ] Update the status page
- [x] Tell #incidents

---

> Never promote both nodes.

- Rollback

  Demote and resync:

  ```bash
  pg_rewind -D /var/lib/pg
  systemctl start postgresql
  ```

| Host | Role |
| --- | --- |
| pg-1 | primary |
"""


def test_notion_page_blocks_become_markdown() -> None:
    fake = FakeNotion(max_page_size=3)  # forces pagination of the page's blocks too
    page_id = fake.add_page("Postgres failover", FAILOVER_BLOCKS)
    child_page_id = fake.children[page_id][-1]["id"]
    source = NotionSource(fake.token, page_ids=[page_id.replace("-", "")], client=fake.client())

    assert source.fetch() == [
        SourceDocument(
            f"notion:{page_id}",
            FAILOVER_MARKDOWN,
            "markdown",
            title_hint="Postgres failover",
            metadata={
                "last_edited_time": "2024-05-01T10:00:00.000Z",
                "url": f"https://www.notion.so/Postgres-failover-{page_id.replace('-', '')}",
            },
        )
    ]
    paths = [r.url.path for r in fake.requests]
    assert f"/v1/blocks/{child_page_id}/children" not in paths  # subpages are not inlined
    assert paths.count(f"/v1/blocks/{page_id}/children") == 5  # 15 blocks, 3 per page
    assert {(r.headers["authorization"], r.headers["notion-version"]) for r in fake.requests} == {
        ("Bearer secret_notion_token", "2022-06-28")
    }


def test_notion_database_query_pagination() -> None:
    fake = FakeNotion(max_page_size=2)
    db = fake.new_id()
    rows = [
        fake.add_page(f"Runbook {i}", [block("paragraph", f"step {i}")], database_id=db)
        for i in range(5)
    ]
    fake.add_page("Archived", [block("paragraph", "old")], database_id=db, archived=True)

    docs = NotionSource(fake.token, [rows[3]], [db], client=fake.client()).fetch()

    order = [3, 0, 1, 2, 4]  # page ids first, then database rows; each page once
    assert [(d.source_path, d.title_hint, d.content) for d in docs] == [
        (f"notion:{rows[i]}", f"Runbook {i}", f"step {i}\n") for i in order
    ]
    queries = [json.loads(r.content) for r in fake.requests if r.method == "POST"]
    assert queries == [
        {"page_size": 100},
        {"page_size": 100, "start_cursor": rows[2]},
        {"page_size": 100, "start_cursor": rows[4]},
    ]


def test_notion_errors_and_retries() -> None:
    fake = FakeNotion()
    page_id = fake.add_page("P", [block("paragraph", "hello")])
    with pytest.raises(SourceError) as raised:
        NotionSource("wrong-token", [page_id], client=fake.client()).fetch()
    assert str(raised.value) == (
        f"Notion refused the credentials (HTTP 401) while reading page {page_id}; "
        "check the account and API token and that it can read this content"
    )

    sleeps: list[float] = []
    source = NotionSource(fake.token, [page_id], client=fake.client(), sleep=sleeps.append)
    fake.fail_next(429, retry_after="2")
    assert [d.content for d in source.fetch()] == ["hello\n"]
    assert sleeps == [2.0]

    fake.fail_next(500, times=4)
    with pytest.raises(SourceError, match=r"^Notion server error \(HTTP 500\) while reading page"):
        source.fetch()
    assert sleeps == [2.0, 1.0, 2.0, 4.0]

    unshared = "0123456789abcdef0123456789abcdef"
    with pytest.raises(SourceError) as raised:
        NotionSource(fake.token, [unshared], client=fake.client()).fetch()
    assert str(raised.value) == (
        "Notion rejected the request (HTTP 404) while reading page "
        "01234567-89ab-cdef-0123-456789abcdef: Could not find page with ID: "
        "01234567-89ab-cdef-0123-456789abcdef. Make sure the relevant pages and databases are "
        "shared with your integration."
    )
