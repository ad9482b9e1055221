"""HTTP clients (curl, wget, httpie): GET is read-only, other methods change remote state,
and saving the response writes a file."""

from __future__ import annotations

from ddoc.runbooks.model import RiskClass
from ddoc.runbooks.risk.options import is_harmless_sink, is_system_path, parse_opts
from ddoc.runbooks.risk.wrappers import Final, Step, Steps, Unwrapper

G, Y, R = RiskClass.GREEN, RiskClass.YELLOW, RiskClass.RED

_HTTP_METHODS = frozenset("GET HEAD OPTIONS POST PUT PATCH DELETE".split())
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def output(path: str, tool: str) -> Final | None:
    """Risk of a tool writing its output to ``path``."""
    if is_harmless_sink(path):
        return None
    if is_system_path(path):
        return Final(R, f"{tool} writes to a system path ({path})", f"{tool}.output.system")
    return Final(Y, f"{tool} writes a file", f"{tool}.output")


def _curl(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "XdFTouHAebcmwxrKEyYzUQCt",
        frozenset(
            {
                "--request",
                "--data",
                "--data-raw",
                "--data-binary",
                "--data-urlencode",
                "--data-ascii",
                "--json",
                "--form",
                "--form-string",
                "--upload-file",
                "--output",
                "--header",
                "--user",
                "--user-agent",
                "--referer",
                "--cookie",
                "--cookie-jar",
                "--max-time",
                "--connect-timeout",
                "--write-out",
                "--proxy",
                "--range",
                "--config",
                "--cert",
                "--key",
                "--cacert",
                "--retry",
                "--retry-delay",
                "--resolve",
                "--url",
                "--unix-socket",
                "--interface",
                "--limit-rate",
                "--output-dir",
                "--variable",
                "--oauth2-bearer",
                "--aws-sigv4",
                "--quote",
            }
        ),
    )
    methods = [m.upper() for m in p.values("-X", "--request")]
    sends = p.has(
        "-d",
        "--data",
        "--data-raw",
        "--data-binary",
        "--data-urlencode",
        "--data-ascii",
        "--json",
        "-F",
        "--form",
        "--form-string",
        "-T",
        "--upload-file",
    ) and not p.has("-G", "--get")
    steps: list[Step] = []
    method = methods[-1] if methods else ("POST" if sends else "GET")
    if method == "DELETE":
        steps.append(Final(R, "HTTP DELETE removes a remote resource", "curl.delete"))
    elif method not in _READ_METHODS or sends:
        steps.append(Final(Y, f"HTTP {method} changes remote state", "curl.write"))
    if p.has("-O", "--remote-name", "--remote-name-all"):
        steps.append(Final(Y, "curl -O writes a file", "curl.output"))
    steps.extend(
        s
        for o in p.values("-o", "--output", "-c", "--cookie-jar")
        if (s := output(o, "curl")) is not None
    )
    if p.has("-K", "--config", "-Q", "--quote"):
        steps.append(Final(Y, "curl reads extra options we cannot see", "curl.config"))
    return steps or [Final(G, "HTTP GET only reads", "curl.get")]


def _wget(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(
        words[1:],
        "OoaPtTwUeDQARlIXBi",
        frozenset(
            {
                "--output-document",
                "--output-file",
                "--append-output",
                "--directory-prefix",
                "--tries",
                "--timeout",
                "--wait",
                "--user-agent",
                "--header",
                "--post-data",
                "--post-file",
                "--method",
                "--body-data",
                "--body-file",
                "--user",
                "--password",
                "--input-file",
                "--execute",
            }
        ),
    )
    steps: list[Step] = []
    method = (p.values("--method") or ["GET"])[-1].upper()
    if method == "DELETE":
        steps.append(Final(R, "HTTP DELETE removes a remote resource", "wget.delete"))
    elif method not in _READ_METHODS or p.has(
        "--post-data", "--post-file", "--body-data", "--body-file"
    ):
        steps.append(Final(Y, "wget sends a state-changing HTTP request", "wget.write"))
    docs = p.values("-O", "--output-document")
    if docs:
        steps.extend(s for d in docs if (s := output(d, "wget")) is not None)
    elif not p.has("--spider"):
        steps.append(Final(Y, "wget saves the download to a file", "wget.output"))
    steps.extend(
        s
        for o in p.values("-o", "--output-file", "-a", "--append-output")
        if (s := output(o, "wget")) is not None
    )
    return steps or [Final(G, "HTTP GET to stdout only reads", "wget.get")]


def _httpie(words: tuple[str, ...], stdin: str | None, loose: bool) -> Steps:
    p = parse_opts(words[1:], "aAo", frozenset({"--auth", "--auth-type", "--output"}))
    pos = p.positional
    method = pos[0].upper() if pos and pos[0].upper() in _HTTP_METHODS else ""
    items = pos[2:] if method else pos[1:]
    sends = any(":=" in i or "@" in i or ("=" in i and "==" not in i) for i in items)
    method = method or ("POST" if sends else "GET")
    steps: list[Step] = []
    if method == "DELETE":
        steps.append(Final(R, "HTTP DELETE removes a remote resource", "http.delete"))
    elif method not in _READ_METHODS or sends:
        steps.append(Final(Y, f"HTTP {method} changes remote state", "http.write"))
    if p.has("-d", "--download"):
        steps.append(Final(Y, "http --download writes a file", "http.output"))
    steps.extend(s for o in p.values("-o", "--output") if (s := output(o, "http")) is not None)
    return steps or [Final(G, "HTTP GET only reads", "http.get")]


HTTP_HANDLERS: dict[str, Unwrapper] = {
    "curl": _curl,
    "wget": _wget,
    "http": _httpie,
    "https": _httpie,
}
