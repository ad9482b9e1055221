"""SQL classification (Postgres first, common MySQL statements too).

Statements are split on ``;`` outside quotes, dollar quotes and comments; psql backslash
meta-commands are statements of their own. Each statement is rated from a *skeleton* in which
string literals are blanked, so ``WHERE note = 'DROP TABLE'`` cannot fool the keyword rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk.model import PartAssessment, RiskAssessment

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED

_PLAIN = re.compile(r"[^\s'\"`$;\\/-]+|[/-]")
_DOLLAR = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\d+|''|\"[^\"]*\"|`[^`]*`|[()=<>!]+|[^\s\w]")
_WS = re.compile(r"\s+")
_DISPLAY_LIMIT = 200
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})
# `ON CONFLICT DO UPDATE` is part of an INSERT; `FOR [NO KEY] UPDATE` is a row lock.
_NOT_DML_BEFORE = frozenset({"DO", "FOR", "KEY"})

Verdict = tuple[RiskClass, str, str]  # level, reason, rule id
ShellClassifier = Callable[[str], RiskAssessment]

_GREEN_START = {
    **dict.fromkeys(
        ("SHOW", "DESCRIBE", "DESC", "USE", "HELP", "STATUS", "HANDLER"),
        (G, "only reads", "sql.show"),
    ),
    **dict.fromkeys(
        (
            "BEGIN",
            "COMMIT",
            "END",
            "ROLLBACK",
            "ABORT",
            "SAVEPOINT",
            "RELEASE",
            "DEALLOCATE",
            "LISTEN",
            "UNLISTEN",
            "FETCH",
            "CLOSE",
            "DECLARE",
            "MOVE",
        ),
        (G, "transaction or cursor control", "sql.transaction"),
    ),
}
_YELLOW_START = {
    "INSERT": "INSERT adds rows",
    "REPLACE": "REPLACE writes rows",
    "MERGE": "MERGE writes rows",
    "CREATE": "CREATE adds an object",
    "GRANT": "GRANT changes privileges",
    "REVOKE": "REVOKE changes privileges",
    "ANALYZE": "ANALYZE updates planner statistics",
    "ANALYSE": "ANALYZE updates planner statistics",
    "REINDEX": "REINDEX rebuilds indexes",
    "CLUSTER": "CLUSTER rewrites a table",
    "REFRESH": "REFRESH rewrites a materialized view",
    "CHECKPOINT": "CHECKPOINT forces a checkpoint",
    "SET": "SET changes a setting",
    "RESET": "RESET changes a setting",
    "LOCK": "LOCK takes table locks",
    "CALL": "CALL runs a procedure",
    "DO": "DO runs an anonymous code block",
    "PREPARE": "PREPARE defines a statement",
    "EXECUTE": "EXECUTE runs a prepared statement",
    "NOTIFY": "NOTIFY signals listeners",
    "LOAD": "LOAD loads a library",
    "COMMENT": "COMMENT changes metadata",
    "SECURITY": "SECURITY LABEL changes metadata",
    "REASSIGN": "REASSIGN OWNED changes ownership",
    "IMPORT": "IMPORT adds foreign tables",
    "DISCARD": "DISCARD resets session state",
    "KILL": "KILL ends a query or connection",
    "FLUSH": "FLUSH flushes server caches or logs",
    "OPTIMIZE": "OPTIMIZE rebuilds a table",
    "REPAIR": "REPAIR rewrites a table",
    "RENAME": "RENAME renames a table",
    "STOP": "STOP pauses replication",
    "START": "START starts replication",
    "CHANGE": "CHANGE alters replication",
    "INSTALL": "INSTALL adds a plugin",
    "UNINSTALL": "UNINSTALL removes a plugin",
    "VACUUM": "VACUUM reclaims space",
}
_RED_FUNCS = {
    "PG_PROMOTE": "pg_promote() turns a standby into a primary",
    "PG_DROP_REPLICATION_SLOT": "pg_drop_replication_slot() drops a slot",
    "LO_UNLINK": "lo_unlink() deletes a large object",
    "PG_FILE_UNLINK": "pg_file_unlink() deletes a server file",
}
_YELLOW_FUNCS = {
    "PG_TERMINATE_BACKEND": "pg_terminate_backend() kills a session (clients reconnect)",
    "PG_CANCEL_BACKEND": "pg_cancel_backend() cancels a query",
    "PG_RELOAD_CONF": "pg_reload_conf() reloads the configuration",
    **dict.fromkeys(
        (
            "PG_ROTATE_LOGFILE",
            "PG_SWITCH_WAL",
            "PG_CREATE_RESTORE_POINT",
            "PG_WAL_REPLAY_PAUSE",
            "PG_WAL_REPLAY_RESUME",
            "SETVAL",
            "NEXTVAL",
            "SET_CONFIG",
            "PG_CREATE_PHYSICAL_REPLICATION_SLOT",
            "PG_CREATE_LOGICAL_REPLICATION_SLOT",
            "DBLINK_EXEC",
            "PG_STAT_RESET",
            "PG_STAT_STATEMENTS_RESET",
            "PG_FILE_WRITE",
            "LO_IMPORT",
            "LO_EXPORT",
            "PG_ADVISORY_LOCK",
            "PG_REPLICATION_SLOT_ADVANCE",
        ),
        "calls a function that changes server state",
    ),
}
_META_GREEN = frozenset(
    "l list x timing conninfo c connect ? h help q quit echo set unset pset "
    "a t H T f C encoding errverbose watch g gx gset sf sv prompt cd "
    "setenv qecho warn if elif else endif p r s".split()
)
_META_YELLOW = {
    "i": "runs a SQL file",
    "ir": "runs a SQL file",
    "include": "runs a SQL file",
    "include_relative": "runs a SQL file",
    "o": "writes query output to a file",
    "out": "writes query output to a file",
    "w": "writes the query buffer to a file",
    "copy": "copies data between a table and a file",
    "gexec": "runs query results as SQL",
    "e": "opens an editor",
    "ef": "opens an editor",
    "ev": "opens an editor",
    "password": "changes a password",
    "lo_import": "imports a large object",
    "lo_export": "writes a large object",
}


def split_statements(sql: str) -> list[tuple[str, str, bool]]:
    """``(text, skeleton, unterminated)`` per statement; comments and literals blanked."""
    out: list[tuple[str, str, bool]] = []
    skel: list[str] = []
    start, i, n = 0, 0, len(sql)
    broken = False

    def finish(end: int) -> None:
        nonlocal skel, broken
        text, sk = sql[start:end].strip(), "".join(skel).strip()
        if sk:
            out.append((text, sk, broken))
        skel, broken = [], False

    while i < n:
        c = sql[i]
        if c == "\\":  # psql meta-command: runs to the end of the line
            finish(i)
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append((sql[i:j].strip(), sql[i:j].strip(), False))
            start = i = j
        elif c.isspace():
            skel.append(" ")
            i += 1
        elif c == "'":
            j = i + 1
            while True:
                j = sql.find("'", j)
                if j < 0 or sql[j + 1 : j + 2] != "'":
                    break
                j += 2
            broken = broken or j < 0
            skel.append(" '' ")
            i = n if j < 0 else j + 1
        elif c in '"`':
            j = sql.find(c, i + 1)
            broken = broken or j < 0
            skel.append(sql[i:] if j < 0 else sql[i : j + 1])
            i = n if j < 0 else j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            skel.append(" ")
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            broken = broken or j < 0
            skel.append(" ")
            i = n if j < 0 else j + 2
        elif c == "$" and (m := _DOLLAR.match(sql, i)):
            j = sql.find(m.group(), m.end())
            broken = broken or j < 0
            skel.append(" '' ")
            i = n if j < 0 else j + len(m.group())
        elif c == ";":
            finish(i)
            start = i = i + 1
        else:
            m = _PLAIN.match(sql, i)
            piece = m.group() if m else c
            skel.append(piece)
            i += len(piece)
    finish(n)
    return out


def _tokens(skeleton: str) -> list[str]:
    return [t.upper() for t in _TOKEN.findall(skeleton)]


def _where_ok(toks: list[str], start: int) -> Verdict | None:
    """Inspect an UPDATE/DELETE from ``start`` to its end: None when WHERE is missing."""
    depth = 0
    for k in range(start, len(toks)):
        t = toks[k]
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
            if depth < 0:  # end of a CTE body
                return None
        elif t == "WHERE" and depth == 0:
            cond = []
            for t2 in toks[k + 1 :]:
                if t2 in ("RETURNING", "ORDER", "LIMIT", ")"):
                    break
                cond.append(t2)
            if cond in (["TRUE"], ["1"], ["1", "=", "1"], ["0", "=", "0"], ["''", "=", "''"]):
                return (R, "WHERE clause is always true: affects every row", "sql.where_true")
            return (Y, "", "")
    return None


def _dml(toks: list[str], k: int) -> Verdict:
    verb = toks[k]
    if verb in ("INSERT", "MERGE", "REPLACE"):
        return (Y, f"{verb} writes rows", f"sql.{verb.lower()}")
    checked = _where_ok(toks, k + 1)
    if checked is None:
        return (R, f"{verb} without WHERE affects every row", f"sql.{verb.lower()}.no_where")
    if checked[0] is R:
        return checked
    return (Y, f"{verb} with WHERE changes selected rows", f"sql.{verb.lower()}")


def _functions(toks: list[str]) -> Verdict | None:
    found = [(R, _RED_FUNCS[t], f"sql.func.{t.lower()}") for t in toks if t in _RED_FUNCS]
    found += [(Y, _YELLOW_FUNCS[t], f"sql.func.{t.lower()}") for t in toks if t in _YELLOW_FUNCS]
    return max(found, key=lambda v: v[0].rank) if found else None


def _query(toks: list[str]) -> Verdict:
    """SELECT / WITH / VALUES / TABLE, which may still hide writes."""
    writes = [
        _dml(toks, k)
        for k, t in enumerate(toks)
        if t in _DML and k > 0 and toks[k - 1] not in _NOT_DML_BEFORE
    ]
    if "TRUNCATE" in toks or "DROP" in toks:
        writes.append((R, "query contains a destructive statement", "sql.cte.destructive"))
    func = _functions(toks)
    if func:
        writes.append(func)
    if writes:
        return max(writes, key=lambda v: v[0].rank)
    if "INTO" in toks and toks[0] == "SELECT":
        return (Y, "SELECT INTO creates a table", "sql.select_into")
    for k, t in enumerate(toks[:-1]):
        if t == "FOR" and toks[k + 1] in ("UPDATE", "SHARE", "NO", "KEY"):
            return (Y, "SELECT … FOR UPDATE takes row locks", "sql.select_for_update")
    return (G, "query only reads", "sql.select")


def _explain(toks: list[str]) -> Verdict:
    k, analyze = 1, False
    while k < len(toks):
        t = toks[k]
        if t in ("ANALYZE", "ANALYSE"):
            analyze = True
        elif t == "(":
            while k < len(toks) and toks[k] != ")":
                analyze = analyze or toks[k] in ("ANALYZE", "ANALYSE")
                k += 1
        elif t not in ("VERBOSE", ")"):
            break
        k += 1
    if not analyze:
        return (G, "EXPLAIN only plans the statement", "sql.explain")
    inner = _statement(toks[k:])
    if inner[0] is G:
        return (G, "EXPLAIN ANALYZE of a read-only query", "sql.explain")
    return (inner[0], f"EXPLAIN ANALYZE executes it: {inner[1]}", inner[2])


def _copy(toks: list[str]) -> Verdict:
    depth = 0
    top: list[str] = []
    inner: list[str] = []
    for t in toks[1:]:
        depth += (t == "(") - (t == ")")
        (inner if depth > 0 or t == ")" else top).append(t)
    if "FROM" in top:
        return (Y, "COPY … FROM loads rows", "sql.copy_from")
    query = _query(inner[1:-1]) if inner else (G, "", "")
    if query[0] is not G:
        return query
    if "STDOUT" in top and "PROGRAM" not in top:
        return (G, "COPY … TO STDOUT only reads", "sql.copy_to_stdout")
    return (Y, "COPY … TO writes a server file", "sql.copy_to")


def _statement(toks: list[str]) -> Verdict:
    if not toks:
        return (Y, "empty SQL statement", "sql.empty")
    first = toks[0]
    second = toks[1] if len(toks) > 1 else ""
    if first in ("SELECT", "WITH", "VALUES", "TABLE", "("):
        return _query(toks)
    if first == "EXPLAIN":
        return _explain(toks)
    if first in ("UPDATE", "DELETE", "INSERT", "MERGE", "REPLACE"):
        return max((_dml(toks, 0), _functions(toks) or (G, "", "")), key=lambda v: v[0].rank)
    if first in ("DROP", "TRUNCATE"):
        return (R, f"{first} deletes data irreversibly", f"sql.{first.lower()}")
    if first == "ALTER":
        if second == "SYSTEM":
            return (R, "ALTER SYSTEM rewrites server configuration", "sql.alter_system")
        for k, t in enumerate(toks):
            if t == "DROP" and toks[k + 1 : k + 2] not in (["NOT"], ["DEFAULT"], ["IDENTITY"]):
                return (R, "ALTER … DROP removes a column or constraint", "sql.alter.drop")
        return (Y, "ALTER changes a schema object (reversible)", "sql.alter")
    if first == "COPY":
        return _copy(toks)
    if first in ("RESET", "PURGE") and second in ("MASTER", "SLAVE", "REPLICA", "BINARY"):
        return (R, f"{first} {second} discards replication state or logs", "sql.reset_replication")
    if first == "PURGE":
        return (R, "PURGE deletes binary logs", "sql.purge")
    if first == "START" and second == "TRANSACTION":
        return (G, "transaction control", "sql.transaction")
    if first in ("CHECK", "CHECKSUM"):
        return (G, f"{first} TABLE only reads", "sql.check")
    if first == "VACUUM" and "FULL" in toks:
        return (Y, "VACUUM FULL rewrites the table under an exclusive lock", "sql.vacuum_full")
    if first in _GREEN_START:
        return _GREEN_START[first]
    if first in _YELLOW_START:
        return (Y, _YELLOW_START[first], f"sql.{first.lower()}")
    return (Y, f"unrecognised SQL statement ({first.lower()}): not proven read-only", "sql.unknown")


def _meta(text: str, shell: ShellClassifier | None) -> list[PartAssessment]:
    body = text[1:]
    name = body.split(None, 1)[0] if body.strip() else ""
    if name.startswith("!"):
        inner = body[1:].strip()
        if shell is not None and inner:
            return list(shell(inner).parts)
        return [PartAssessment(text, Y, "runs a shell command", "sql.meta.shell")]
    if name in ("G", "g", "gx"):
        # mysql's vertical-output terminator, psql's "run the buffer": the statement is rated.
        return [PartAssessment(text, G, f"\\{name} ends a statement", "sql.meta.terminator")]
    if name == "lo_unlink":
        return [PartAssessment(text, R, "\\lo_unlink deletes a large object", "sql.meta.lo")]
    if name in _META_YELLOW:
        return [PartAssessment(text, Y, f"\\{name} {_META_YELLOW[name]}", f"sql.meta.{name}")]
    if name in _META_GREEN or name.startswith("d") or name.startswith("s"):
        return [PartAssessment(text, G, "psql meta-command only reads", "sql.meta.read")]
    return [PartAssessment(text, Y, "unrecognised psql meta-command", "sql.meta.unknown")]


def _display(text: str) -> str:
    flat = _WS.sub(" ", text)
    return flat if len(flat) <= _DISPLAY_LIMIT else flat[: _DISPLAY_LIMIT - 1] + "…"


def classify(sql: str, shell: ShellClassifier | None = None) -> RiskAssessment:
    """Rate every statement in ``sql``; never raises."""
    parts: list[PartAssessment] = []
    for text, skeleton, broken in split_statements(sql):
        if skeleton.startswith("\\"):
            parts.extend(_meta(skeleton, shell))
            continue
        level, reason, rule = _statement(_tokens(skeleton))
        if broken and level is G:
            level, reason, rule = Y, "unterminated string or comment", "sql.unterminated"
        parts.append(PartAssessment(_display(text), level, reason, rule))
    if not parts:
        parts.append(PartAssessment(sql.strip(), Y, "empty SQL", "sql.empty"))
    return RiskAssessment.of(parts)
