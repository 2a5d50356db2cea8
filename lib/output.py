"""A management command's text written where its user asked: standard output, or a file (the
export commands' `-o FILE`)."""

from __future__ import annotations

from pathlib import Path

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
