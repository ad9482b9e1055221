"""Read what an engineer ran: an asciinema recording, a `script` typescript, a bash or zsh
history. Each reader yields `Ran` (the command as typed, the tail of what it printed, when).

Streaming, with bounded memory whatever the input's size: input is read a line (a cast, a
history) or a chunk (a typescript) at a time, never whole; a command keeps only the last
`OUTPUT_LINES` lines / `OUTPUT_CHARS` characters of its output; a line of the terminal screen
keeps at most `SCREEN_LINE_CHARS` characters; an input with more than `max_commands` commands
stops with a `SessionError` (more than one incident's worth: split it).

Terminal recordings are replayed on a one-line screen: escape sequences are interpreted just
enough (cursor moves on the line, erase, insert/delete, the alternate screen of full-screen
programs, line wrapping at the recorded width) for the line an engineer typed to read as it did
on their screen, backspaces and all. A line is a command when it starts with a shell prompt
(`$ `, `# `, `user@host:~$ `, `[user@host dir]$ `, zsh's `user@host dir % `, `➜  dir `, pure's
and starship's arrow, `bash-5.2$ `); when a recording has its keystrokes ("i" events,
`asciinema rec --stdin`) they say instead where each typed line starts (after the prompt on
screen at the first keystroke) and ends (Enter), so any prompt works.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from ddoc.platform.errors import Invalid
from ddoc.runbooks.parsing.commands import is_command_line

KINDS = ("cast", "script", "history")
MAX_COMMANDS = 5000
OUTPUT_LINES = 40  # per command: the last lines of what it printed
OUTPUT_CHARS = 4096  # … and at most this many characters of them
SCREEN_LINE_CHARS = 4096  # a longer screen line is cut (a progress bar, a minified file)
COMMAND_CHARS = 1 << 16  # a command typed on more lines than this stops there
CAST_LINE_BYTES = 1 << 20  # one asciinema event
HISTORY_LINE_BYTES = 1 << 16  # one history line
_CHUNK = 1 << 16
_OUTPUT_LINE_CHARS = 1024  # one kept output line
_PENDING_ESCAPE = 4096  # an escape sequence split across events is held this long at most


@dataclass(frozen=True)
class Ran:
    """A command as it was typed, the tail of its output, when it was run, whether it failed
    (None: the input does not say)."""

    command: str
    output: str = ""
    at: datetime | None = None
    failed: bool | None = None


class SessionError(Invalid):
    """The input is not a recording or history we can read (or is too large); says where."""


def detect(first_bytes: bytes) -> str:
    """The kind of input ("cast", "script" or "history") from its first bytes."""
    head = first_bytes.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head:
        raise SessionError("the input is empty")
    if head.startswith(b"{"):
        return "cast"
    if head.startswith(b"Script started"):
        return "script"
    if b"\x1b" in head:
        return "script"  # raw terminal output without script's header (`script -q`)
    if b"\x00" in head:
        raise SessionError(
            "binary data: not an asciinema recording, a `script` typescript or a shell history"
        )
    return "history"


def read_session(
    stream: IO[bytes] | IO[str], kind: str | None = None, *, max_commands: int = MAX_COMMANDS
) -> Iterator[Ran]:
    """The commands in `stream` (binary or text, read as it goes), of the kind detected from
    its first bytes when `kind` is None. Raises SessionError for input it cannot read: at once
    when empty or of no known kind, else while iterating, naming the line."""
    source = _binary(stream)
    if kind is None:
        kind = detect(source.peek(4096)[:4096])
    if kind == "cast":
        return read_cast(source, max_commands=max_commands)
    if kind == "script":
        return read_script(source, max_commands=max_commands)
    if kind == "history":
        return read_history(source, max_commands=max_commands)
    raise SessionError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")


# -- input -------------------------------------------------------------------------------------


class _Raw(io.RawIOBase):
    """Any readable stream as bytes (text is encoded back to UTF-8), for a BufferedReader."""

    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left:
            chunk = self._stream.read(len(view))
            if not chunk:
                return 0
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8", "surrogateescape")
            self._left = chunk
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _binary(stream: IO[Any]) -> io.BufferedReader:
    return io.BufferedReader(_Raw(stream), buffer_size=_CHUNK)


def _lines(source: io.BufferedReader, limit: int, what: str) -> Iterator[tuple[int, bytes]]:
    number = 0
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            raise SessionError(f"line {number}: longer than {limit // 1024} KiB: not {what}")
        yield number, line


def _preview(text: str | bytes) -> str:
    shown = repr(text[:40])
    return shown + ("…" if len(text) > 40 else "")


def _when(epoch: float | None) -> datetime | None:
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# -- asciinema ---------------------------------------------------------------------------------


def read_cast(source: io.BufferedReader, *, max_commands: int = MAX_COMMANDS) -> Iterator[Ran]:
    """An asciinema recording (v2: `[seconds since start, code, data]` events; v3: seconds
    since the previous event). Raises SessionError naming the line that is not one."""
    what = "an asciinema recording (JSON lines)"
    lines = _lines(source, CAST_LINE_BYTES, what)
    header: Any = None
    for number, raw in lines:
        text = _utf8(raw, number, what)
        if not text.strip():
            continue
        try:
            header = json.loads(text)
        except ValueError:
            header = None
        if not isinstance(header, dict) or "version" not in header:
            raise SessionError(
                f"line {number}: expected an asciinema header (a JSON object with "
                f'"version": 2), found {_preview(text.strip())}'
            )
        break
    else:
        raise SessionError("the input is empty: expected an asciinema header on line 1")
    version = header.get("version")
    if version not in (2, 3):
        raise SessionError(
            f"asciinema recording version {version!r} is not supported (version 2 or 3 is): "
            "convert it with `asciinema convert`"
        )
    term = header.get("term") if version == 3 else header
    width = term.get("cols" if version == 3 else "width") if isinstance(term, dict) else None
    start = header.get("timestamp")
    replay = _Replay(
        width if isinstance(width, int) else None,
        float(start) if isinstance(start, int | float) else None,
        max_commands,
    )
    clock = 0.0
    for number, raw in lines:
        text = _utf8(raw, number, what)
        stripped = text.strip()
        if not stripped or (version == 3 and stripped.startswith("#")):
            continue
        try:
            event = json.loads(stripped)
        except ValueError:
            event = None
        if (
            not isinstance(event, list)
            or len(event) < 3
            or not isinstance(event[0], int | float)
            or not isinstance(event[1], str)
            or not isinstance(event[2], str)
        ):
            raise SessionError(
                f"line {number}: expected an asciinema event [time, code, data], "
                f"found {_preview(stripped)}"
            )
        clock = clock + event[0] if version == 3 else float(event[0])
        code, data = event[1], event[2]
        if code == "o":
            replay.output(data, clock)
        elif code == "i":
            replay.keys(data, clock)
        elif code == "r":
            size = re.match(r"(\d+)x\d+", data)
            if size:
                replay.resize(int(size.group(1)))
        yield from replay.drain()
    replay.finish()
    yield from replay.drain()


def _utf8(raw: bytes, number: int, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SessionError(
            f"line {number}: not UTF-8 text (binary data at byte {error.start + 1}): "
            f"expected {what}"
        ) from None


# -- script ------------------------------------------------------------------------------------

_COLUMNS = re.compile(rb'COLUMNS="(\d+)"')


def read_script(source: io.BufferedReader, *, max_commands: int = MAX_COMMANDS) -> Iterator[Ran]:
    """A util-linux `script` typescript: a "Script started on …" line, the raw terminal
    output, a "Script done on …" line."""
    first = source.readline(4096)
    width = None
    replay = _Replay(None, None, max_commands, script=True)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    if first.startswith(b"Script started"):
        columns = _COLUMNS.search(first)
        width = int(columns.group(1)) if columns else None
        replay.resize(width)
    else:
        replay.output(decoder.decode(first), None)
    while chunk := source.read(_CHUNK):
        replay.output(decoder.decode(chunk), None)
        yield from replay.drain()
    replay.output(decoder.decode(b"", final=True), None)
    replay.finish()
    yield from replay.drain()


# -- terminal replay ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?P<newline>\r?\n)"
    r"|(?P<csi>\x1b\[[0-?]*[ -/]*[@-~])"
    r"|(?P<string>\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\)"
    r"|(?P<escape>\x1b[ -/]*[0-OQ-WYZ\\`-~])"
    r"|(?P<lone>\x1b)"
    r"|(?P<control>[\x00-\x1f\x7f-\x9f])"
)
# What an escape sequence cut at the end of an event looks like (it completes in the next).
_PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[ -/]*)\Z")
_ALT_SCREEN = frozenset({"1049", "1047", "47"})
_INPUT_TOKEN = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1bO.|\x1b.?|[\r\n\x03\x04]|[^\x1b\r\n\x03\x04]+"
)

# Shell prompts, as they read once colours are gone. A session with one of these never takes a
# bare "$ " / "# " line (often output: a comment in a file, a shell transcript) as a command.
_PROMPT = re.compile(
    r"^\s*(?:\([\w.@ -]{1,40}\)\s)?(?:"
    r"\[[^\[\]\n]{1,80}\][$#]"  # [user@host dir]$
    r"|[\w.-]+@[\w.-]+:[^\s$#]*[$#]"  # user@host:~/dir$
    r"|[\w.-]+@[\w.-]+\s[^\s]{1,80}\s[%#$]"  # user@host dir %  (zsh)
    r"|➜\s+\S+(?:\sgit:\([^)\s]*\))?(?:\s✗)?"  # oh-my-zsh
    r"|\u276f"  # pure, starship
    r"|(?:ba|z|k)?sh-\d+(?:\.\d+)*[$#]"  # bash-5.2$
    r")(?:\s|$)"
)
_BARE_PROMPT = re.compile(r"^\s*[$#%](?:\s|$)")
_CONTINUATION = re.compile(r"^> ")  # PS2


@dataclass
class _Open:
    command: str
    at: datetime | None
    lines: deque[str]
    continued: bool = False


class _Replay:
    """A terminal's output (and keystrokes) replayed into commands and their output."""

    def __init__(
        self, width: int | None, start: float | None, max_commands: int, *, script: bool = False
    ) -> None:
        self.width: int | None = None
        self.resize(width)
        self.start = start
        self.max_commands = max_commands
        self.script = script
        # the screen: the line under the cursor
        self.line = ""
        self.col = 0
        self.wrap = False  # the cursor is past the last column (wraps on the next character)
        self.alt = False
        self.saved = ("", 0)
        self.pending = ""
        self.now: float | None = None
        # the session
        self.current: _Open | None = None
        self.done: list[Ran] = []
        self.count = 0
        self.bare: bool | None = None  # the session's prompt is a bare "$ " (None: unknown yet)
        # keystrokes ("i" events): where typed lines start and end
        self.keyed = False
        self.typing = False
        self.prompt = ""  # what the screen showed at the first keystroke of the typed line
        self.shell_prompt: str | None = None
        self.enters: deque[tuple[str | None, float | None]] = deque(maxlen=64)

    def resize(self, width: int | None) -> None:
        self.width = width if width is not None and width > 1 else None

    def drain(self) -> list[Ran]:
        done, self.done = self.done, []
        return done

    # keystrokes

    def keys(self, data: str, at: float | None) -> None:
        self.keyed = True
        for token in _INPUT_TOKEN.findall(data):
            if token in ("\r", "\n"):
                self.enters.append((self.prompt if self.typing else None, at))
                self.typing = False
            elif token == "\x03":
                if self.typing:
                    self.enters.append(("\x03", at))  # the typed line is abandoned
                self.typing = False
            elif token == "\x04":
                if not self.typing:
                    self.enters.append(("\x04", at))  # the shell ends (its prompt line too)
                self.typing = False
            elif not self.typing:
                self.typing = True
                self.prompt = self.line[: self.col]
                if self.shell_prompt is None and self.prompt.strip():
                    self.shell_prompt = self.prompt

    # output

    def output(self, data: str, at: float | None) -> None:
        self.now = at
        text = self.pending + data if self.pending else data
        self.pending = ""
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "text":
                if not self.alt:
                    self._write(m.group())
            elif kind == "newline":
                if not self.alt:
                    self._newline()
            elif kind == "csi":
                self._csi(m.group())
            elif kind == "lone":
                rest = text[m.start() :]
                if len(rest) < _PENDING_ESCAPE and _PARTIAL.match(rest):
                    self.pending = rest
                    break
            elif kind == "control" and not self.alt:
                self._control(m.group())

    def finish(self) -> None:
        """The recording ends: a last line of output counts, a command typed at a prompt but
        never entered does not."""
        self.pending = ""
        line = self.line
        if line.strip() and not (_PROMPT.match(line) or _BARE_PROMPT.match(line)):
            self._output(line)
        self._close()

    def _prompt_only(self, line: str) -> bool:
        m = _PROMPT.match(line) or _BARE_PROMPT.match(line)
        return m is not None and not line[m.end() :].strip()

    def _write(self, run: str) -> None:
        line, col = self.line, self.col
        if col == len(line):
            line += run
        elif col > len(line):
            line += " " * (col - len(line)) + run
        else:
            line = line[:col] + run + line[col + len(run) :]
        col += len(run)
        if len(line) > SCREEN_LINE_CHARS:
            line = line[:SCREEN_LINE_CHARS]
            col = min(col, SCREEN_LINE_CHARS)
        self.line, self.col = line, col
        self.wrap = self.width is not None and col % self.width == 0

    def _newline(self) -> None:
        line = self.line
        self.line, self.col, self.wrap = "", 0, False
        self._screen_line(line)

    def _control(self, char: str) -> None:
        width = self.width
        if char == "\r":
            if width is None:
                self.col = 0
            elif self.wrap:
                self.col -= width
            else:
                self.col -= self.col % width
        elif char == "\b":
            if self.wrap:
                self.col -= 2
            elif self.col > 0 and (width is None or self.col % width):
                self.col -= 1
        elif char == "\t":
            self.col = (self.col // 8 + 1) * 8
        else:
            return
        self.col = min(max(self.col, 0), SCREEN_LINE_CHARS)
        self.wrap = False

    def _csi(self, seq: str) -> None:
        final, params = seq[-1], seq[2:-1]
        if params.startswith("?"):
            if final in "hl" and _ALT_SCREEN & set(params[1:].split(";")):
                if final == "h" and not self.alt:
                    self.alt, self.saved = True, (self.line, self.col)
                elif final == "l" and self.alt:
                    self.alt = False
                    self.line, self.col = self.saved
            return
        if self.alt or final == "m":
            return
        numbers = [int(p[:5]) if p.isdigit() else 0 for p in params.split(";")]
        n = min(max(numbers[0], 1), SCREEN_LINE_CHARS)
        line, col, width = self.line, self.col, self.width
        row = col - col % width if width else 0
        if final in "KJ":
            if numbers[0] == 0:
                line = line[:col]
            elif numbers[0] == 1:
                line = " " * col + line[col:]
            else:
                line = ""
        elif final == "C":
            col += n
        elif final == "D":
            col = max(col - n, row)
        elif final == "G":
            col = row + n - 1
        elif final in "Hf":
            col = max(numbers[1] if len(numbers) > 1 else 1, 1) - 1
        elif final == "A":
            if width and col >= n * width:
                col -= n * width
        elif final == "@":
            line = line[:col] + " " * n + line[col:]
        elif final == "P":
            line = line[:col] + line[col + n :]
        elif final == "X":
            line = (line[:col] + " " * n + line[col + n :])[: max(len(line), col)]
        else:
            return
        self.line, self.col = line[:SCREEN_LINE_CHARS], min(col, SCREEN_LINE_CHARS)
        self.wrap = False

    # lines -> commands

    def _screen_line(self, line: str) -> None:
        at = None
        if self.start is not None and self.now is not None:
            at = _when(self.start + self.now)
        if self.keyed and self.enters:
            prompt, keyed_at = self.enters.popleft()
            if keyed_at is not None and self.start is not None:
                at = _when(self.start + keyed_at)
            if prompt == "\x03":
                return  # the typed line was abandoned (Ctrl-C)
            if prompt == "\x04":
                self._close()  # Ctrl-D on an empty prompt: the shell ends
                return
            if prompt is not None and self._shell_prompt(prompt):
                rest = line[len(prompt) :] if line.startswith(prompt) else self._after_prompt(line)
                if rest is not None:
                    self._command(rest, prompt.strip() == ">", at)
                    return
            elif prompt is None and self._prompt_only(line):
                self._close()  # Enter on an empty prompt
                return
            self._output(line)
            return
        if self.current is not None and self.current.continued and _CONTINUATION.match(line):
            self._command(line[2:], True, at)
            return
        if not self.keyed:
            rest = self._after_prompt(line)
            if rest is not None:
                self._command(rest, False, at)
                return
        self._output(line)

    def _shell_prompt(self, prompt: str) -> bool:
        """A keystroke went to the shell (not to a program's question: "[Y/n] y")."""
        if _PROMPT.match(prompt) or _BARE_PROMPT.match(prompt) or prompt.strip() == ">":
            return True
        known = (self.shell_prompt or "").rstrip()
        return bool(known) and prompt.rstrip()[-1:] == known[-1:]

    def _after_prompt(self, line: str) -> str | None:
        m = _PROMPT.match(line)
        if m is not None:
            self.bare = self.bare or False
            return line[m.end() :]
        m = _BARE_PROMPT.match(line)
        if m is None or self.bare is False:
            return None
        rest = line[m.end() :]
        if line.lstrip().startswith("#") and rest.strip() and not is_command_line(rest):
            return None  # a comment, not a root prompt
        if rest.strip():
            self.bare = True
        return rest

    def _command(self, text: str, continued: bool, at: datetime | None) -> None:
        text = text.rstrip()
        current = self.current
        if (
            continued
            and current is not None
            and current.continued
            and not current.lines
            and len(current.command) < COMMAND_CHARS
        ):
            current.command += "\n" + text
            current.continued = text.endswith("\\")
            return
        self._close()
        if not text.strip() or text.endswith("^C"):
            return
        self.current = _Open(text.strip(), at, deque(maxlen=OUTPUT_LINES), text.endswith("\\"))

    def _output(self, line: str) -> None:
        if self.current is None:
            return
        if self.script and line.startswith("Script done on "):
            return
        self.current.continued = False
        self.current.lines.append(line.rstrip()[:_OUTPUT_LINE_CHARS])

    def _close(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        self.count += 1
        if self.count > self.max_commands:
            raise SessionError(
                f"more than {self.max_commands:,} commands: that is more than one incident's "
                "worth; split the recording (or raise the limit)"
            )
        self.done.append(Ran(current.command, _tail(current.lines), current.at, None))


def _tail(lines: deque[str]) -> str:
    kept = list(lines)
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and not kept[0].strip():
        kept.pop(0)
    total = 0
    for i in range(len(kept) - 1, -1, -1):
        total += len(kept[i]) + 1
        if total > OUTPUT_CHARS:
            kept = kept[i + 1 :]
            break
    return "\n".join(kept)


# -- shell histories ---------------------------------------------------------------------------

_BASH_TIME = re.compile(rb"^#(\d{9,11})\s*$")
_ZSH_ENTRY = re.compile(rb"^: *(\d{9,11}):\d*;")
_META = 0x83


def read_history(source: io.BufferedReader, *, max_commands: int = MAX_COMMANDS) -> Iterator[Ran]:
    """A bash history (`#1700000000` lines before each command when HISTTIMEFORMAT is set) or
    a zsh history (extended: `: 1700000000:0;command`, a trailing backslash continuing a
    multi-line command). A history has no output."""
    what = "a shell history"
    lines = _lines(source, HISTORY_LINE_BYTES, what)
    stamp: datetime | None = None
    count = 0
    for number, raw in lines:
        if b"\x00" in raw:
            raise SessionError(f"line {number}: binary data (a NUL byte): expected {what}")
        line = raw.rstrip(b"\r\n")
        bash_time = _BASH_TIME.match(line)
        if bash_time:
            stamp = _when(int(bash_time.group(1)))
            continue
        zsh = _ZSH_ENTRY.match(line)
        at = stamp
        stamp = None
        if zsh:
            at = _when(int(zsh.group(1)))
            command = _text(line[zsh.end() :], zsh=True)
            while command.endswith("\\"):  # zsh escapes a newline in a command with a backslash
                _check_length(command, number)
                more = next(lines, None)
                if more is None:
                    break
                command = command[:-1] + "\n" + _text(more[1].rstrip(b"\r\n"), zsh=True)
        else:
            command = _text(line)
            while command.endswith("\\"):  # typed on several lines: kept as typed
                _check_length(command, number)
                more = next(lines, None)
                if more is None:
                    break
                command += "\n" + _text(more[1].rstrip(b"\r\n"))
        if not command.strip():
            continue
        count += 1
        if count > max_commands:
            raise SessionError(
                f"line {number}: more than {max_commands:,} commands: that is more than one "
                "incident's worth; keep the part of the history about the incident"
            )
        yield Ran(command.strip(), "", at, None)


def _check_length(command: str, number: int) -> None:
    if len(command) > COMMAND_CHARS:
        raise SessionError(
            f"line {number}: a command continued over more than {COMMAND_CHARS // 1024} KiB: "
            "not a shell history"
        )


def _text(raw: bytes, *, zsh: bool = False) -> str:
    """A history line's text. zsh writes some bytes (0x83 and up) as 0x83 and the byte xor
    32 ("metafied"); a zsh line is unmetafied, any other only when it is not UTF-8 as is."""
    if not zsh:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if _META in raw:
        out = bytearray()
        meta = False
        for byte in raw:
            if meta:
                out.append(byte ^ 32)
                meta = False
            elif byte == _META:
                meta = True
            else:
                out.append(byte)
        raw = bytes(out)
    return raw.decode("utf-8", "replace")


__all__ = [
    "KINDS",
    "MAX_COMMANDS",
    "Ran",
    "SessionError",
    "detect",
    "read_cast",
    "read_history",
    "read_script",
    "read_session",
]
