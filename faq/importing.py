"""
Import and export of a shop's FAQ as CSV or JSON.

CSV: a header row with the columns question, answer, alternatives, category, published (only
question and answer are required). Alternatives go one per line inside the cell, or separated by
" | ". Published is yes/no, true/false, 1/0, or empty for yes. Exported cells that a spreadsheet
would read as a formula get a leading `'` (lib/csvcells.py), taken off again on import.

JSON: {"faqs": [{"question", "answer", "alternatives": [...], "category", "published"}]}, the
shape of faq/demo/demo_shop.json, so the demo file imports as it is.

Every row is checked before anything is written. If any row is bad, the import reports all the
bad rows with their line numbers and changes nothing. Entries are matched to existing ones by
question (ignoring case and spacing), updated in place, and embedded together in one batch.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from faq import indexing
from faq.models import FAQEntry, Shop, split_lines
from faq.text import wording_key
from lib import csvcells

FORMATS = ("csv", "json")
COLUMNS = ["question", "answer", "alternatives", "category", "published"]
MAX_QUESTION = FAQEntry._meta.get_field("question").max_length
MAX_CATEGORY = FAQEntry._meta.get_field("category").max_length
MAX_ANSWER = 10_000
MAX_ALTERNATIVE = 300
MAX_ROWS = 20_000
# Deeper JSON than this is refused with its position (Python's parser would hit its recursion
# limit around 1,000 levels); a FAQ file needs 4.
MAX_JSON_DEPTH = 100
# What PostgreSQL text cannot hold: NUL, and UTF-16 surrogates on their own (JSON's "\ud800").
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
TRUE_WORDS = {"", "1", "true", "yes", "y", "on", "published"}
FALSE_WORDS = {"0", "false", "no", "n", "off", "unpublished", "draft"}


@dataclass
class Row:
    line: int
    question: str
    answer: str
    alternatives: list[str]
    category: str
    published: bool


@dataclass
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class ImportFailed(Exception):
    """The file cannot be imported; `errors` lists every problem found, with line numbers."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    entry_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        return text + (f", {self.deleted} deleted" if self.deleted else "")


def guess_format(filename: str) -> str | None:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return suffix if suffix in FORMATS else None


# --- Reading ----------------------------------------------------------------------------------


def _position(text: str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        text = data.removeprefix("\ufeff")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFailed(
                [RowError(0, f"The file is not UTF-8 text (byte {exc.start}); save it as UTF-8.")]
            ) from None
    bad = _UNSTORABLE.search(text)
    if bad:
        line, column = _position(text, bad.start())
        what = "a NUL byte" if bad.group() == "\x00" else "a lone UTF-16 surrogate"
        raise ImportFailed(
            [
                RowError(
                    line,
                    f"character {column} is {what}, which is not text; is this really a CSV or "
                    "JSON file (not a spreadsheet or a binary file)?",
                )
            ]
        )
    return text


def _published(value, line: int, errors: list[RowError]) -> bool:
    if value is None or isinstance(value, bool):
        return True if value is None else value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    errors.append(RowError(line, f"published must be yes or no, not {value!r}"))
    return True


def _check(line: int, raw: dict, errors: list[RowError], alternatives: list[str]) -> Row | None:
    """Validate one row's values; append its problems to `errors`."""
    problems: list[str] = []
    values = {}
    for name in ("question", "answer", "category"):
        value = raw.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            problems.append(f"{name} must be text, not {type(value).__name__}")
            value = ""
        values[name] = value.strip()
    question, answer, category = values["question"], values["answer"], values["category"]
    if not question:
        problems.append("question is missing")
    elif len(question) > MAX_QUESTION:
        problems.append(
            f"question is too long ({len(question)} characters, at most {MAX_QUESTION})"
        )
    if not answer:
        problems.append("answer is missing")
    elif len(answer) > MAX_ANSWER:
        problems.append(f"answer is too long ({len(answer)} characters, at most {MAX_ANSWER})")
    if len(category) > MAX_CATEGORY:
        problems.append(
            f"category is too long ({len(category)} characters, at most {MAX_CATEGORY})"
        )
    for name, value in [*values.items(), *(("alternative phrasing", a) for a in alternatives)]:
        if _UNSTORABLE.search(value):  # from JSON escapes such as "\u0000" or "\ud800"
            problems.append(
                f"{name} contains a NUL character or a lone UTF-16 surrogate (\\u0000, "
                "\\ud800...), which cannot be stored; remove it"
            )
    if len(alternatives) > FAQEntry.MAX_ALTERNATIVES:
        problems.append(
            f"too many alternative phrasings ({len(alternatives)}, at most "
            f"{FAQEntry.MAX_ALTERNATIVES}); keep the ways customers really ask"
        )
    for alt in alternatives[: FAQEntry.MAX_ALTERNATIVES]:
        if len(alt) > MAX_ALTERNATIVE:
            problems.append(
                f"alternative phrasing {alt[:30]!r}... is too long "
                f"({len(alt)} characters, at most {MAX_ALTERNATIVE})"
            )
    before = len(errors)
    published = _published(raw.get("published"), line, errors)
    errors.extend(RowError(line, p) for p in problems)
    if len(errors) > before:
        return None
    return Row(line, question, answer, alternatives, category, published)


def _split_alternatives(cell: str) -> list[str]:
    parts = []
    for line in split_lines(cell):
        parts += [p.strip() for p in line.split(" | ") if p.strip()]
    return list(dict.fromkeys(parts))


def parse_csv(data: bytes | str) -> list[Row]:
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    errors: list[RowError] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFailed([RowError(1, f"not valid CSV ({exc})")]) from None
    if header is None:
        raise ImportFailed([RowError(0, "The file is empty.")])
    header = [h.strip().lower() for h in header]
    missing = [c for c in ("question", "answer") if c not in header]
    unknown = [h for h in header if h and h not in COLUMNS]
    if missing or unknown:
        message = "the header row must name the columns " + ", ".join(COLUMNS)
        if missing:
            message += f"; missing: {', '.join(missing)}"
        if unknown:
            message += f"; unknown: {', '.join(unknown)}"
        raise ImportFailed([RowError(1, message)])
    rows: list[Row] = []
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(start, f"not valid CSV ({exc})"))
            break
        line, start = start, reader.line_num + 1
        cells = [csvcells.restore(c) for c in cells]  # our exports' formula escapes
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            errors.append(
                RowError(line, f"{len(cells)} cells but the header names {len(header)} columns")
            )
            continue
        raw = dict(zip(header, cells, strict=False))
        row = _check(line, raw, errors, _split_alternatives(raw.get("alternatives") or ""))
        if row:
            rows.append(row)
    return _finish(rows, errors)


