"""Small helpers shared by the rules: getopt-style option parsing and path risk."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

# Writing under these is changing the system itself (kernel knobs, config, binaries, devices).
SYSTEM_DIRS = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/var/lib",
)
# Device files that are ordinary sinks, not disks.
HARMLESS_DEVICES = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/stdin", "/dev/zero"}
)


def is_system_path(path: str) -> bool:
    """True for ``/`` and anything under the system directories (harmless devices aside)."""
    if not path.startswith("/"):
        return False
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm == "/":
        return True
    if norm in HARMLESS_DEVICES or norm.startswith("/dev/fd/"):
        return False
    return any(norm == d or norm.startswith(d + "/") for d in SYSTEM_DIRS)


def is_harmless_sink(path: str) -> bool:
    """Writing here discards or displays the data: nothing on disk changes."""
    if not path.startswith("/"):
        return path in ("-", "")
    return (
        path in ("-", "")
        or posixpath.normpath(path) in HARMLESS_DEVICES
        or (path.startswith("/dev/fd/"))
    )


@dataclass
class Parsed:
    opts: list[tuple[str, str | None]] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.opts)

    def values(self, *names: str) -> list[str]:
        return [v for name, v in self.opts if name in names and v is not None]


def parse_opts(
    args: list[str] | tuple[str, ...],
    short_value: str = "",
    long_value: frozenset[str] = frozenset(),
    short_optional: str = "",
    stop_at_positional: bool = False,
) -> Parsed:
    """getopt-like parse. ``short_value`` letters take a value (attached or next word),
    ``short_optional`` letters take only an attached value (``-pSECRET``). With
    ``stop_at_positional`` everything from the first positional on is positional (wrappers)."""
    out = Parsed()
    i, n = 0, len(args)
    while i < n:
        arg = args[i]
        i += 1
        if arg == "--":
            out.positional.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if eq:
                out.opts.append((name, value))
            elif name in long_value and i < n:
                out.opts.append((name, args[i]))
                i += 1
            else:
                out.opts.append((name, None))
            continue
        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                letter = arg[j]
                if letter in short_value:
                    if j + 1 < len(arg):
                        out.opts.append(("-" + letter, arg[j + 1 :]))
                    elif i < n:
                        out.opts.append(("-" + letter, args[i]))
                        i += 1
                    else:
                        out.opts.append(("-" + letter, None))
                    break
                if letter in short_optional:
                    out.opts.append(("-" + letter, arg[j + 1 :] or None))
                    break
                out.opts.append(("-" + letter, None))
                j += 1
            continue
        if stop_at_positional:
            out.positional.extend(args[i - 1 :])
            break
        out.positional.append(arg)
    return out
