"""Conversion of untrusted text and LLM-written Markdown to Slack mrkdwn.

Everything here is pure (no I/O). Three public functions:

* :func:`escape` makes arbitrary text inert in mrkdwn (no mentions, no links).
* :func:`markdown_to_mrkdwn` renders CommonMark + GFM tables/strikethrough as mrkdwn.
* :func:`split_mrkdwn` cuts mrkdwn into chunks that fit Slack's section-text limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

__all__ = ["escape", "markdown_to_mrkdwn", "split_mrkdwn"]

ZWSP = "\u200b"
HR = "———"
FENCE = "```"

_BROADCAST_RE = re.compile(r"@(channel|here|everyone)", re.IGNORECASE)
_BACKTICK_RUN_RE = re.compile(r"`(?=`)")
_SAFE_SCHEME_RE = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)
# Characters that may not appear inside Slack's <...> link syntax, plus anything that
# would be ambiguous or invisible there (whitespace, controls, quotes, braces).
_URL_UNSAFE_RE = re.compile(r"[\s|<>\"`{}\\^\x00-\x1f\x7f]")
_ENTITIES = ("&amp;", "&lt;", "&gt;")


# --------------------------------------------------------------------------- escaping


def _escape_code(text: str) -> str:
    """Slack's mandatory escaping only (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape(text: str) -> str:
    """Make untrusted ``text`` inert in Slack mrkdwn.

    ``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;`` (Slack's documented
    escaping), so ``<!channel>``, ``<@U123>``, ``<#C1>``, ``<!subteam^S1>`` and
    ``<https://x|label>`` show as plain text. The words ``@channel``, ``@here`` and
    ``@everyone`` (any case, anywhere, including inside longer words) get a zero-width
    space after the ``@`` so no Slack surface auto-parses them as broadcasts.

    Not idempotent: escaping twice turns ``&amp;`` into ``&amp;amp;`` (Slack would then show
    ``&amp;``). The broadcast defusing alone is idempotent (``@\\u200bhere`` is not matched
    again). Escape exactly once, at the point where text enters mrkdwn.
    """
    return _BROADCAST_RE.sub("@" + ZWSP + r"\1", _escape_code(text))


def _defuse_fences(text: str) -> str:
    """Break runs of backticks so text can never open or close a Slack code block."""
    return _BACKTICK_RUN_RE.sub("`" + ZWSP, text)


def _escape_text(text: str) -> str:
    return _defuse_fences(escape(text))


def _escape_code_content(text: str) -> str:
    return _defuse_fences(_escape_code(text))


# --------------------------------------------------------------------------- links


def _is_safe_url(href: str) -> bool:
    return bool(_SAFE_SCHEME_RE.match(href))


def _percent_encode(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def _slack_url(href: str) -> str:
    """``href`` made safe to place between ``<`` and ``>`` in mrkdwn."""
    return _URL_UNSAFE_RE.sub(_percent_encode, href).replace("&", "&amp;")


def _same_target(label: str, href: str) -> bool:
    label = label.strip()
    if not label:
        return True
    decoded = unquote(href)
    candidates = {href, decoded, href.removeprefix("mailto:"), decoded.removeprefix("mailto:")}
    return label in candidates


def _format_link(label: str, label_plain: str, href: str, *, plain: bool) -> str:
    """``label (<url>)`` or ``<url>``; unsafe schemes and ``plain`` mode give text only.

    In ``plain`` mode nothing is escaped (the caller escapes the whole result).
    """
    if plain:
        target = href
    elif _is_safe_url(href):
        target = f"<{_slack_url(href)}>"
    else:
        target = _escape_text(href)
    if _same_target(label_plain, href):
        return target
    return f"{label} ({target})"


def _plain(node: SyntaxTreeNode, *, urls: bool = False) -> str:
    """Unescaped plain text of an inline subtree (links as ``label (url)`` if ``urls``)."""
    if node.type in ("text", "code_inline", "html_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    inner = "".join(_plain(child, urls=urls) for child in node.children)
    if urls and node.type in ("link", "image"):
        return _format_link(inner, inner, _href(node), plain=True)
    return inner


def _href(node: SyntaxTreeNode) -> str:
    value = node.attrs.get("href" if node.type == "link" else "src", "")
    return str(value)


# --------------------------------------------------------------------------- tables


def _display_width(text: str) -> int:
    width = 0
    for char in text:
        if unicodedata.combining(char) or char == ZWSP:
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, align: str) -> str:
    missing = max(0, width - _display_width(text))
    if align == "right":
        return " " * missing + text
    if align == "center":
        left = missing // 2
        return " " * left + text + " " * (missing - left)
    return text + " " * missing


def _cell_align(cell: SyntaxTreeNode) -> str:
    style = str(cell.attrs.get("style", ""))
    return style.removeprefix("text-align:") if style.startswith("text-align:") else "left"


def _render_table(node: SyntaxTreeNode) -> str:
    rows: list[list[str]] = []
    aligns: list[str] = []
    for section in node.children:
        for row in section.children:
            rows.append([_plain(cell, urls=True).strip() for cell in row.children])
            if not aligns:
                aligns = [_cell_align(cell) for cell in row.children]
    if not rows:
        return ""
    ncols = max(len(row) for row in rows)
    aligns += ["left"] * (ncols - len(aligns))
    rows = [row + [""] * (ncols - len(row)) for row in rows]
    widths = [max(_display_width(row[col]) for row in rows) for col in range(ncols)]

    def line(row: list[str]) -> str:
        return " | ".join(_pad(cell, widths[i], aligns[i]) for i, cell in enumerate(row))

    lines = [line(rows[0]), "-+-".join("-" * width for width in widths)]
    lines += [line(row) for row in rows[1:]]
    body = "\n".join(text.rstrip() for text in lines)
    return f"{FENCE}\n{_escape_code_content(body)}\n{FENCE}"


# --------------------------------------------------------------------------- renderer


def _code_fence(content: str) -> str:
    body = _escape_code_content(content.rstrip("\n"))
    return f"{FENCE}\n{body}\n{FENCE}" if body else f"{FENCE}\n{FENCE}"


def _prefix_lines(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0]] + [rest + line if line else "" for line in lines[1:]])


