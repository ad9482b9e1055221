"""Commands written in running prose, without backticks: find them and cut them exactly.

Why this file is long: where a command ends in prose is one tokenizer and one set of stop
rules, fed by the function words of seven languages; the rules are only right together.

Pasted Confluence pages lose their code formatting, Slack threads and notes never had it:
"drain it first: kubectl drain <node> --ignore-daemonsets, then …". A command starts at a
known program (or ``sudo``/``env``/``VAR=value``/``./script``/an absolute path to one) and
ends where the prose resumes: a function word ("and", "to", "then", "und", "y" …), a
parenthesis or dash that opens a remark, an arrow, a clause's punctuation. Quotes are
honoured, so ``psql -c "select … where a and b"`` stays whole. What is found is always a
verbatim slice of the text it was found in.

The vocabulary of programs is data (``programs.yaml``), extended per tenant.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from ddoc.runbooks.parsing.nodes import Seg


@dataclass(frozen=True)
class Vocabulary:
    """Program names, naming conventions, English-word programs and known sub-commands."""

    programs: frozenset[str]
    families: re.Pattern[str]
    ambiguous: frozenset[str]
    subcommands: dict[str, frozenset[str]]

    def knows(self, prog: str) -> bool:
        return prog in self.programs or _family(self.families, prog)

    def extended(self, extra: Iterable[str]) -> Vocabulary:
        names = frozenset(p.strip() for p in extra if p and p.strip())
        if not names - self.programs:
            return self
        return Vocabulary(
            self.programs | names, self.families, self.ambiguous - names, self.subcommands
        )


@functools.lru_cache(maxsize=65536)
def _family(families: re.Pattern[str], prog: str) -> bool:
    return families.fullmatch(prog) is not None


@functools.cache
def default_vocabulary() -> Vocabulary:
    raw: Any = yaml.safe_load(
        resources.files("ddoc.runbooks.parsing")
        .joinpath("programs.yaml")
        .read_text(encoding="utf-8")
    )
    families = "|".join(f"(?:{p})" for p in raw["families"])
    return Vocabulary(
        programs=frozenset(raw["programs"].split()),
        families=re.compile(families),
        ambiguous=frozenset(raw["ambiguous"].split()),
        subcommands={k: frozenset((v or "").split()) for k, v in raw["subcommands"].items()},
    )


@functools.cache
def vocabulary_with(extra: frozenset[str]) -> Vocabulary:
    return default_vocabulary().extended(extra)


# Words that end a command when they follow it: prose resumes. Function words of the languages
# runbooks are written in; content words are left alone (they can be arguments).
_STOPWORDS = frozenset(
    """
    and or then than to which that so but if until when while because since once after before unless
    otherwise where whether it this these those is are was were be been being has have had do
    does did you we they i he she my your our their its the a an of in on at for with from by as
    into onto also again now please just only not should will would could can may might must
    until till via per about like e.g i.e etc see check look compare make note wait every each
    say says said seems seem looks shows showed gives gave returns returned
    first next afterwards instead too anyway here there what why how who whom whose
    und oder dann um zu mit für auf im den die das der dem des ist sind wenn damit bis danach
    und ob nicht noch auch mal bitte vorher nachher sonst aber weil
    y o luego para con en el la los las que si hasta después antes pero porque sin
    et ou puis pour avec du des le les que si jusqu après avant mais sans ensuite
    e ou depois com do da em os que se até antes mas sem então
    en of dan om met van het als tot daarna eerst voor maar zonder uit aan kijk
    """.split()
)
# Tokens after which a command never continues.
_CHAIN = frozenset({"|", "||", "&&", ";", "&"})
_LONE_PUNCT = frozenset({":", ",", "!", "?", "+", "\u00ab", "\u00bb", "=", "~"})
_BREAKERS = frozenset(
    "\u2014 \u2013 -> => \u2192 <- \u2190 <-- --> :: // ... \u2026 ( ) [ ] { }".split()
)
_ARTICLES = frozenset(
    "the a an our your their its his her some any no every der die das den ein eine kein keine "
    "el la los las un una le les une des o os um uma de het een".split()
)
_WRAPPERS = frozenset("sudo doas env time nohup exec timeout watch nice ionice stdbuf".split())
_WRAPPER_ARG_OPTS = frozenset("-u -g -C -D -h -p -r -t -U -n -d -s -k -i -o -e".split())
_BARE_OK = frozenset(
    "df top htop free uptime dmesg iostat vmstat ps w who lsblk netstat nvidia-smi".split()
)
_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
_PROG = re.compile(r"^[a-z0-9][a-zA-Z0-9._+-]*$")
_EXEC_PATH = re.compile(r"^(?:\.{1,2}/|~/|/)[\w.@+/-]*[\w]$")
_SCRIPT = re.compile(r"^[\w.+-]+\.(?:sh|py|rb|pl)$")
_OPENERS = "([\"'\u201c\u2018\u00ab"
_CLOSERS = {
    ")": "(",
    "]": "[",
    "}": "{",
    "\u201d": "\u201c",
    "\u2019": "\u2018",
    "\u00bb": "\u00ab",
}
_TRAILING = ".,;:!?\u2026`"
_TECHNICAL = re.compile(r"[-/=:.<>${}@*_~%\d\"'|\\\[\]]")
_STRONG = re.compile(r"^-|[/=<>$\"'|*@]")
_PLAIN_WORD = re.compile(r"^[A-Za-z][a-z']*$")
_CAPITALISED = re.compile(r"^[A-Z][a-z][a-z']*$")
_NON_ASCII_WORD = re.compile(r"[^\x00-\x7f]")
_PLACEHOLDER = re.compile(r"^(?:<[^<>\s]+>|\{\{[^{}]+\}\}|\$\{?\w+\}?)[.,;:!?)]*$")
_EMOJI = re.compile(r"^:[a-z0-9_+-]+:$")
_SPACE = re.compile(r"\S+")
# Full-width colon, semicolon, commas, full stop, parentheses, brackets, ! and ?.
_CJK_PUNCT = frozenset(
    "\uff1a\uff1b\u3001\u3002\uff08\uff09\u300c\u300d\u300e\u300f\u3010\u3011\uff01\uff1f\uff0c"
)
_MAX_TOKENS = 60


@dataclass(slots=True)
class _Tok:
    start: int
    end: int
    text: str


def _tokens(text: str) -> list[_Tok]:
    """Whitespace-separated words; a quote opened inside a word runs to its closing quote.
    Full-width punctuation (a Japanese colon, parenthesis or comma) separates words as a space
    does."""
    if "'" not in text and '"' not in text and not _CJK_PUNCT.intersection(text):
        return [_Tok(m.start(), m.end(), m.group()) for m in _SPACE.finditer(text)]
    out: list[_Tok] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] in _CJK_PUNCT):
            i += 1
        if i >= n:
            break
        start = i
        while i < n and not text[i].isspace() and text[i] not in _CJK_PUNCT:
            ch = text[i]
            if ch in "\"'" and (i == start or text[i - 1] not in "\\"):
                close = text.find(ch, i + 1)
                # A quote that closes within the line (and is not an apostrophe in prose).
                if close != -1 and not (ch == "'" and i > start and text[i - 1].isalpha()):
                    i = close + 1
                    continue
            i += 1
        out.append(_Tok(start, i, text[start:i]))
    return out


def find_commands(text: str, vocab: Vocabulary | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the commands written in ``text``, in order, not overlapping."""
    vocab = vocab or default_vocabulary()
    if not any(ch.isalpha() for ch in text):
        return []
    toks = _tokens(text)
    found: list[tuple[int, int]] = []
    i = 0
    n = len(toks)
    while i < n:
        quoted = _quoted_command(text, toks[i], vocab)
        if quoted is not None:
            found.append(quoted)
            i += 1
            continue
        span = _command_at(text, toks, i, vocab)
        if span is None:
            sql = _SQL_STATEMENT.match(text, toks[i].start) if toks[i].text[:1].isupper() else None
            if sql is not None and (i == 0 or not _SQL_STATEMENT.match(text, toks[i - 1].start)):
                found.append((sql.start(), sql.end()))
                i = next((k for k in range(i, n) if toks[k].start >= sql.end()), n)
                continue
            i += 1
            continue
        start, end, next_i = span
        if start >= 0:
            found.append((start, end))
        i = max(next_i, i + 1)
    return found