def _faq_positions(text: str) -> list[int]:
    """The character offset of each object in the "faqs" list (or top-level list), so JSON
    errors can name a line. Walks the document with the standard decoder, key by key."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def array_items(i: int) -> list[int]:
        positions = []
        i = skip(i + 1)
        while i < len(text) and text[i] != "]":
            positions.append(i)
            _, i = decoder.raw_decode(text, i)
            i = skip(i)
            if i < len(text) and text[i] == ",":
                i = skip(i + 1)
        return positions

    i = skip(0)
    if text.startswith("[", i):
        return array_items(i)
    i = skip(i + 1)
    while i < len(text) and text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = skip(skip(i) + 1)  # the colon
        if key == "faqs" and text.startswith("[", i):
            return array_items(i)
        _, i = decoder.raw_decode(text, i)
        i = skip(i)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
    return []


def _too_deep(text: str) -> int | None:
    """The offset where brackets (outside strings) first nest deeper than MAX_JSON_DEPTH."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def parse_json(data: bytes | str) -> list[Row]:
    text = _decode(data)
    deep = _too_deep(text)
    if deep is not None:
        line, column = _position(text, deep)
        raise ImportFailed(
            [
                RowError(
                    line,
                    f"not valid for import: nested more than {MAX_JSON_DEPTH} levels deep at "
                    f"character {column}",
                )
            ]
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            [RowError(exc.lineno, f"not valid JSON ({exc.msg}, character {exc.colno})")]
        ) from None
    except RecursionError:  # a backstop: _too_deep() has caught this already
        raise ImportFailed([RowError(0, "not valid for import: nested too deeply")]) from None
    except ValueError:
        # Python refuses integers of more than 4,300 digits (a guard against slow conversion).
        huge = re.search(r"\d{4000,}", text)
        line, column = _position(text, huge.start()) if huge else (0, 0)
        where = f" at character {column}" if huge else ""
        raise ImportFailed(
            [RowError(line, f"not valid for import: a number of over 4,000 digits{where}")]
        ) from None
    faqs = doc if isinstance(doc, list) else doc.get("faqs") if isinstance(doc, dict) else None
    if not isinstance(faqs, list):
        raise ImportFailed(
            [RowError(1, 'expected {"faqs": [{"question": ..., "answer": ...}, ...]}')]
        )
    positions = _faq_positions(text)
    lines = [text.count("\n", 0, p) + 1 for p in positions]
    errors: list[RowError] = []
    rows: list[Row] = []
    for n, item in enumerate(faqs):
        line = lines[n] if n < len(lines) else 0
        if not isinstance(item, dict):
            errors.append(RowError(line, f"FAQ #{n + 1} is not an object"))
            continue
        # "examples" is what the evaluation sets call alternative phrasings.
        alts = item.get("alternatives", item.get("examples", []))
        if isinstance(alts, str):
            alts = split_lines(alts)
        if not isinstance(alts, list) or not all(isinstance(a, str) for a in alts):
            errors.append(RowError(line, "alternatives must be a list of texts"))
            continue
        alts = list(dict.fromkeys(a.strip() for a in alts if a.strip()))
        row = _check(line, item, errors, alts)
        if row:
            rows.append(row)
    return _finish(rows, errors)


