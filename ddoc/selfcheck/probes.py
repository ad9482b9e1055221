"""What the agent is sent for one runbook: per command step, the programs to look for and what
may run, decided here from the risk classifier (docs/decisions/0018-self-checks.md).

- A step runs its command only when it is read-only twice over: as stored with its version and
  as the tenant's rules classify it now (a tenant rule may have changed since), and only when
  the tenant allows it (`run_read_only`).
- Any other step (yellow, red, unknown) never runs: its dry-run form runs instead when one is
  known (ddoc/contracts/dryrun.py; the agent derives it again and refuses a mismatch), else only
  its programs are looked for.
- A step whose variables have no value to check with (the tenant's `self_check.values`, the
  runbook's own label selector) runs nothing and says so (an informational finding).
"""

from __future__ import annotations

from collections.abc import Mapping

from ddoc.contracts.dryrun import dry_run_form
from ddoc.contracts.execution import AlertContext, VariableSpec
from ddoc.contracts.render import render_command, resolve_values
from ddoc.contracts.selfcheck import (
    Finding,
    FindingKind,
    ProbeRun,
    RunbookProbe,
    SelfCheckTarget,
    StepProbe,
)
from ddoc.runbooks.model import ParsedRunbook, RiskClass, Step, StepKind
from ddoc.runbooks.parsing.build_state import Classifier
from ddoc.runbooks.parsing.parser import default_classifier
from ddoc.runbooks.parsing.variables import mask_placeholders
from ddoc.runbooks.risk import RuleSet
from ddoc.runbooks.risk.shell import split_commands

# Code in these languages is not a shell command line: no programs to look for, nothing to run.
_NOT_SHELL = frozenset({"sql", "redis"})
# Shell builtins and keywords: never looked up on the PATH (bash runs its own first).
_BUILTINS = frozenset(
    """alias bg bind break builtin caller cd command compgen complete compopt continue declare
    dirs disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill
    let local logout mapfile popd printf pushd pwd read readarray readonly return set shift shopt
    source suspend test time times trap true type typeset ulimit umask unalias unset wait [ [[ ]]
    . : { } ! if then else elif fi case esac for select while until do done function in""".split()
)
# Programs that run another one: looked up themselves, then the program they run. Each maps to
# its options that take a value (so the value is not taken for the program).
_WRAPPERS: Mapping[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-p", "-C", "-D", "-h", "-r", "-t", "-U", "--user", "--group"}),
    "env": frozenset({"-u", "-C", "-S", "--unset", "--chdir", "--split-string"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "nohup": frozenset(),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "ionice": frozenset({"-c", "-n", "-p", "--class", "--classdata"}),
}
# A word the shell or a human fills in at run time: not a program name we can look for.
_UNKNOWABLE = ("$", "{{", "<", ">", "`", "*", "?", "[")


def target(
    parsed: ParsedRunbook,
    *,
    run_id: str,
    runbook_id: str,
    version: int,
    values: Mapping[str, str],
    rules: RuleSet | None,
    run_read_only: bool,
    timeout_seconds: int,
) -> SelfCheckTarget:
    """One runbook's probe, and the control plane's own findings about it."""
    specs = [
        VariableSpec(name=v.name, syntax=v.syntax, source=v.source.value, key=v.key)
        for v in parsed.variables
    ]
    # The runbook's label selector says what its alerts carry: values to check with.
    selector = AlertContext(
        title=parsed.title, source="self-check", dedup_key="", labels=dict(parsed.triggers.labels)
    )
    given = {k.lower(): v for k, v in values.items()}
    by_name = {s.name: s for s in specs}
    resolved = resolve_values(
        specs, selector, {name: given[name.lower()] for name in by_name if name.lower() in given}
    )
    classify = default_classifier(rules)
    probe = RunbookProbe(
        run_id=run_id, runbook_id=runbook_id, version=version, timeout_seconds=timeout_seconds
    )
    findings: list[Finding] = []
    for step in parsed.steps:
        if step.kind != StepKind.COMMAND or not step.command:
            continue
        rendered = render_command(step.command, specs, resolved)
        for name in rendered.missing:
            shown = by_name[name].syntax if name in by_name else name
            findings.append(
                Finding(
                    FindingKind.VARIABLE_UNRESOLVED.value,
                    f"variable {shown} has no value to check with (set self_check.values."
                    f"{name}, or a label selector on the runbook)",
                    step.id,
                )
            )
        shell = (step.language or "shell") not in _NOT_SHELL
        run = (
            _run(step, rendered.command, classify)
            if shell and run_read_only and not rendered.missing
            else ProbeRun.NONE
        )
        probe.steps.append(
            StepProbe(
                step_id=step.id,
                command=rendered.command,
                programs=programs(rendered.command) if shell else [],
                run=run.value,
                dry_run_command=dry_run_form(rendered.command) if run is ProbeRun.DRY_RUN else None,
                env=rendered.env,
            )
        )
    return SelfCheckTarget(
        runbook_id=runbook_id, version=version, title=parsed.title, probe=probe, findings=findings
    )


def _run(step: Step, command: str, classify: Classifier) -> ProbeRun:
    """What of a complete step may run, when the tenant lets read-only steps run."""
    now, _ = classify(command, step.language)
    if step.risk == RiskClass.GREEN and now == RiskClass.GREEN:
        return ProbeRun.COMMAND
    if dry_run_form(command) is not None:
        return ProbeRun.DRY_RUN
    return ProbeRun.NONE


def programs(command: str) -> list[str]:
    """The programs a command line runs on the agent, in order, each once: the first word of
    every simple command (inside `$( … )` too), through wrappers such as `sudo` and `env`.
    Builtins, words filled in at run time and relative paths are left out (nothing to look up)."""
    found: list[str] = []
    # A blank a human fills in (`<service>-ctl`, `{{ tool }}`) is read as a word we cannot know,
    # not as a redirection: the same masking the classifier does, to a `$` word.
    masked = mask_placeholders(command, lambda _: "$_")
    for simple in split_commands(masked):
        words = list(simple.words)
        while words:
            while words and _is_assignment(words[0]):
                words = words[1:]
            if not words:
                break
            name = words[0]
            if not _knowable(name) or name in _BUILTINS:
                break
            found.append(name)
            takes_value = _WRAPPERS.get(name.rsplit("/", 1)[-1])
            if takes_value is None:
                break
            words = _after_options(words[1:], takes_value, duration=name.endswith("timeout"))
    return list(dict.fromkeys(found))


def _after_options(words: list[str], takes_value: frozenset[str], *, duration: bool) -> list[str]:
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "--":
        i += 2 if words[i] in takes_value else 1
    if i < len(words) and words[i] == "--":
        i += 1
    if duration and i < len(words):
        i += 1  # timeout's DURATION
    return words[i:]


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier()


def _knowable(word: str) -> bool:
    if not word or any(mark in word for mark in _UNKNOWABLE):
        return False
    # A relative path (`./fix.sh`, `bin/tool`) depends on the directory it runs in.
    return "/" not in word or word.startswith("/")
