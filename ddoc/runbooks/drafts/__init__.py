"""Draft runbooks from what engineers already did: a terminal session, a shell history, a
postmortem, an execution. Each reader returns a `Draft`; `to_markdown` writes it as a runbook
document, stored like any other runbook but in the draft state until someone publishes it."""

from ddoc.runbooks.drafts.document import Draft, DraftStep, DraftVariable, to_markdown, ungrounded

__all__ = ["Draft", "DraftStep", "DraftVariable", "to_markdown", "ungrounded"]