# An upper-case SQL statement in prose, up to its semicolon: "run SELECT count(*) FROM jobs;".
_SQL_STATEMENT = re.compile(
    r"(?:SELECT|UPDATE|DELETE FROM|INSERT INTO|ALTER (?:TABLE|SYSTEM|DATABASE|ROLE)|VACUUM|"
    r"ANALYZE|TRUNCATE|DROP (?:TABLE|INDEX|DATABASE|SCHEMA)|CREATE (?:INDEX|TABLE)|REINDEX|"
    r"SHOW|EXPLAIN|GRANT|REVOKE|CHECKPOINT)\b[^;\n`]{0,400}?;"
)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}


def _quoted_command(text: str, tok: _Tok, vocab: Vocabulary) -> tuple[int, int] | None:
    """'run "kubectl get pods -n web" to list them': the command inside the quotes."""
    close = _QUOTES.get(tok.text[:1])
    if close is None:
        return None
    end = text.find(close, tok.start + 1)
    if end <= tok.start + 1:
        return None
    inner = text[tok.start + 1 : end]
    spans = find_commands(inner, vocab) if " " in inner else []
    if len(spans) == 1 and spans[0] == (0, len(inner)):
        return tok.start + 1, end
    return None


def _command_at(
    text: str, toks: list[_Tok], i: int, vocab: Vocabulary
) -> tuple[int, int, int] | None:
    first = toks[i]
    word = first.text
    lead = 0
    while lead < len(word) - 1 and word[lead] in _OPENERS:
        lead += 1
    word = word[lead:]
    if lead and word[:1] in "\"'":
        return None
    head = word[:1]
    if not (head.islower() or head in "./~" or (head.isupper() and "=" in word)):
        return None  # programs, paths and scripts are lower-case; "VAR=x" may not be
    # Walk wrappers and VAR=value prefixes to the program.
    j = i
    cur = word
    wrapped = False
    while True:
        bare = cur.rstrip(_TRAILING)
        if _ASSIGN.match(cur):
            wrapped = True
        elif bare in _WRAPPERS and bare == cur and j + 1 < len(toks):
            # "sudo gitlab-psql" runs a program; "time more" is prose.
            wrapped = wrapped or bare in ("sudo", "doas")
            while j + 1 < len(toks) and toks[j + 1].text.startswith("-"):
                j += 2 if toks[j + 1].text in _WRAPPER_ARG_OPTS else 1
        else:
            break
        j += 1
        if j >= len(toks):
            return None
        cur = toks[j].text
    prog_tok = cur.rstrip(_TRAILING + ")")
    prog = prog_tok.rsplit("/", 1)[-1] if "/" in prog_tok else prog_tok
    known = vocab.knows(prog) and _PROG.match(prog) is not None
    if not known and j > i and vocab.knows(word) and not _ASSIGN.match(word):
        # "watch -n 5 'kubectl get pods'": the wrapper is the program.
        j, cur, prog_tok, prog, known, wrapped = i, word, word, word, True, False
    script = _SCRIPT.match(prog_tok) is not None or (
        _EXEC_PATH.match(prog_tok) is not None and _looks_executable(prog_tok)
    )
    if "`" in cur:
        return None
    if not (known or script) or prog_tok != cur[: len(prog_tok)]:
        return None
    prev = toks[i - 1].text.lower().strip(_TRAILING + _OPENERS) if i > 0 else ""
    if prev in _ARTICLES:
        return None
    if _NEVER.search(text, max(0, first.start - 40), first.start):
        return None  # "never run terraform destroy here": a warning, not a step
    # Extend over the arguments.
    args: list[str] = []
    end = toks[j].end
    if cur != prog_tok:
        # "… then run uptime." — the program alone, punctuation after it.
        start = first.start + lead
        if not _plausible(prog_tok, prog, [], wrapped, vocab, text[:start], script):
            return None
        return start, toks[j].start + len(prog_tok), j + 1
    k = j + 1
    technical_seen = False
    paren = 0
    while k < len(toks) and k - j <= _MAX_TOKENS:
        tok = toks[k].text
        if tok in _CHAIN:
            nxt = toks[k + 1].text if k + 1 < len(toks) else ""
            if tok == "&" and not nxt:
                end = toks[k].end  # a background job
                k += 1
                break
            if nxt and _starts_command(nxt, vocab):
                args.append(tok)
                end = toks[k].end
                k += 1
                continue
            break
        gap = text[toks[k - 1].end : toks[k].start]
        if "\t" in gap or ("   " in gap and not _TECHNICAL.search(tok)):
            break  # a table pasted as text: the next cell
        if _stops(tok, args, technical_seen, toks, k, vocab, prog):
            break
        if tok == "." and not (args and args[-1] in _DOT_ARG_AFTER):
            break  # "check it with kubectl get nodes -o wide ." — the sentence's full stop
        core, cut = _trim(tok, paren)
        if core is None:
            break
        if core:
            paren += core.count("(") - core.count(")")
            args.append(core)
            end = toks[k].start + len(core)
            if _TECHNICAL.search(core):
                technical_seen = True
        k += 1
        if cut:
            break
    start = first.start + lead
    if not _plausible(prog_tok, prog, args, wrapped, vocab, text[:start], script):
        return None
    if not _balanced(text[start:end]):
        return -1, -1, k  # a broken cut: nothing in it starts a command either
    # A command inside a clause ends before dangling chain operators.
    command = text[start:end]
    stripped = command.rstrip(" |&;")
    end = start + len(stripped)
    return start, end, k


