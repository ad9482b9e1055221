"""Git connector: runbooks from a repository (optionally one branch and one folder of it).

`GitSource.sync()` keeps a checkout per (URL, branch) under `cache_dir`: the first sync clones
it, later ones fetch and hard-reset, so files deleted upstream disappear from the snapshot. The
`git` CLI does the work (it already knows the user's SSH keys and credential helpers); it runs
without a shell, without terminal prompts and with a timeout, so a bad URL fails instead of
hanging a worker on a password prompt.

`head_commit()` asks the remote for its commit without fetching, so callers can skip a sync
when nothing was pushed (`changed_since`).

Credentials embedded in URLs (`https://user:token@host/...`) never reach error messages.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ddoc.runbooks.ingest import SourceDocument, SourceError
from ddoc.runbooks.ingest.files import format_for, read_text_file, walk_folder

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
# git's stderr can be long (progress, hints); the last lines carry the reason.
_MAX_STDERR_LINES = 6


def redact_url(text: str) -> str:
    """`text` with the user-info part of every URL in it replaced by `***`."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


def repo_name(url: str) -> str:
    """A short name for the repository: the last path component of `url` without `.git`."""
    trimmed = url.split("?", 1)[0].split("#", 1)[0].rstrip("/\\")
    last = re.split(r"[/\\:]", trimmed)[-1]
    if last.endswith(".git"):
        last = last[: -len(".git")]
    return last or "repo"


@dataclass(frozen=True)
class GitSnapshot:
    commit: str
    documents: list[SourceDocument] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)


