"""Turn raw input into clean text: decode, validate, and split off YAML front-matter.

Everything downstream works on the text returned here, so line numbers in step spans
refer to it; front-matter is blanked out rather than removed to keep those numbers equal
to the original document's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ddoc.runbooks.parsing.errors import ParseError

# C0 controls other than tab/newline/carriage-return/form-feed/vertical-tab, plus DEL.
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")
_BINARY_SAMPLE = 8192
_BINARY_RATIO = 0.1
_FM_OPEN = re.compile(r"---[ \t]*\n")
_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)


def decode(content: str | bytes, max_bytes: int) -> str:
    """Validate size and encoding; return text with ``\\n`` line endings and no BOM."""
    if isinstance(content, bytes):
        if len(content) > max_bytes:
            raise ParseError(_too_large(len(content), max_bytes))
        if b"\x00" in content:
            raise ParseError("content looks binary (it contains NUL bytes); send a text runbook")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"content is not valid UTF-8 (byte 0x{content[exc.start]:02x} at offset "
                f"{exc.start}); save the runbook as UTF-8"
            ) from None
    elif isinstance(content, str):
        # Cheap upper bound first: a UTF-8 character is at most 4 bytes.
        if len(content) * 4 > max_bytes and len(content.encode("utf-8", "surrogatepass")) > (
            max_bytes
        ):
            raise ParseError(_too_large(len(content.encode("utf-8", "surrogatepass")), max_bytes))
        text = content.removeprefix("\ufeff")
        if "\x00" in text:
            raise ParseError("content looks binary (it contains NUL bytes); send a text runbook")
    else:
        raise ParseError(f"content must be str or bytes, not {type(content).__name__}")
    sample = text[:_BINARY_SAMPLE]
    if sample and len(_CONTROL.findall(sample)) > _BINARY_RATIO * len(sample):
        raise ParseError("content looks binary (mostly non-printable characters)")
    if not text.strip():
        raise ParseError("runbook is empty")
    # markdown-it treats only \n as a line break; normalise so spans and commands agree.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _too_large(size: int, limit: int) -> str:
    return f"runbook is too large ({size} bytes); the limit is {limit} bytes"


@dataclass
class FrontMatter:
    data: dict[str, Any] = field(default_factory=dict)
    body: str = ""  # the document with the front-matter lines blanked out
    warnings: list[str] = field(default_factory=list)


def split_front_matter(text: str) -> FrontMatter:
    """Read YAML front-matter between leading ``---`` lines; never raises."""
    opener = _FM_OPEN.match(text)
    if opener is None:
        return FrontMatter(body=text)
    close = _FM_CLOSE.search(text, opener.end())
    if close is None:
        # A lone leading rule is just a thematic break, not front-matter.
        return FrontMatter(body=text)
    raw = text[opener.end() : close.start()]
    end = close.end()
    n_lines = text.count("\n", 0, end)
    body = "\n" * n_lines + text[end:]
    warnings: list[str] = []
    data: dict[str, Any] = {}
    try:
        loaded = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        warnings.append(f"front-matter is not valid YAML{where}; it was ignored")
        loaded = {}
    except Exception:  # PyYAML can raise odd errors (e.g. RecursionError) on hostile input
        warnings.append("front-matter could not be read; it was ignored")
        loaded = {}
    if isinstance(loaded, dict):
        data = {str(k): v for k, v in loaded.items()}
    elif loaded is not None:
        # Prose between two rules parses as a YAML scalar: that is content, not front-matter.
        return FrontMatter(body=text)
    return FrontMatter(data=data, body=body, warnings=warnings)
