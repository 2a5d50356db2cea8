"""Every customer-facing string in every language the chat offers, checked as a developer adding a
text would meet it: Django's `makemessages` run afresh on a copy of the tracked tree (so a string
marked for translation in the code but missing from the .po files shows up), then gettext's own
tools list what is untranslated or fuzzy. The same check as the before-stop hook; docs/languages.md
says how to fix what it names. Needs gettext's tools (xgettext, msgmerge, msgattrib, msgfmt)."""

from __future__ import annotations

import gettext
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = [code for code, _ in settings.LANGUAGES if code != settings.LANGUAGE_CODE[:2]]
# Not shipped to customers: their strings are never shown to one.
NOT_EXTRACTED = ("tests", "bench")


def require_gettext() -> None:
    """Skipped without gettext's tools, or failed with SHOPBOT_REQUIRE_GETTEXT=1 (CI: a missing
    tool must not pass as a skip)."""
    missing = [t for t in ("xgettext", "msgmerge", "msgattrib", "msgfmt") if not shutil.which(t)]
    if missing:
        message = f"No {', '.join(missing)}: run `apt-get install gettext` to check translations"
        if os.environ.get("SHOPBOT_REQUIRE_GETTEXT") == "1":
            pytest.fail(message)
        pytest.skip(message)


def copy_of_the_tree(target: Path) -> None:
    """The tracked files as they are in the working tree (uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name.split("/")[0] in NOT_EXTRACTED or not source.is_file():
            continue  # (a tracked file deleted in the working tree is gone)
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def msgids(po: Path, *selection: str) -> list[str]:
    """The msgids of `po`'s entries that msgattrib selects (--untranslated, --only-fuzzy)."""
    out = subprocess.run(
        ["msgattrib", *selection, "--no-wrap", "--no-obsolete", str(po)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line[7:-1] for line in out.splitlines() if line.startswith('msgid "') and line != 'msgid ""'
    ]


def test_a_fresh_makemessages_leaves_nothing_untranslated_or_fuzzy(tmp_path):
    require_gettext()
    copy_of_the_tree(tmp_path)
    command = [sys.executable, "manage.py", "makemessages", "--no-obsolete"]
    command += ["--no-location", "--no-wrap", *(f"-l{code}" for code in LANGUAGES)]
    for folder in ("var", *NOT_EXTRACTED):
        command += ["-i", folder]
    subprocess.run(
        command, cwd=tmp_path, env={**os.environ, "DEBUG": "1"}, check=True, capture_output=True
    )

    problems = {}
    for code in LANGUAGES:
        po = tmp_path / "locale" / code / "LC_MESSAGES" / "django.po"
        untranslated = msgids(po, "--untranslated")
        fuzzy = msgids(po, "--only-fuzzy")
        # Placeholders (python-format, python-brace-format) kept as in the English.
        check = subprocess.run(
            ["msgfmt", "--check-format", "-o", os.devnull, str(po)], capture_output=True, text=True
        )
        if untranslated or fuzzy or check.returncode:
            problems[code] = {"untranslated": untranslated, "fuzzy": fuzzy, "msgfmt": check.stderr}
            continue
        # The committed .mo is compiled from these translations (compilemessages was run).
        fresh = tmp_path / f"{code}.mo"
        subprocess.run(["msgfmt", "-o", str(fresh), str(po)], check=True)
        committed = ROOT / "locale" / code / "LC_MESSAGES" / "django.mo"
        with fresh.open("rb") as new, committed.open("rb") as old:
            wanted, shipped = (
                gettext.GNUTranslations(new)._catalog,
                gettext.GNUTranslations(old)._catalog,
            )
        wanted.pop("", None), shipped.pop("", None)  # the headers: dates differ
        if wanted != shipped:
            stale = sorted(
                key for key in wanted.keys() | shipped.keys() if wanted.get(key) != shipped.get(key)
            )
            problems[code] = {"not compiled (run compilemessages)": stale}
    assert problems == {}
