"""
Every use ShopBot makes of another library's private internals, in this one module, so that an
upgrade of daphne, channels, Django or pgserver has one place to check. Each helper says what it
relies on, and what happens when that is gone; the tests that would fail if it changed are:

- `daphne_transport` (daphne passes each connection's `send` as partial(server.handle_reply,
  protocol), an autobahn protocol whose Twisted `transport` can pause reading):
  tests/test_flood.py (a flood against a real daphne is closed fast, and nobody else notices),
  tests/test_hardening.py (the flood tests on channels' communicator, where it returns None).
- `receive_backlog` (daphne, and channels' test communicator, hand each connection the `get` of
  its own asyncio.Queue as `receive`): tests/test_hardening.py
  test_a_client_writing_too_fast_is_closed_with_4008_and_its_slot_freed (200 frames waiting are
  closed at the first of them), tests/test_flood.py.
- `is_unsaved` (Django's Model._state.adding): tests/test_hardening.py
  test_connecting_and_closing_stores_no_conversation, tests/test_chat_consumer.py
  test_ready_frame_starts_a_conversation and test_resume_replays_the_history_and_ignores_foreign_ids
  (`resumed`), tests/test_handoff.py
  test_talk_to_a_person_before_any_question_starts_the_conversation.
- `loaded_copy` (Django's Model._state, a ModelState: a model instance is its fields' values
  in its __dict__ and its state): faq/search.py's cache of the hits'
  entries hands out copies of the instances it keeps: tests/test_search_index.py,
  tests/test_pipeline_round_trips.py.
- `forget_dead_pgserver_users` (pgserver's PostgresServer._lock and its .handle_pids.json list
  of the processes using a data folder): every test run without DATABASE_URL starts the embedded
  database through it (shopbot/embedded_db.py); no test kills a process to check the clean-up.

- `is_unsaved` and `mark_saved` (Django's Model._state.adding and _state.db): the chat stores its
  messages (and a new conversation) with SQL of its own (widget/chat/pipeline.py, `row_insert`)
  and hands the rows on as the ORM leaves saved ones: tests/test_pipeline_round_trips.py,
  tests/test_chat_consumer.py.
- `vector_cursor` (faq/search.py's nearest-vector query) and `prepared_cursor` (the chat's
  statements of every ask: widget/chat/pipeline.py, faq/search.py's entries) wrap a psycopg
  server-binding cursor the way Django wraps its own (connection.make_cursor / make_debug_cursor,
  queries_logged, close_if_health_check_failed: undocumented); a prepared statement is logged by
  setting psycopg's private `Cursor._query`, as psycopg does for a statement sent as text:
  tests/test_retrieval.py and tests/test_pipeline_round_trips.py (which counts the queries it
  logs) guard them, and tests/test_faults.py and tests/browser/test_widget_browser.py (a
  connection cut by a restart replaced at the next ask) the health check, which `_check_health`
  runs (by Django's `close_if_health_check_failed`) only when the idle connection's socket is
  readable, setting Django's `health_check_done` otherwise. Each connection keeps its cursor of
  each kind (psycopg's `Cursor` reused for many statements, as psycopg allows; Django's
  `CursorWrapper` with a `close` that leaves it open): the same tests, and tests/test_faults.py
  for a connection replaced after a cut.
"""

from __future__ import annotations

import asyncio
import json
import select
from collections.abc import Callable
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import Model
from django.db.models.base import ModelState
from pgvector.psycopg.vector import VectorBinaryDumper


def daphne_transport(send: Callable):
    """The Twisted transport of the daphne connection behind a consumer's `send`, or None
    (under any other server, or in channels' test communicator: the callers then do nothing)."""
    protocol = (getattr(send, "args", None) or (None,))[0]
    transport = getattr(protocol, "transport", None)
    return transport if hasattr(transport, "pauseProducing") else None


