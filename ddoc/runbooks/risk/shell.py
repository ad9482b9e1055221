"""Split a shell command line into simple commands, the unit the rules classify.

A small POSIX-ish tokenizer of our own (rather than ``shlex``) because we need what shlex
drops: operators and redirections as tokens, the text inside ``$( … )``, backticks and
``<( … )`` (those inner commands run too, so they are classified too), and here-documents.
It never raises: input it cannot tokenize (unbalanced quotes, an unclosed ``$(``) is split
again *loosely*, with quotes treated as plain characters, so that no operator can hide
inside a broken string. Linear time; runs of plain text are tokenized in bulk by regex.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_DEPTH = 8  # nested substitutions deeper than this are not worth a stack

_HARD = re.compile(r"[\n'\"\\$`#<>]|&>")  # characters the bulk tokenizer cannot handle
_CHUNK = re.compile(r"([^\s|&;()]+)|(;;&|&&|\|\||;;|;&|\|&|[|&;()])|\s+")
_DQ_PLAIN = re.compile(r'[^"\\$`]+')
_PAREN_STOP = re.compile(r"[\\'\"()]")
_DQ_STOP = re.compile(r'[\\"]')
_BT_STOP = re.compile(r"[\\`]")
_REDIR_RE = re.compile(r"&>>|&>|<<<|<<-|<<|>>|>\||>&|<&|<>|>|<")
_DIGITS = re.compile(r"\d+")
_LOOSE = re.compile(r"(\d*)(&>>|&>|>>|>&|<&|<<<|<<|>|<)|(&&|\|\||;;|[|&;()\n`])|([^\s|&;()<>`]+)")
_KEYWORDS = frozenset("if then else elif fi while until do done ! { } esac function in".split())
_CASE_END = frozenset({";;", ";&", ";;&"})
WORD, OP, REDIR = 0, 1, 2


class _Unbalanced(Exception):
    """An unclosed quote or substitution: switch to the loose split."""


class Redirect(NamedTuple):
    op: str  # ">", ">>", "&>", "<", "<<", "<<<", ">&", …
    target: str
    fd: str = ""  # explicit descriptor, e.g. "2" in "2>/dev/null"


class SimpleCommand(NamedTuple):
    words: tuple[str, ...]
    redirects: tuple[Redirect, ...] = ()
    stdin: str | None = None  # here-document or here-string text
    loose: bool = False  # came from the fallback split: quoting was unreliable


class _Redir:
    __slots__ = ("body", "fd", "op", "target")

    def __init__(self, op: str, fd: str) -> None:
        self.op, self.fd = op, fd
        self.target: str | None = None
        self.body: str | None = None


# (kind, text, quoted, redirect) — tuples because big inputs make millions of tokens.
_Tok = tuple[int, str, bool, _Redir | None]


class _Lexer:
    __slots__ = ("buf", "heredocs", "in_word", "quoted", "subs", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[_Tok] = []
        self.subs: list[str] = []
        self.buf: list[str] = []
        self.in_word = False
        self.quoted = False
        self.heredocs: list[_Redir] = []

    def flush(self) -> None:
        if not self.in_word:
            return
        text = self.buf[0] if len(self.buf) == 1 else "".join(self.buf)
        prev = self.tokens[-1][3] if self.tokens else None
        if prev is not None and prev.target is None:
            prev.target = text
            if prev.op in ("<<", "<<-"):
                self.heredocs.append(prev)
        else:
            self.tokens.append((WORD, text, self.quoted, None))
        self.buf, self.in_word, self.quoted = [], False, False

    def add(self, piece: str, quoted: bool = False) -> None:
        self.buf.append(piece)
        self.in_word = True
        self.quoted = self.quoted or quoted


def _match_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing a ``(`` just before ``start``; quotes are skipped."""
    depth, i = 1, start
    if text.find(")", start) < 0:
        raise _Unbalanced
    while (m := _PAREN_STOP.search(text, i)) is not None:
        i, c = m.start(), m.group()
        if c == "\\":
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise _Unbalanced
            i = j + 1
        elif c == '"':
            i = _skip_double(text, i + 1)
        elif c == "(":
            depth, i = depth + 1, i + 1
        else:
            depth -= 1
            if depth == 0:
                return i
            i += 1
    raise _Unbalanced


def _skip_double(text: str, i: int) -> int:
    """Index just past the closing ``"`` of a double-quoted string starting at ``i``."""
    while (m := _DQ_STOP.search(text, i)) is not None:
        if m.group() == '"':
            return m.start() + 1
        i = m.start() + 2
    raise _Unbalanced


def _backtick_end(text: str, i: int) -> int:
    while (m := _BT_STOP.search(text, i)) is not None:
        if m.group() == "`":
            return m.start()
        i = m.start() + 2
    raise _Unbalanced


