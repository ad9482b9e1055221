"""One file is one runbook, however it was added: pasted with a path or without one, added with
`ddoc runbook add`, imported from its folder or from a parent folder, again and again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from ddoc.runbooks.source_paths import same_file
from tests.conftest import REPO, Stack
from tests.test_cli import ddoc

EXAMPLES = REPO / "examples"


def test_paths_that_can_name_one_file() -> None:
    assert same_file("disk-space-low.md", "examples/disk-space-low.md")
    assert same_file("./examples/x.md", "repo/examples/x.md")
    assert same_file("a/b/x.md", "a/b/x.md")
    assert not same_file("a/x.md", "b/x.md")
    assert not same_file("x.md", "y.md")
    assert not same_file("ex.md", "examples/x.md")
    assert not same_file("", "x.md")


async def runbooks(stack: Stack) -> list[dict[str, Any]]:
    listed = await stack.http.get("/runbooks", headers=stack.api_headers())
    assert listed.status_code == 200
    body: list[dict[str, Any]] = listed.json()
    return body


async def paste(stack: Stack, path: Path, source_path: str | None) -> dict[str, Any]:
    query = f"?source_path={source_path}" if source_path else ""
    posted = await stack.http.post(
        f"/runbooks{query}",
        content=path.read_bytes(),
        headers={**stack.api_headers(), "Content-Type": "text/markdown"},
    )
    assert posted.status_code in (200, 201), posted.text
    body: dict[str, Any] = posted.json()
    return body


async def test_importing_a_folder_twice_and_from_its_parent_keeps_one_runbook_each(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "ops" / "examples"
    shutil.copytree(EXAMPLES, folder)
    for _ in range(2):
        code, _, err = await ddoc(stack, "runbook", "import", str(folder))
        assert code == 0, err
    assert "[1/2] disk-space-low.md: unchanged v1" in err
    code, _, err = await ddoc(stack, "runbook", "import", str(tmp_path / "ops"))
    assert code == 0, err
    assert "[1/2] examples/disk-space-low.md: unchanged v1" in err
    assert "[2/2] examples/high-load.md: unchanged v1" in err
    stored = await runbooks(stack)
    assert sorted(r["source_path"] for r in stored) == [
        "examples/disk-space-low.md",
        "examples/high-load.md",
    ]
    # The parent's import was the last: `--archive-missing` of it archives nothing.
    code, _, err = await ddoc(
        stack, "runbook", "import", str(tmp_path / "ops"), "--archive-missing"
    )
    assert code == 0 and "archived 0 runbook(s)" in err, err


async def test_a_file_pasted_first_then_imported_is_one_runbook(
    stack: Stack, tmp_path: Path, engine: Engine
) -> None:
    # The README's tour pastes it with its path from the repository root...
    pasted = await paste(stack, EXAMPLES / "disk-space-low.md", "examples/disk-space-low.md")
    assert pasted["outcome"] == "created"
    # ...then imports the folder, and adds the file by name: the same runbook, unchanged.
    code, _, err = await ddoc(stack, "runbook", "import", str(EXAMPLES), "--archive-missing")
    assert code == 0, err
    assert "[1/2] disk-space-low.md: unchanged v1" in err
    assert "archived 0 runbook(s)" in err
    code, out, err = await ddoc(stack, "runbook", "add", str(EXAMPLES / "disk-space-low.md"))
    assert code == 0 and f"{pasted['id']}  version 1 (unchanged)" in out, out + err
    # Pasted again without a path, or with the old one: still that runbook.
    again = await paste(stack, EXAMPLES / "disk-space-low.md", None)
    assert (again["id"], again["outcome"]) == (pasted["id"], "unchanged")
    again = await paste(stack, EXAMPLES / "disk-space-low.md", "examples/disk-space-low.md")
    assert (again["id"], again["outcome"]) == (pasted["id"], "unchanged")
    titles = [r["title"] for r in await runbooks(stack)]
    assert titles.count("Disk space low on a host") == 1

    # An edited copy of the file, imported from elsewhere: the next version of the same runbook.
    edited = tmp_path / "runbooks" / "examples" / "disk-space-low.md"
    edited.parent.mkdir(parents=True)
    edited.write_text((EXAMPLES / "disk-space-low.md").read_text() + "\nCall Ana if unsure.\n")
    code, _, err = await ddoc(stack, "runbook", "import", str(tmp_path / "runbooks"))
    assert code == 0 and "[1/1] examples/disk-space-low.md: new_version v2" in err, err
    assert len(await runbooks(stack)) == 2  # and high-load.md from the import above

    with engine.connect() as conn:
        moved = conn.execute(
            text(
                "SELECT data->>'from' AS from_path, data->>'to' AS to_path FROM audit_events"
                " WHERE subject = :id AND action = 'runbook.source_path_changed' ORDER BY seq"
            ),
            {"id": pasted["id"]},
        ).all()
    assert [tuple(m) for m in moved][:2] == [
        ("examples/disk-space-low.md", "disk-space-low.md"),
        ("disk-space-low.md", "examples/disk-space-low.md"),
    ]


async def test_a_pasted_runbook_without_a_path_gets_the_path_it_is_imported_with(
    stack: Stack, tmp_path: Path
) -> None:
    pasted = await paste(stack, EXAMPLES / "high-load.md", None)
    assert pasted["source_path"] is None
    code, _, err = await ddoc(stack, "runbook", "add", str(EXAMPLES / "high-load.md"))
    assert code == 0, err
    (only,) = await runbooks(stack)
    assert (only["id"], only["source_path"], only["version"]) == (pasted["id"], "high-load.md", 1)


async def test_files_of_one_name_in_different_folders_stay_apart(
    stack: Stack, tmp_path: Path
) -> None:
    root = tmp_path / "runbooks"
    for team, command in (("payments", "kubectl get pods -n payments"), ("search", "uptime")):
        (root / team).mkdir(parents=True)
        (root / team / "README.md").write_text(f"# {team} on call\n\n1. Check: `{command}`\n")
    code, _, err = await ddoc(stack, "runbook", "import", str(root))
    assert code == 0, err
    # From one team's folder: `README.md` could be either file; the title says which.
    code, _, err = await ddoc(stack, "runbook", "import", str(root / "search"))
    assert code == 0 and "[1/1] README.md: unchanged v1" in err, err
    stored = {r["title"]: r["source_path"] for r in await runbooks(stack)}
    assert stored == {"payments on call": "payments/README.md", "search on call": "README.md"}
