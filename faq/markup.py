"""
An FAQ answer as HTML: the same small markdown subset the chat widget renders (widget.js's
`markdown()`), so the public FAQ page, its search results, its FAQPage JSON-LD and the HTML
export show links and lists as the chat does.

The subset: **bold**, *italic*, [text](address) and bare http(s) addresses as links (only
absolute http, https, mailto and tel addresses: anything else stays text), "- " / "* " / "• " and
"1. " lines as lists, blank lines between paragraphs, other line breaks as <br>. Everything else
is text, escaped. A library such as markdown-it-py reads far more (headings, code, quotes, "_"
emphasis, images) than the widget shows, so the page would differ from the chat; this mirrors the
widget's 60 lines instead.

The HTML uses only p, br, ul, ol, li, a, strong and em: all within what Google reads in an
FAQPage answer's text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# The widget's INLINE, group for group: bold; italic; a link's text and address; a bare address.
INLINE = re.compile(
    r"\*\*(.+?)\*\*"
    r"|\*([^*\s](?:[^*]*[^*\s])?)\*"
    r"|\[([^\]]+)\]\(([^)\s]+)\)"
    r"|(https?://[^\s<>\"]*[^\s<>\"'.,;:!?)\]])"
)
LIST_ITEM = re.compile(r"^\s*(?:([-*\u2022])|(\d+)[.)])\s+(.*)$")
LINK_SCHEMES = ("http", "https", "mailto", "tel")


def safe_href(address: str) -> str | None:
    """`address` if it is absolute and http, https, mailto or tel (http and https with a host);
    else None."""
    try:
        parts = urlsplit(address)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in LINK_SCHEMES or (scheme.startswith("http") and not parts.netloc):
        return None
    return address


def inline(text: str) -> str:
    """One line's inline markup as HTML, everything else escaped."""
    out, start = [], 0
    for match in INLINE.finditer(text):
        out.append(escape(text[start : match.start()]))
        bold, italic, label, href, bare = match.groups()
        if bold:
            out.append(format_html("<strong>{}</strong>", bold))
        elif italic:
            out.append(format_html("<em>{}</em>", italic))
        else:
            address = safe_href(href or bare)
            if address is None:
                out.append(escape(match.group(0)))
            else:
                out.append(format_html('<a href="{}">{}</a>', address, label or bare))
        start = match.end()
    out.append(escape(text[start:]))
    return "".join(out)


def answer_html(text: str) -> SafeString:
    """`text` (an FAQ answer) as HTML, block by block as the widget renders it."""
    blocks: list[str] = []
    items: list[str] | None = None  # the open list's <li>s
    list_tag = ""
    paragraph: list[str] | None = None  # the open paragraph's lines

    def close() -> None:
        nonlocal items, paragraph
        if items is not None:
            blocks.append(f"<{list_tag}>{''.join(items)}</{list_tag.split()[0]}>")
        if paragraph is not None:
            blocks.append(f"<p>{'<br>'.join(paragraph)}</p>")
        items = paragraph = None

    for line in str(text or "").replace("\r\n", "\n").split("\n"):
        item = LIST_ITEM.match(line)
        if item:
            bullet, number, rest = item.groups()
            tag = "ul" if bullet else "ol"
            if items is None or list_tag.split()[0] != tag:
                close()
                items = []
                list_tag = tag if bullet or number == "1" else f'ol start="{int(number)}"'
            items.append(f"<li>{inline(rest)}</li>")
        elif not line.strip():
            close()
        else:
            if items is not None:
                close()
            if paragraph is None:
                paragraph = []
            paragraph.append(inline(line))
    close()
    return mark_safe("".join(blocks))
