"""A management command's files: its text written where its user asked (standard output, or the
export commands' `-o FILE`), and a JSON file it reads (the eval commands' labelled sets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError


def write_output(command: BaseCommand, text: str, output: str | None) -> None:
    """`text` to the command's standard output, or to the file `output` (UTF-8); a file that
    cannot be written is a CommandError saying why."""
    if not output:
        command.stdout.write(text, ending="")
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None


def read_json(path: str) -> Any:
    """The JSON in the file `path` (UTF-8); a file that cannot be read or is not JSON is a
    CommandError saying why."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}).") from None
