"""
Text rules every layer shares: what PostgreSQL can store (`clean_text`, for whatever a customer
or a web page sends) and when two wordings of a question are the same (`wording_key`).
"""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_text(value: str) -> str:
    """What PostgreSQL and UTF-8 can store: NUL bytes dropped, lone surrogates (from JSON like
    "\\ud800") replaced by U+FFFD. Valid text, RTL and emoji included, is returned unchanged."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return _SURROGATES.sub("\ufffd", value)


def wording_key(text: str) -> str:
    """Wordings that differ only in case and spacing are one: the key they share."""
    return " ".join(text.split()).casefold()