def _starts_command(tok: str, vocab: Vocabulary) -> bool:
    word = tok.rstrip(_TRAILING)
    if _ASSIGN.match(word) or word in _WRAPPERS:
        return True
    prog = word.rsplit("/", 1)[-1]
    return (vocab.knows(prog) and _PROG.match(prog) is not None) or _SCRIPT.match(word) is not None


def _looks_executable(path: str) -> bool:
    if path.startswith(("./", "../", "~/")):
        return not path.endswith((".yml", ".yaml", ".json", ".conf", ".md", ".log", ".txt"))
    return bool(re.search(r"/(?:s?bin|scripts?|tools)/[\w.+-]+$", path)) or path.endswith(
        (".sh", ".py")
    )


def _stops(
    tok: str,
    args: list[str],
    technical_seen: bool,
    toks: list[_Tok],
    k: int,
    vocab: Vocabulary,
    prog: str,
) -> bool:
    if tok in _BREAKERS:
        return True
    if tok in _LONE_PUNCT:
        return True  # French spacing ("recharger nginx : sudo …"), "nginx + php-fpm"
    if tok == "/" and args and not args[-1].startswith("-"):
        return True  # "mysql replica lag / broken replication": a slash between words
    if tok == "-":
        # "prune -f - safe, images are re-pulled": a dash that opens a remark.
        nxt = toks[k + 1].text if k + 1 < len(toks) else ""
        return bool(nxt) and not nxt.startswith("-")
    if tok[0] == "(" and not tok.startswith("(("):
        return True
    if tok[0] in "\u2014\u2013\u2192\u2190#" or _EMOJI.match(tok):
        return True
    word = tok.rstrip(_TRAILING + ")\"'\u201d\u2019")
    low = word.lower()
    if _PLACEHOLDER.match(tok):
        return False
    if _NON_ASCII_WORD.search(word) and tok[0] not in "\"'":
        return True
    if _PLAIN_WORD.match(word):
        if low in _STOPWORDS:
            return True
        if _CAPITALISED.match(word) and not (args and args[-1].startswith("-")):
            # "… | grep Sealed" searches for a word; elsewhere a capital opens a sentence.
            return _segment_program(args, prog) not in _PATTERN_PROGRAMS or _has_pattern(args)
        subs = vocab.subcommands.get(prog)
        after_value = bool(args) and args[-1].startswith("-")
        nxt = toks[k + 1].text.lower() if k + 1 < len(toks) else ""
        if technical_seen and nxt in ("out", "off") and not (subs and low in subs):
            return True  # "… flushdb logs out every user"
        if technical_seen and low in _PROSE_VERBS_AFTER:
            return True  # "… --force brings it back", "… reverts to", "… ansehen."
        if (
            technical_seen
            and not after_value
            and len(low) > 5
            and low.endswith(("ed", "ing"))
            and _followed_by_prose(toks, k)
        ):
            return True  # "… --state NotReady) cleaned up the sandboxes"
        if technical_seen and low in _PROSE_VERBS and not (args and args[-1].startswith("-")):
            # "kubectl get pods -n payments look for …": a verb after arguments is prose.
            return not (subs and low in subs and len(args) <= 1)
    return False