def receive_backlog(receive: Callable) -> Callable[[], int]:
    """How many frames the client has written that the consumer has not read yet: the size of
    the asyncio.Queue whose `get` is `receive`; always 0 when it is not one."""
    queue = getattr(receive, "__self__", None)
    return queue.qsize if isinstance(queue, asyncio.Queue) else lambda: 0


def is_unsaved(instance: Model) -> bool:
    """True until the model instance is first saved to the database (or loaded from it)."""
    return instance._state.adding


def mark_saved(instance: Model, pk=None) -> Model:
    """`instance` as the ORM leaves one it has saved, with the primary key `pk` if given, after
    an INSERT of one's own."""
    if pk is not None:
        instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def loaded_copy(instance: Model) -> Model:
    """A new instance with the field values of `instance` (one loaded from the database), as the
    ORM would load the same row again, with a state of its own (no relation cached), copied
    instead of built field by field (a quarter of `Model.from_db`'s time). The values themselves
    are shared: for models whose fields hold immutable values. No pre_init/post_init signal is
    sent (ShopBot has no receiver of them)."""
    copy = object.__new__(type(instance))
    copy.__dict__.update(instance.__dict__)
    copy._state = ModelState()
    copy._state.adding = False
    copy._state.db = instance._state.db
    return copy


def forget_dead_pgserver_users(pgdata: Path) -> None:
    """pgserver stops the server when the last process in its list exits, but a process that was
    killed outright never leaves the list, and then nobody would ever stop the server. Drop the
    dead ones first."""
    import psutil
    from pgserver import PostgresServer

    pids_file = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            pids_file.write_text(json.dumps(alive))