def _substitution(lx: _Lexer, i: int, inner_start: int, j: int) -> int:
    """Record ``text[inner_start:j]`` as a command to classify; keep the raw text as a word."""
    lx.subs.append(lx.text[inner_start:j])
    lx.add(lx.text[i : j + 1])
    return j + 1


def _dollar(lx: _Lexer, i: int, in_dq: bool) -> int:
    """Handle ``$…`` at ``i``; returns the next index."""
    text = lx.text
    nxt = text[i + 1 : i + 2]
    if nxt == "(":
        if text[i + 2 : i + 3] == "(":  # arithmetic: no command inside worth classifying
            j = _match_paren(text, i + 2)
            end = j + 1 if text[j + 1 : j + 2] == ")" else j
            lx.add(text[i : end + 1])
            return end + 1
        return _substitution(lx, i, i + 2, _match_paren(text, i + 2))
    if nxt == "{":
        j = text.find("}", i + 2)
        if j < 0:
            raise _Unbalanced
        lx.add(text[i : j + 1])
        return j + 1
    if nxt == "'" and not in_dq:  # ANSI-C quoting
        j = i + 2
        while j < len(text) and text[j] != "'":
            j += 2 if text[j] == "\\" else 1
        if j >= len(text):
            raise _Unbalanced
        lx.add(text[i + 2 : j].replace("\\'", "'"), quoted=True)
        return j + 1
    lx.add("$")
    return i + 1


def _double(lx: _Lexer, i: int) -> int:
    """Handle a double-quoted string whose opening quote is at ``i - 1``."""
    text, n = lx.text, len(lx.text)
    lx.add("", quoted=True)
    while i < n:
        m = _DQ_PLAIN.match(text, i)
        if m:
            lx.add(m.group())
            i = m.end()
            continue
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt != "\n":
                lx.add(nxt if nxt in ('"', "\\", "$", "`") else "\\" + nxt)
            i += 2
        elif c == "$":
            i = _dollar(lx, i, in_dq=True)
        else:  # backtick
            i = _substitution(lx, i, i + 1, _backtick_end(text, i + 1))
    raise _Unbalanced


def _read_heredocs(lx: _Lexer, i: int) -> int:
    """Consume the bodies of pending here-documents, which start after a newline at ``i``."""
    text, n = lx.text, len(lx.text)
    for redir in lx.heredocs:
        delim, strip = redir.target or "", redir.op == "<<-"
        lines: list[str] = []
        while i < n:
            j = text.find("\n", i)
            line = text[i:] if j < 0 else text[i:j]
            i = n if j < 0 else j + 1
            if (line.lstrip("\t") if strip else line) == delim:
                break
            lines.append(line)
        redir.body = "\n".join(lines)
    lx.heredocs = []
    return i


def _tokenize(text: str) -> tuple[list[_Tok], list[str]]:
    lx = _Lexer(text)
    i, n = 0, len(text)
    tokens = lx.tokens
    while i < n:
        h = _HARD.search(text, i)
        j = h.start() if h else n
        if j > i:  # a run of plain words and control operators
            for word, op in _CHUNK.findall(text, i, j):
                if word:
                    lx.buf.append(word)
                    lx.in_word = True
                else:
                    lx.flush()
                    if op:
                        tokens.append((OP, op, False, None))
            i = j
            if i >= n:
                break
        c = text[i]
        if c == "\n":
            lx.flush()
            tokens.append((OP, "\n", False, None))
            i = _read_heredocs(lx, i + 1) if lx.heredocs else i + 1
        elif c == "\\":
            if text[i + 1 : i + 2] != "\n":  # backslash-newline is a line continuation
                lx.add(text[i + 1 : i + 2], quoted=True)
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise _Unbalanced
            lx.add(text[i + 1 : j], quoted=True)
            i = j + 1
        elif c == '"':
            i = _double(lx, i + 1)
        elif c == "$":
            i = _dollar(lx, i, in_dq=False)
        elif c == "`":
            i = _substitution(lx, i, i + 1, _backtick_end(text, i + 1))
        elif c == "#" and lx.in_word:
            lx.add("#")
            i += 1
        elif c == "#":  # a comment runs to the end of the line
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "<>" and text[i + 1 : i + 2] == "(":  # <( … ) runs a command too
            i = _substitution(lx, i, i + 2, _match_paren(text, i + 2))
        else:
            i = _redirect(lx, i)
    lx.flush()
    return tokens, lx.subs


def _redirect(lx: _Lexer, i: int) -> int:
    fd = ""
    if lx.in_word:
        if not lx.quoted and _DIGITS.fullmatch("".join(lx.buf)):
            fd, lx.buf, lx.in_word = "".join(lx.buf), [], False
        else:
            lx.flush()
    m = _REDIR_RE.match(lx.text, i)
    op = m.group() if m else lx.text[i]
    lx.tokens.append((REDIR, op, False, _Redir(op, fd)))
    return i + len(op)


