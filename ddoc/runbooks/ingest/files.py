"""File connector: runbooks from local files and folders.

`iter_files` turns the files and folders a user points at into `SourceDocument`s. Folders are
walked recursively; only runbook-like formats are read (the format follows the extension).
Hidden entries (`.git`, `.obsidian`, `.draft.md`, ...) are skipped, and so are symlinks that lead
out of the folder, so a checked-out repository cannot make us read `/etc/passwd`.

The walking and reading helpers are public because the git connector reuses them on its
checkout with its own `source_path`s and error labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ddoc.runbooks.ingest import SourceDocument, SourceError

# Extension -> SourceDocument.format.
FORMATS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
}

# A runbook is a few KB; anything this big is a log or an export that was dropped in by mistake.
MAX_FILE_BYTES = 5_000_000

_Fail = Callable[[SourceError], None]


def format_for(path: Path) -> str | None:
    """The document format for `path` from its extension, or None when it is not a runbook."""
    return FORMATS.get(path.suffix.lower())


def walk_folder(root: Path) -> Iterator[tuple[Path, str]]:
    """Yield `(path, relative POSIX path)` for every supported file under `root`, sorted.

    Symlinks are followed only while they stay inside `root`; each real folder is visited once,
    so a link back to a parent cannot loop.
    """
    real_root = root.resolve()
    seen: set[Path] = set()

    def inside(path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(real_root)
        except OSError:  # broken or looping link
            return False

    def walk(folder: Path, rel: tuple[str, ...]) -> Iterator[tuple[Path, str]]:
        real = folder.resolve()
        if real in seen:
            return
        seen.add(real)
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and not inside(entry):
                continue
            if entry.is_dir():
                yield from walk(entry, (*rel, entry.name))
            elif entry.is_file() and format_for(entry) is not None:
                yield entry, "/".join((*rel, entry.name))

    yield from walk(root, ())


def read_text_file(path: Path, label: str) -> str:
    """The UTF-8 text of `path`; any problem becomes a SourceError naming `label`."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(
                f"{label}: file is too large ({size} bytes; runbooks are limited to "
                f"{MAX_FILE_BYTES} bytes)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{label}: cannot read file ({exc.strerror or exc})") from None
    try:
        # utf-8-sig: editors on Windows like to prepend a BOM; it is not content.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{label}: not UTF-8 text (invalid byte at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from None


def iter_files(
    paths: Sequence[Path], errors: list[SourceError] | None = None
) -> Iterator[SourceDocument]:
    """Yield a SourceDocument for every supported file in `paths` (files and folders).

    `source_path` is the path relative to the folder given (for a file given directly: its
    name), with POSIX separators. Unreadable files (not UTF-8, too large, permission denied),
    missing paths and files given directly with an unsupported extension are errors: when
    `errors` is a list they are appended to it and skipped, otherwise the first one raises.
    """

    def fail(error: SourceError) -> None:
        if errors is None:
            raise error
        errors.append(error)

    for given in paths:
        given = Path(given)
        if not given.exists():
            fail(SourceError(f"{given}: no such file or folder"))
            continue
        if given.is_dir():
            try:
                found = list(walk_folder(given))
            except OSError as exc:
                fail(SourceError(f"{given}: cannot list folder ({exc.strerror or exc})"))
                continue
            for path, rel in found:
                document = _read(path, rel, given / rel, fail)
                if document is not None:
                    yield document
            continue
        if format_for(given) is None:
            # Named explicitly, so silently ignoring it would hide a mistake.
            fail(
                SourceError(
                    f"{given}: unsupported file type {given.suffix or '(no extension)'}; "
                    f"expected one of {', '.join(FORMATS)}"
                )
            )
            continue
        document = _read(given, given.name, given, fail)
        if document is not None:
            yield document


def _read(path: Path, source_path: str, label: Path, fail: _Fail) -> SourceDocument | None:
    fmt = format_for(path)
    assert fmt is not None  # callers only pass supported files
    try:
        content = read_text_file(path, str(label))
    except SourceError as exc:
        fail(exc)
        return None
    return SourceDocument(source_path=source_path, content=content, format=fmt)
