"""
Django's PostgreSQL backend, pointed at the embedded server (shopbot/embedded_db.py).

The server starts on the first connection rather than when settings are imported, so commands that
never touch the database (check, collectstatic, help) stay fast and start nothing.
"""

from django.db.backends.postgresql import base

from shopbot import embedded_db


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["host"] = embedded_db.start(self.settings_dict["PGDATA"], database="shopbot")
        params.pop("port", None)
        return params
