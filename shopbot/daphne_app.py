"""
daphne's Django app without daphne's own AppConfig. Listed first in INSTALLED_APPS, it gives
`manage.py runserver` daphne's command (an ASGI server with websockets), as `"daphne"` would;
but daphne's `daphne/apps.py` imports `daphne.server`, and with it twisted's reactor, autobahn
and OpenSSL, at every Django start-up: every `manage.py` command and the worker paid for a server
they never start. Where daphne serves (`python -m daphne`, `manage.py serve`, daphne's
`runserver`), `daphne.server` is imported before the application, so its reactor is still the
first one installed. daphne's own AppConfig also registered its system check that daphne is
listed before django.contrib.staticfiles (so its runserver wins); that check imports daphne.server
too and is not registered here; tests/test_foundation.py checks that runserver is daphne's.
"""

from __future__ import annotations

from django.apps import AppConfig


class DaphneConfig(AppConfig):
    name = "daphne"
    label = "daphne"
    verbose_name = "Daphne"