class _Renderer:
    """Walks a markdown-it syntax tree and emits mrkdwn; one instance per document."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_bold = False
        self._handlers: dict[str, Callable[[SyntaxTreeNode], str]] = {
            "root": self._root,
            "paragraph": self._children,
            "inline": self._children,
            "heading": self._heading,
            "blockquote": self._blockquote,
            "bullet_list": self._list,
            "ordered_list": self._list,
            "fence": lambda node: _code_fence(node.content),
            "code_block": lambda node: _code_fence(node.content),
            "hr": lambda node: HR,
            "html_block": lambda node: _escape_text(node.content.rstrip("\n")),
            "table": _render_table,
            "text": lambda node: _escape_text(node.content),
            "html_inline": lambda node: _escape_text(node.content),
            "softbreak": lambda node: "\n",
            "hardbreak": lambda node: "\n",
            "code_inline": self._code_inline,
            "strong": self._strong,
            "em": lambda node: self._wrap(node, "_"),
            "s": lambda node: self._wrap(node, "~"),
            "link": self._link,
            "image": self._link,
        }

    def render(self, node: SyntaxTreeNode) -> str:
        handler = self._handlers.get(node.type, self._fallback)
        return handler(node)

    def _fallback(self, node: SyntaxTreeNode) -> str:
        if node.children:
            return self._children(node)
        return _escape_text(node.content)

    def _children(self, node: SyntaxTreeNode) -> str:
        return "".join(self.render(child) for child in node.children)

    def _blocks(self, node: SyntaxTreeNode, separator: str) -> str:
        parts = (self.render(child) for child in node.children)
        return separator.join(part for part in parts if part.strip())

    def _root(self, node: SyntaxTreeNode) -> str:
        return self._blocks(node, "\n\n")

    def _heading(self, node: SyntaxTreeNode) -> str:
        self._in_bold = True
        try:
            text = self._children(node)
        finally:
            self._in_bold = False
        return "\n".join(f"*{line.strip()}*" for line in text.split("\n") if line.strip())

    def _blockquote(self, node: SyntaxTreeNode) -> str:
        text = self._blocks(node, "\n")
        return "\n".join(f"> {line}" for line in text.split("\n") if line.strip())

    def _list(self, node: SyntaxTreeNode) -> str:
        depth = self._depth
        ordered = node.type == "ordered_list"
        start = int(str(node.attrs.get("start", 1))) if ordered else 1
        bullet = "•" if depth == 0 else "◦"
        self._depth += 1
        try:
            items = [
                self._item(item, f"{start + index}." if ordered else bullet, depth)
                for index, item in enumerate(node.children)
            ]
        finally:
            self._depth = depth
        return "\n".join(items)

    def _item(self, item: SyntaxTreeNode, marker: str, depth: int) -> str:
        indent = "    " * depth
        hanging = indent + " " * (len(marker) + 1)
        parts: list[str] = []
        for child in item.children:
            text = self.render(child)
            if not text.strip():
                continue
            if child.type in ("bullet_list", "ordered_list", "fence", "code_block", "table"):
                parts.append(text)
            else:
                parts.append(_prefix_lines(text, hanging if parts else "", hanging))
        if not parts or parts[0].startswith(" "):
            parts.insert(0, "")
        return f"{indent}{marker} {parts[0]}" + "".join("\n" + part for part in parts[1:])

    def _wrap(self, node: SyntaxTreeNode, mark: str) -> str:
        inner = self._children(node)
        return f"{mark}{inner}{mark}" if inner.strip() else inner

    def _strong(self, node: SyntaxTreeNode) -> str:
        if self._in_bold:
            return self._children(node)
        self._in_bold = True
        try:
            return self._wrap(node, "*")
        finally:
            self._in_bold = False

    def _code_inline(self, node: SyntaxTreeNode) -> str:
        content = _escape_code_content(node.content)
        return f"`{content}`" if content.strip() else content

    def _link(self, node: SyntaxTreeNode) -> str:
        label = self._children(node)
        return _format_link(label, _plain(node), _href(node), plain=False)


# html off: raw HTML (and Slack markup such as <!here>) is plain text, escaped like any text.
_MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def markdown_to_mrkdwn(markdown: str) -> str:
    """Render LLM-written Markdown (CommonMark + GFM tables/strikethrough) as Slack mrkdwn.

    All literal text is passed through :func:`escape`, so the result never contains a
    Slack mention, broadcast or special link that came from the input. Links appear as
    ``label (<url>)`` (or ``<url>`` when the label is the URL) and only for ``http``,
    ``https`` and ``mailto`` targets; other schemes are shown as plain text. Tables
    become aligned code blocks. The output has no trailing whitespace on any line.
    """
    tree = SyntaxTreeNode(_MD.parse(markdown))
    text = _Renderer().render(tree)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


# --------------------------------------------------------------------------- splitting

_OPEN = FENCE + "\n"
_CLOSE = "\n" + FENCE
_MIN_LIMIT = 16
_SEPARATORS = ("\n\n", "\n", " ")


def _ends_in_code(text: str, in_code: bool) -> bool:
    return in_code != (text.count(FENCE) % 2 == 1)


def _entity_safe_cut(text: str, cut: int) -> int:
    """Move ``cut`` back so it does not fall inside ``&amp;``, ``&lt;`` or ``&gt;``."""
    amp = text.rfind("&", max(0, cut - 4), cut)
    if amp == -1:
        return cut
    for entity in _ENTITIES:
        if text.startswith(entity, amp) and amp + len(entity) > cut:
            return amp
    return cut


def _find_cut(text: str, budget: int) -> tuple[int, int]:
    """Return ``(cut, skip)``: keep ``text[:cut]``, drop ``skip`` separator characters."""
    for separator in _SEPARATORS:
        index = text.rfind(separator, 0, budget + len(separator))
        if index >= budget // 2:
            return index, len(separator)
    return _entity_safe_cut(text, budget), 0


def _take(text: str, budget: int, in_code: bool) -> tuple[str, str, bool]:
    """Cut one piece of at most ``budget`` characters (closing fence included).

    Returns the piece, the remaining text, and whether the remainder starts inside a code
    block (so the next chunk must reopen the fence).
    """
    cut, skip = _find_cut(text, budget)
    if not _ends_in_code(text[:cut], in_code):
        return text[:cut], text[cut + skip :].lstrip("\n"), False
    cut, skip = _find_cut(text, budget - len(_CLOSE))
    piece, rest = text[:cut], text[cut + skip :]
    if not _ends_in_code(piece, in_code):
        return piece, rest.lstrip("\n"), False
    last_newline = piece.rfind("\n")
    if last_newline > 0 and piece[last_newline + 1 :] == FENCE:
        # The piece would end with a bare opening fence: move that fence to the next chunk.
        return piece[:last_newline], text[last_newline + 1 :], False
    if rest.startswith(FENCE):
        # The original closing fence comes next: our added fence replaces it.
        return piece + _CLOSE, rest[len(FENCE) :].lstrip("\n"), False
    return piece + _CLOSE, rest, True


def split_mrkdwn(text: str, limit: int = 3000) -> list[str]:
    """Split mrkdwn ``text`` into chunks of at most ``limit`` characters each.

    Cuts prefer paragraph boundaries (blank lines), then line breaks, then spaces, and
    only then a hard cut, which never falls inside ``&amp;``, ``&lt;`` or ``&gt;``. The
    boundary character(s) at a cut are dropped. When a cut falls inside a ````` code
    block, the chunk gets a closing fence and the next chunk reopens it; these added
    fences count toward ``limit``. Empty or whitespace-only input gives ``[]``.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}")
    chunks: list[str] = []
    rest = text.strip("\n")
    in_code = False
    while rest:
        prefix = _OPEN if in_code else ""
        if len(prefix) + len(rest) <= limit:
            chunks.append(prefix + rest)
            break
        piece, rest, in_code = _take(rest, limit - len(prefix), in_code)
        chunks.append(prefix + piece)
    return [chunk for chunk in chunks if chunk.strip()]