def _finish(rows: list[Row], errors: list[RowError]) -> list[Row]:
    first_line: dict[str, int] = {}
    for row in rows:
        key = wording_key(row.question)
        if key in first_line:
            errors.append(
                RowError(row.line, f"duplicate question (same as line {first_line[key]})")
            )
        else:
            first_line[key] = row.line
    if len(rows) > MAX_ROWS:
        errors.append(RowError(0, f"too many FAQs ({len(rows)}, at most {MAX_ROWS} per file)"))
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.line))
    return rows


def parse(data: bytes | str, fmt: str) -> list[Row]:
    if fmt == "csv":
        return parse_csv(data)
    if fmt == "json":
        return parse_json(data)
    raise ValueError(f"unknown format {fmt!r}; use csv or json")


# --- Writing ----------------------------------------------------------------------------------


def entries_by_question(shop: Shop) -> dict[str, FAQEntry]:
    """The shop's entries by their question's wording key (the oldest of a repeated question):
    how an imported row finds the entry it updates."""
    existing: dict[str, FAQEntry] = {}
    for entry in shop.entries.order_by("pk"):
        existing.setdefault(wording_key(entry.question), entry)
    return existing


def import_rows(shop: Shop, rows: list[Row], replace: bool = False) -> ImportResult:
    """Create or update the shop's entries from validated rows, in one transaction, and embed
    every changed text in one batch after the commit. With `replace`, entries of the shop that
    are not in the rows are deleted."""
    result = ImportResult()
    with indexing.batched(), transaction.atomic():
        existing = entries_by_question(shop)
        to_create: list[FAQEntry] = []
        to_update: list[FAQEntry] = []
        keep: set[int] = set()
        for row in rows:
            values = {
                "question": row.question,
                "answer": row.answer,
                "alternatives": "\n".join(row.alternatives),
                "category": row.category,
                "published": row.published,
            }
            entry = existing.get(wording_key(row.question))
            if entry is None:
                to_create.append(FAQEntry(shop=shop, **values))
                continue
            keep.add(entry.pk)
            if all(getattr(entry, k) == v for k, v in values.items()):
                result.unchanged += 1
                continue
            for name, value in values.items():
                setattr(entry, name, value)
            to_update.append(entry)
        if replace:
            gone = shop.entries.exclude(pk__in=keep)
            result.deleted = gone.count()
            gone.delete()  # vectors go with them (cascade)
        # bulk_create/bulk_update send no post_save, so the re-embedding is asked for here, and
        # batched() turns it into a single refresh after the commit.
        created = FAQEntry.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            now = timezone.now()
            for entry in to_update:
                entry.updated = now
            FAQEntry.objects.bulk_update(
                to_update,
                ["question", "answer", "alternatives", "category", "published", "updated"],
                batch_size=500,
            )
        result.created, result.updated = len(created), len(to_update)
        result.entry_ids = [e.pk for e in created] + [e.pk for e in to_update]
        indexing.refresh_later(result.entry_ids)
    return result


def import_file(shop: Shop, data: bytes | str, fmt: str, replace: bool = False) -> ImportResult:
    return import_rows(shop, parse(data, fmt), replace=replace)


def export_rows(entries) -> list[dict]:
    return [
        {
            "question": e.question,
            "answer": e.answer,
            "alternatives": e.alternative_list,
            "category": e.category,
            "published": e.published,
        }
        for e in entries
    ]


def export_csv(entries) -> str:
    out = io.StringIO()
    writer = csvcells.writer(out)  # no cell a spreadsheet would run as a formula
    writer.writerow(COLUMNS)
    for row in export_rows(entries):
        writer.writerow(
            [
                row["question"],
                row["answer"],
                "\n".join(row["alternatives"]),
                row["category"],
                "yes" if row["published"] else "no",
            ]
        )
    return out.getvalue()


def export_json(entries) -> str:
    return json.dumps({"faqs": export_rows(entries)}, indent=2, ensure_ascii=False) + "\n"


def export(entries, fmt: str) -> str:
    if fmt == "csv":
        return export_csv(entries)
    if fmt == "json":
        return export_json(entries)
    raise ValueError(f"unknown format {fmt!r}; use csv or json")
