"""
Django for a benchmark (`setup_django`), and for most of them the development database too
(`setup`: the embedded PostgreSQL, or DATABASE_URL's), migrated first as `make run` does: a clone
where only `make test` ran (its tests make databases of their own) has an empty one, and every
benchmark failed there with "relation faq_shop does not exist".
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    """Set Django up (DEBUG on for this process unless the environment says otherwise; the
    servers a benchmark starts run without it), for a benchmark that needs no database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopbot.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


def setup() -> None:
    """Set Django up (`setup_django`), bring the database's schema up to date and export the
    embedding model if it is not yet (`make run` does both)."""
    setup_django()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    # The servers a benchmark starts read the exported model and never export it themselves.
    call_command("export_model", verbosity=0, stdout=io.StringIO())