def _tokenize_loose(text: str) -> list[_Tok]:
    """Whitespace-and-operator split with quotes as plain characters; cannot fail."""
    lines = [ln for ln in text.split("\n") if not ln.lstrip().startswith("#")]
    tokens: list[_Tok] = []
    for fd, rop, op, raw in _LOOSE.findall("\n".join(lines)):
        if rop:
            tokens.append((REDIR, rop, False, _Redir(rop, fd)))
        elif op:
            tokens.append((OP, op, False, None))
        else:
            word = raw.replace("'", "").replace('"', "").replace("\\", "")
            prev = tokens[-1][3] if tokens else None
            if prev is not None and prev.target is None:
                prev.target = word
            elif word:
                tokens.append((WORD, word, False, None))
    return tokens


def split_commands(text: str, depth: int = 0) -> list[SimpleCommand]:
    """All simple commands in ``text``, including those inside substitutions."""
    try:
        tokens, subs = _tokenize(text)
        loose = False
    except _Unbalanced:
        tokens, subs, loose = _tokenize_loose(text), [], True
    commands = _build(tokens, loose)
    for inner in subs:
        if depth >= MAX_DEPTH:
            commands.append(SimpleCommand(("<too deeply nested>",), (), None, loose))
        else:
            commands.extend(split_commands(inner, depth + 1))
    return commands


def _build(tokens: list[_Tok], loose: bool) -> list[SimpleCommand]:
    """Group tokens into simple commands, skipping shell keywords and loop headers."""
    out: list[SimpleCommand] = []
    words: list[str] = []
    redirects: list[Redirect] = []
    stdin: str | None = None
    skip_header = False  # inside `for x in …` / `case … in`
    in_pattern = False  # inside a case pattern, up to its `)`
    case_depth = 0
    in_test = False  # inside `[[ … ]]`, where && and || are not command separators
    i, n = 0, len(tokens)
    while i < n:
        kind, word, quoted, redir = tokens[i]
        i += 1
        if in_test:
            if kind == WORD:
                words.append(word)
                in_test = word != "]]"
            continue
        if redir is not None:
            target = redir.target or ""
            redirects.append(Redirect(redir.op, target, redir.fd))
            if redir.op == "<<<":
                stdin = target
            elif redir.body is not None:
                stdin = redir.body
            continue
        if kind == OP:
            if in_pattern:
                in_pattern = word != ")"
                continue
            if word == "(" and len(words) == 1 and i < n and tokens[i][1] == ")":
                words, i = [], i + 1  # `name() {` defines a function
                continue
            if words or redirects:
                out.append(SimpleCommand(tuple(words), tuple(redirects), stdin, loose))
                words, redirects, stdin = [], [], None
            skip_header = False
            in_pattern = bool(case_depth) and word in _CASE_END
            continue
        if in_pattern:
            if word == "esac" and not quoted:
                case_depth, in_pattern = max(0, case_depth - 1), False
            continue
        if skip_header:
            if word == "do" and not quoted:
                skip_header = False
            if word == "in" and not quoted and case_depth and not words:
                skip_header, in_pattern = False, True
            continue
        if not words and not quoted:
            if word in ("for", "select", "case"):
                case_depth += word == "case"
                skip_header = True
                continue
            if word == "esac":
                case_depth = max(0, case_depth - 1)
                continue
            if word in _KEYWORDS:
                continue
            in_test = word == "[["
        words.append(word)
    if words or redirects:
        out.append(SimpleCommand(tuple(words), tuple(redirects), stdin, loose))
    return out


_LOOPS = frozenset({"for", "while", "until", "select"})
_REPEAT_WORDS = re.compile(r"\b(?:for|while|until|select|xargs|parallel)\b")
_FEEDERS = frozenset({"xargs", "parallel"})
_PREFIXES = frozenset({"sudo", "env", "nice", "nohup", "time", "command"})


def repeats(text: str, depth: int = 0) -> str | None:
    """How a command line runs its commands over a list: a shell loop, `xargs` or GNU
    `parallel` (None: each command runs once). Quoted words (`echo "for x in y"`) are not."""
    if not _REPEAT_WORDS.search(text):
        return None  # the common case, without tokenizing again
    try:
        tokens, subs = _tokenize(text)
    except _Unbalanced:
        tokens, subs = _tokenize_loose(text), []
    for inner in subs if depth < MAX_DEPTH else ():  # `echo $(for x in …; do …; done)` too
        found = repeats(inner, depth + 1)
        if found:
            return found
    start = True
    for kind, word, quoted, _redir in tokens:
        if kind == OP:
            start = True
        elif start and not quoted and word in _LOOPS:
            return "a loop"
        elif not (start and not quoted and word in _KEYWORDS):
            start = False
    for command in split_commands(text):
        words = list(command.words)
        while words and (words[0] in _PREFIXES or "=" in words[0].split("/")[0]):
            words = words[1:]
        if words and words[0].rsplit("/", 1)[-1] in _FEEDERS:
            return words[0].rsplit("/", 1)[-1]
    return None
