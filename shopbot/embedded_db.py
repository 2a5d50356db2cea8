"""
The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset.

pgserver ships PostgreSQL 16 with pgvector. It keeps a list of the processes using a data folder and
stops the server when the last of them exits, so `manage.py` commands, the test run and the web
server can share one data folder: the first starts the server, later ones reuse it.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from lib.internals import forget_dead_pgserver_users

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_servers: dict[Path, object] = {}


def start(pgdata: str | Path, database: str) -> str:
    """Start (or reuse) the server for `pgdata` and make sure `database` exists.

    Returns the folder of the server's Unix socket, to be used as the connection's host.
    """
    pgdata = Path(pgdata).resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is None:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); /tmp is fine.
                warnings.simplefilter("ignore")
                import pgserver  # imported here: only hosts without DATABASE_URL need it

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            forget_dead_pgserver_users(pgdata)
            logger.info("Starting the embedded PostgreSQL in %s", pgdata)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            _create_database(server, database)
            _servers[pgdata] = server
    return str(server.get_postmaster_info().socket_dir)


def stop_all() -> None:
    """Stop the servers this process started (pgserver also does this at exit)."""
    with _lock:
        for server in _servers.values():
            server.cleanup()
        _servers.clear()


def _create_database(server, database: str) -> None:
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{database}"')
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # another process (a parallel test worker) created it a moment ago