# Arguments after which a lone "." is the current directory, not a full stop.
_DOT_ARG_AFTER = frozenset(
    """build add apply -k --kustomize -f -C -chdir lint template install upgrade diff checkout
    restore cd ls du find rsync cp scp stat grep rg chown chmod tar -czf""".split()
)
# Verbs that follow a command in prose ("… --force brings it back as leader"): never arguments
# once the command has a technical one.
_PROSE_VERBS_AFTER = frozenset(
    """reverts brings takes makes shows gives returns prints lists says seems looks restores
    fixes drops kills removes deletes clears resets moves puts sends keeps helps works fails
    should would will must needs needed tells confirms verifies ensures checks waits stops
    starts restarts rolls recycles triggers blocks hangs succeeds finishes completes outputs
    ansehen anschauen ausführen aufrufen prüfen überprüfen starten neustarten löschen eingeben
    laufen verwenden nutzen benutzen""".split()
)
_PATTERN_PROGRAMS = frozenset("grep egrep fgrep zgrep rg ag".split())


def _followed_by_prose(toks: list[_Tok], k: int) -> bool:
    nxt = toks[k + 1].text if k + 1 < len(toks) else ""
    return not nxt or bool(_PLAIN_WORD.match(nxt.rstrip(_TRAILING)))