class _UnpreparedCursor(ServerBindingCursor):
    """Never a prepared statement: a prepared statement's plan, once PostgreSQL settles on a
    generic one, would be the same for a shop of 40 entries and one of 5,000."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=False, binary=binary)


class _PreparedCursor(ServerBindingCursor):
    """A prepared statement from the first execution on a connection (psycopg keeps them per
    connection, by the statement's text), unless DATABASE_PREPARED_STATEMENTS is off."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)

    def _send_query_prepared(self, name, pgq, *, binary=None):
        # psycopg records the statement it sent (`_query`, which Django's query log reads) only
        # when it sends the text; a prepared statement is sent by name.
        self._query = pgq
        return super()._send_query_prepared(name, pgq, binary=binary)


# Each database connection's cursor of each class, kept for the connection's life: a psycopg
# cursor's adaptation (its Transformer) looks up the dumper of each parameter's type once and
# keeps it, so a new cursor for every statement looked them all up again (a quarter of a
# statement's Python time: 52 -> 38 us a 22-parameter INSERT). Kept on Django's wrapper of the
# thread's connection, with the psycopg connection they belong to: a replaced connection
# (closed for its age, cut) gets new cursors, and the old ones go with it.
_KEPT = "_shopbot_kept_cursors"


class _KeptCursorWrapper(CursorWrapper):
    """Django's cursor wrapper (errors as Django's, a `with` block) of a kept cursor: closing it
    leaves the cursor open for the connection's next statement."""

    def close(self) -> None:
        pass


class _KeptCursorDebugWrapper(CursorDebugWrapper):
    def close(self) -> None:
        pass


def _bound_cursor(cursor_class: type[ServerBindingCursor], vectors: bool = False):
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection, looked up once
    # As Django's own `connection.cursor()` does: with CONN_HEALTH_CHECKS, a connection the
    # database cut (a restart) fails its check and is replaced here, instead of failing the ask.
    _check_health(db)
    db.ensure_connection()
    owner_and_cursors = getattr(db, _KEPT, None)
    if owner_and_cursors is None or owner_and_cursors[0] is not db.connection:
        owner_and_cursors = (db.connection, {})
        setattr(db, _KEPT, owner_and_cursors)
    kept = owner_and_cursors[1]
    cursor = kept.get(cursor_class)
    if cursor is None or cursor.closed:
        cursor = kept[cursor_class] = cursor_class(db.connection)
        if vectors:
            # Imported here: numpy is only loaded by a process that searches (and then is).
            import numpy as np

            cursor.adapters.register_dumper(np.ndarray, VectorBinaryDumper)
    # As db.make_cursor and db.make_debug_cursor wrap a cursor.
    if db.queries_logged:
        return _KeptCursorDebugWrapper(cursor, db)
    return _KeptCursorWrapper(cursor, db)


def _check_health(db) -> None:
    """Django's health check of a kept connection (CONN_HEALTH_CHECKS,
    `close_if_health_check_failed`: a `SELECT 1` round trip before the first query of every
    request, and of every ask), only when the idle connection has something to read. A database
    that cuts a connection (a restart, pg_terminate_backend) sends it a FATAL error and closes
    it, and either makes its socket readable; a live idle connection in autocommit has nothing
    to say, so the check costs no round trip (issue 32: one statement fewer per ask)."""
    if db.connection is None or not db.health_check_enabled or db.health_check_done:
        return
    if select.select([db.connection.fileno()], [], [], 0)[0]:
        db.close_if_health_check_failed()
    else:
        db.health_check_done = True


def vector_cursor():
    """A cursor on Django's connection that binds parameters server-side, so a query vector
    (a numpy array) travels in pgvector's binary form (its type left to the SQL's ::vector cast),
    wrapped like Django's own cursors (errors, debug query logging). Quoted into the statement as
    a list of 384 floats (Django's client-side binding) it cost 1.3 ms of Python a search, holding
    the GIL every other ask in the process waited for; the binary dump costs microseconds. Its
    statements are not prepared (`_UnpreparedCursor`)."""
    return _bound_cursor(_UnpreparedCursor, vectors=True)


def prepared_cursor():
    """A cursor binding parameters server-side whose statements are prepared statements on the
    connection: PostgreSQL parses and plans each once per connection instead of at every ask, and
    the parameters are sent as they are instead of being quoted into the statement's text in
    Python. For statements whose best plan does not depend on the values (inserts, lookups by
    key); wrapped like Django's own cursors."""
    return _bound_cursor(_PreparedCursor)


_select_sql: dict[tuple, str] = {}


def prepared_models(
    model: type[Model], where: str, params: list, extra: dict[str, str] | None = None
) -> list[Model]:
    """`SELECT` of `model`'s columns (and `extra`'s SQL expressions, set on each instance as the
    attributes they are named by, like the ORM's annotations) `FROM` its table `WHERE where`, by
    a prepared statement (`prepared_cursor`), as instances the ORM would load (`Model.from_db`):
    for the chat's lookups of every ask and connection, which the ORM compiled each time (most of
    their Python time). Only for models whose fields need no conversion from the database (no
    JSON fields): others raise TypeError."""
    extra = extra or {}
    fields = model._meta.concrete_fields
    key = (model, where, tuple(extra.items()))
    if key not in _select_sql:
        if any(field.get_db_converters(connection) for field in fields):
            raise TypeError(f"{model.__name__} has fields converted on loading: use the ORM")
        table = connection.ops.quote_name(model._meta.db_table)
        columns = [f"{table}.{connection.ops.quote_name(f.column)}" for f in fields]
        columns += [f"({sql}) AS {connection.ops.quote_name(name)}" for name, sql in extra.items()]
        _select_sql[key] = f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"
    with prepared_cursor() as cursor:
        cursor.execute(_select_sql[key], params)
        rows = cursor.fetchall()
    names, count, alias = [field.attname for field in fields], len(fields), connection.alias
    instances = []
    for row in rows:
        instance = model.from_db(alias, names, row[:count])
        for name, value in zip(extra, row[count:], strict=True):
            setattr(instance, name, value)
        instances.append(instance)
    return instances