class GitSource:
    """One repository (and optionally one branch and one folder in it) as a runbook source."""

    def __init__(
        self,
        url: str,
        branch: str | None,
        subdir: str | None,
        cache_dir: Path,
        *,
        timeout: float = 300.0,
    ) -> None:
        if branch is not None and (not branch or branch.startswith("-")):
            raise SourceError(f"git: invalid branch name {branch!r}")
        self.url = url
        self.branch = branch
        self.subdir = _clean_subdir(subdir)
        self.name = repo_name(url)
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        key = hashlib.sha256(f"{url}\0{branch or ''}".encode()).hexdigest()[:16]
        self.checkout = self.cache_dir / f"{self.name}-{key}"

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @property
    def prefix(self) -> str:
        """The `source_path` prefix every document of this source starts with. Paths are relative
        to the repository root, so two sources on different folders of one repository never
        share (and never archive) each other's runbooks."""
        return f"git:{self.name}:" + (f"{self.subdir.strip('/')}/" if self.subdir else "")

    def head_commit(self) -> str:
        """The commit the remote branch (or default branch) points at, without fetching."""
        ref = f"refs/heads/{self.branch}" if self.branch else "HEAD"
        out = self._git(["ls-remote", "--", self.url, ref], action="ls-remote")
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref and _SHA.match(sha):
                return sha
        raise SourceError(f"git: {self._where()}: branch not found on the remote")

    def changed_since(self, commit: str | None) -> bool:
        """Whether the remote has moved past `commit` (always True when there is none yet)."""
        return commit is None or self.head_commit() != commit

    def sync(self) -> GitSnapshot:
        """Bring the checkout up to date and read every runbook in it."""
        if self._checkout_ok():
            self._update()
        else:
            self._clone()
        commit = self._git(["rev-parse", "HEAD"], cwd=self.checkout, action="rev-parse").strip()
        documents, errors = self._read_documents()
        return GitSnapshot(commit=commit, documents=documents, errors=errors)

    # -- checkout -------------------------------------------------------------------------

    def _checkout_ok(self) -> bool:
        if not (self.checkout / ".git").is_dir():
            return False
        try:
            self._git(["rev-parse", "--verify", "HEAD"], cwd=self.checkout, action="rev-parse")
        except SourceError:
            return False
        return True

    def _clone(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if self.checkout.exists():  # a broken leftover: start over
            shutil.rmtree(self.checkout)
        # Clone next to the final place and rename, so an interrupted clone (timeout, crash)
        # never looks like a valid checkout.
        staging = Path(tempfile.mkdtemp(prefix=f".{self.checkout.name}-", dir=self.cache_dir))
        target = staging / "repo"
        args = ["clone", "--quiet", "--no-tags", "--single-branch", "--depth", "1"]
        if self.branch:
            args += ["--branch", self.branch]
        try:
            self._git([*args, "--", self.url, str(target)], action="clone")
            target.rename(self.checkout)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _update(self) -> None:
        ref = self.branch or "HEAD"  # HEAD: whatever the remote's default branch is now
        cwd = self.checkout
        # The URL is passed again (not "origin") so a changed credential in it takes effect.
        self._git(
            ["fetch", "--quiet", "--no-tags", "--depth", "1", "--", self.url, ref],
            cwd=cwd,
            action="fetch",
        )
        self._git(["reset", "--quiet", "--hard", "FETCH_HEAD"], cwd=cwd, action="reset")
        self._git(["clean", "-ffdxq"], cwd=cwd, action="clean")

    # -- reading --------------------------------------------------------------------------

    def _read_documents(self) -> tuple[list[SourceDocument], list[SourceError]]:
        root = self.checkout / self.subdir if self.subdir else self.checkout
        if not root.resolve().is_relative_to(self.checkout.resolve()) or not root.is_dir():
            raise SourceError(f"git: {self._where()}: folder {self.subdir!r} not found")
        documents: list[SourceDocument] = []
        errors: list[SourceError] = []
        for path, rel in walk_folder(root):
            repo_path = f"{self.subdir}/{rel}" if self.subdir else rel
            source_path = self.prefix + rel  # prefix ends with the subfolder
            fmt = format_for(path)
            assert fmt is not None  # walk_folder only yields supported files
            try:
                content = read_text_file(path, source_path)
            except SourceError as exc:
                errors.append(exc)
                continue
            documents.append(
                SourceDocument(
                    source_path=source_path,
                    content=content,
                    format=fmt,
                    metadata={"repo": self.display_url, "path": repo_path},
                )
            )
        return documents, errors

    # -- running git ----------------------------------------------------------------------

    def _where(self) -> str:
        return self.display_url + (f" (branch {self.branch})" if self.branch else "")

    def _git(self, args: list[str], *, action: str, cwd: Path | None = None) -> str:
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"  # fail on missing credentials instead of waiting
        env["LC_ALL"] = "C"  # English messages: they are shown to users and matched in tests
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=env,
                check=False,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
            )
        except FileNotFoundError:
            raise SourceError(
                "git is not installed (the git CLI is needed for git sources)"
            ) from None
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"git {action} of {self._where()} timed out after {self.timeout:g} s"
            ) from None
        if proc.returncode != 0:
            raise SourceError(
                f"git {action} of {self._where()} failed: {self._reason(proc.stderr)}"
            )
        return proc.stdout

    def _reason(self, stderr: str) -> str:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        reason = " ".join(lines[-_MAX_STDERR_LINES:]) or "no error output"
        reason = redact_url(reason)
        # Belt and braces: git prints URLs in forms our regex may miss (e.g. quoted, trimmed).
        userinfo = _USERINFO.search(self.url)
        for secret in userinfo["userinfo"].split(":") if userinfo else ():
            if len(secret) >= 6:  # short parts are user names like "git"; keep messages legible
                reason = reason.replace(secret, "***")
        return reason


def _clean_subdir(subdir: str | None) -> str | None:
    if subdir is None:
        return None
    parts = [p for p in PurePosixPath(subdir.replace("\\", "/")).parts if p not in ("", ".", "/")]
    if ".." in parts:
        raise SourceError(f"git: folder {subdir!r} must stay inside the repository")
    return "/".join(parts) or None
