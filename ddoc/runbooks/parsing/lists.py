"""What a list item says: its head, text, commands and extent, and whether it is an instruction.

Also the two ways a list attaches to what precedes it: a "things to check:" paragraph over
a list of non-instructions becomes one manual step (``checklist``), and a code block that
ends a list in CommonMark belongs to the last item when that item introduces it
(``item_wants_code``). The walk over items (which item becomes which steps) is in steps.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ddoc.runbooks.model import StepKind
from ddoc.runbooks.parsing import lexicon as lx
from ddoc.runbooks.parsing.build_state import BuildState
from ddoc.runbooks.parsing.commands import block_kind
from ddoc.runbooks.parsing.decisions import decision_specs
from ddoc.runbooks.parsing.nodes import (
    CodeBlock,
    Heading,
    Inline,
    ListBlock,
    ListItem,
    Node,
    Paragraph,
    Table,
)
from ddoc.runbooks.parsing.sentences import split_sentences

_CONTEXT_CODE_LIMIT = 2000
_CHECKLIST_INTRO = re.compile(
    r"\b(?:check|verify|ensure|confirm|look|inspect|investigate|things|steps|make sure"
    r"|possible (?:causes|reasons))\b",
    re.I,
)
_INTRO_WORDS = re.compile(r"\b(?:run|running|execute|executing|following|below|command)\b", re.I)


def checklist(state: BuildState, inline: Inline, lst: ListBlock) -> bool:
    """A "things to check:" paragraph over a list of non-instructions: one manual step."""
    text = inline.render()
    if not text.endswith(":") or state.role not in (lx.DIAGNOSIS, lx.ACTION):
        return False
    if not (_CHECKLIST_INTRO.search(text) or lx.is_imperative(text)):
        return False
    sentences = split_sentences(inline.segs)
    if any(s.commands for s in sentences):
        return False
    if lst.ordered or any(has_command(it, deep=True) for it in lst.items):
        return False
    # A stray verb-first item ("read only filesystem") does not make it a procedure.
    if 3 * sum(item_actionable(it) for it in lst.items) > len(lst.items):
        return False
    lines = [text] + [f"- {item_text(it)}" for it in lst.items]
    end = max(it.end for it in lst.items) if lst.items else inline.end
    state.add(StepKind.MANUAL, "\n".join(lines), inline.start, end)
    return True


def item_wants_code(role: str, lst: ListBlock, code: CodeBlock) -> bool:
    """ "- Back up the data bag by executing" + a fence at column 0: the code is the item's."""
    if not lst.items or role in (lx.INFO, lx.REFS):
        return False
    last = lst.items[-1]
    first = head(last)
    if first is None or any(isinstance(n, CodeBlock | ListBlock) for n in last.body):
        return False
    if has_command(last, deep=False):
        return False
    text = first.render()
    if block_kind(code.info, code.lines, text) == "none":
        return False
    return (
        text.rstrip().endswith(":") or bool(_INTRO_WORDS.search(text)) or (lx.is_imperative(text))
    )


def item_actionable(item: ListItem, deep: bool = True) -> bool:
    """The item holds a command, or its first sentence is an instruction, an escalation or
    an actionable condition."""
    if has_command(item, deep=deep):
        return True
    first_para = head(item)
    if first_para is None:
        return False
    sentences = split_sentences(first_para.segs)
    if not sentences:
        return False
    first = sentences[0].text
    if lx.is_imperative(first) or lx.ESCALATE.search(first):
        return True
    return bool(lx.COND_START.match(first) and decision_specs(sentences[0]))


def head(item: ListItem) -> Inline | None:
    """The item's first paragraph, when it starts with one."""
    first = item.body[0] if item.body else None
    return first.inline if isinstance(first, Paragraph) else None


def item_text(item: ListItem, depth: int = 0) -> str:
    """The item's paragraphs, then its nested items as an indented "- " list."""
    parts: list[str] = []
    for node in item.body:
        if isinstance(node, Paragraph):
            parts.append(node.inline.render())
    text = " ".join(p for p in parts if p)
    for node in item.body:
        if isinstance(node, ListBlock):
            for child in node.items:
                text += "\n" + "  " * (depth + 1) + "- " + item_text(child, depth + 1)
    return text.strip()


def link_only(inline: Inline) -> bool:
    """A table-of-contents style item: nothing but link text."""
    return any(s.href is not None for s in inline.segs) and all(
        s.href is not None or not s.value.strip() for s in inline.segs
    )


def code_only(inline: Inline) -> bool:
    return all(s.kind == "code" or not s.value.strip(" .:;,") for s in inline.segs)


def has_command(item: ListItem, deep: bool) -> bool:
    """A command in the item's prose or code blocks (``deep``: or in its nested items)."""
    for node in item.body:
        if isinstance(node, Paragraph):
            if any(s.commands for s in split_sentences(node.inline.segs)):
                return True
        elif isinstance(node, CodeBlock):
            if block_kind(node.info, node.lines) == "command":
                return True
        elif (
            isinstance(node, ListBlock)
            and deep
            and any(has_command(child, deep) for child in node.items)
        ):
            return True
    return False


def context_blocks(nodes: Sequence[Node]) -> str:
    """The config or code blocks among ``nodes``, fenced, to append to a manual step."""
    extra = ""
    for node in nodes:
        if isinstance(node, CodeBlock) and block_kind(node.info, node.lines) == "context":
            extra += "\n" + fenced(node)
    return extra


def fenced(code: CodeBlock) -> str:
    """A block of config or code as a manual step shows it: fenced, bounded."""
    body = "\n".join(code.lines)
    if len(body) > _CONTEXT_CODE_LIMIT:
        body = body[:_CONTEXT_CODE_LIMIT] + "\n…"
    fence = "````" if "```" in body else "```"
    return f"{fence}{code.info}\n{body}\n{fence}"


def node_end(node: Node) -> int:
    """The last source line of a node."""
    if isinstance(node, Paragraph):
        return node.inline.end
    if isinstance(node, Heading):
        return node.inline.end
    if isinstance(node, CodeBlock):
        return node.start + max(0, len(node.lines) - 1) + (1 if node.fenced else 0)
    if isinstance(node, ListBlock):
        return max((i.end for i in node.items), default=0)
    if isinstance(node, Table):
        return max((r.line for r in node.rows), default=0)
    return 0