def _segment_program(args: list[str], prog: str) -> str:
    """The program of the pipeline segment the next argument belongs to."""
    for k in range(len(args) - 1, -1, -1):
        if args[k] in _CHAIN:
            return args[k + 1] if k + 1 < len(args) else ""
    return prog


def _has_pattern(args: list[str]) -> bool:
    """Whether the current grep already has its pattern (then a capital is prose again)."""
    for k in range(len(args) - 1, -1, -1):
        if args[k] in _CHAIN:
            return any(not a.startswith("-") for a in args[k + 2 :])
    return any(not a.startswith("-") for a in args)


_PROSE_VERBS = frozenset(
    """look check see verify confirm compare make wait watch ensure note keep expect find try
    repeat run use notice mind remember continue proceed ask tell ping page escalate open
    go""".split()
)


def _trim(tok: str, paren: int) -> tuple[str | None, bool]:
    """The part of ``tok`` that belongs to the command, and whether the command ends there.

    ``paren`` is the command's open-parenthesis balance before ``tok``."""
    core = tok
    cut = False
    while core:
        last = core[-1]
        if last in _TRAILING and len(core) > 1 and core not in ("..", "./"):
            if last == "." and core.endswith("/."):
                break
            core = core[:-1]
            cut = True
            continue
        if last == ")" and paren + core.count("(") - core.count(")") < 0:
            core = core[:-1]
            cut = True
            continue
        if last in _CLOSERS and last != ")" and core.count(_CLOSERS[last]) < core.count(last):
            core = core[:-1]
            cut = True
            continue
        if last in "\"'" and core.count(last) % 2 == 1:
            core = core[:-1]
            cut = True
            continue
        break
    if not core:
        return None, True
    return core, cut


def _plausible(
    path: str,
    prog: str,
    args: list[str],
    wrapped: bool,
    vocab: Vocabulary,
    before: str,
    script: bool,
) -> bool:
    """Enough evidence that this is a command and not prose that names a program."""
    plain = [a for a in args if a not in _CHAIN]
    if not plain:
        if script:
            # "To roll back: unbump.sh"; an absolute path alone only where a line starts with it.
            if path.startswith("/"):
                return not before.strip()
            return _RUN_BEFORE.search(before) is not None
        if prog in _BARE_OK:
            return wrapped or _RUN_BEFORE.search(before) is not None
        return wrapped
    technical = [a for a in plain if _TECHNICAL.search(a) and a != "-"]
    subs = vocab.subcommands.get(prog)
    first_word = next((a for a in plain if not a.startswith("-")), "")
    if prog in vocab.ambiguous:
        if prog == "service" and len(plain) >= 2:
            return plain[1] in ("start", "stop", "restart", "status", "reload", "force-reload")
        # "top 10", "node Patroni-08": an English word needs a flag, a path, an assignment.
        strong = [
            a
            for a in technical
            if _STRONG.search(a)
            or (a.isdigit() and prog == "kill")
            or (prog == "ping" and re.search(r"\w\.\w", a))
        ]
        return bool(strong) or (bool(subs) and first_word in (subs or ()))
    if technical or script or wrapped or any(a in _CHAIN for a in args):
        return True
    # Only plain words after it: "consul members" is a command, "pgbouncer fleet" is not.
    return bool(subs) and first_word in (subs or ())


def _balanced(command: str) -> bool:
    """Quotes closed and ``$(``/``(`` balanced: a cut that leaves them open is no command."""
    depth = 0
    quote = ""
    escaped = False
    for ch in command:
        if escaped:
            escaped = False
            continue
        if ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return not quote and depth == 0


_NEVER = re.compile(
    r"\b(?:never|don'?t|do not|must not|should not|shouldn'?t|nie|nunca|jamais|niemals|nooit"
    r"|nicht|niet|no (?:ejecutes|uses|lances)|ne (?:pas|jamais)|não)"
    r"(?:\s+(?:ever|run|use|type|execute|do|try|call|mit|with|using|con|avec|met|com))*\s*:?\s*$",
    re.I,
)
_RUN_BEFORE = re.compile(
    r"(?:\b(?:run|running|execute|type|use|with|try|via)\s*:?|[:>→-]|^)\s*[\"'(]?$", re.I
)


def split_prose(segs: list[Seg], lines: list[str], vocab: Vocabulary | None) -> list[Seg]:
    """``segs`` with the commands found in their prose turned into (bare) code segments.

    A command is kept as code only where it occurs verbatim on its source line (markdown
    may have unescaped or dropped characters from the text it shows)."""
    vocab = vocab or default_vocabulary()
    out: list[Seg] = []
    for seg in segs:
        if seg.kind != "text" or seg.href is not None or len(seg.value) < 4:
            out.append(seg)
            continue
        spans = find_commands(seg.value, vocab)
        if not spans:
            out.append(seg)
            continue
        src = lines[seg.line - 1] if 0 < seg.line <= len(lines) else ""
        pos = 0
        for start, end in spans:
            command = seg.value[start:end]
            if start > pos:
                out.append(Seg("text", seg.value[pos:start], seg.line))
            out.append(Seg("code", command, seg.line, verbatim=command in src, bare=True))
            pos = end
        if pos < len(seg.value):
            out.append(Seg("text", seg.value[pos:], seg.line))
    return out
