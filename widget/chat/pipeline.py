"""
The answer pipeline: one customer question in, exactly one saved answer out.

`answer(conversation, ask_id, text, on_delta)` runs these steps:

1. `save_question`: the customer's message before anything else (a new conversation's row
   with it, on its first ask), so nothing a customer typed is lost even if every later step
   fails. The same statement reads the earlier turns and the version of the shop's hours. The
   (conversation, role, ask_id) unique constraint makes this the de-duplication point: an ask id
   that was already asked stores nothing, and one already answered returns the stored answer at
   once.
2. `hours_answer`: a question about opening times ("are you open on Sunday?", in the chat's
   language; faq/hours/questions.py's `recognise` needs no query) is answered from the shop's
   hours, when it has some: mode "hours", the FAQ page's hours section as the source. Every
   other question (and "do you deliver on Sundays?") goes on to retrieval. With Claude, the
   computed hours go to Claude as one more source (step 3), and the entries retrieval finds too.
   `retrieve` (`faq.search.search`) with the customer's earlier questions as context:
   retrieval decides whether the new text is a follow-up ("and on Sundays?") and never lets a
   turn that stands on its own borrow the earlier topic's confidence. When it is not confident it
   also returns "did you mean" suggestions, which a fallback answer carries. An ask that names an
   entry (a click on a suggestion) skips the search: that published entry of the shop is the
   answer's one confident hit, and the click is recorded as a customer wording for the owner
   (widget.models.CustomerWording).
3. `answer_from_claude` when `claude_available` (settings.ANTHROPIC_API_KEY set, Claude on for
   the shop, the shop's monthly token budget not spent: `Shop.within_token_budget`) and any
   entries were found: stream the answer from Claude (widget.chat.claude.stream_answer),
   forwarding each chunk through `on_delta`. Sources are the entries Claude cited. Mode "llm".
4. `answer_from_faq` with no key, Claude off, the budget spent, or Claude failing (timeout, 429,
   5xx, 529, a cut or stalled stream, an SSE error): the best entry's answer word for word when
   retrieval is confident (mode "faq", sources = that entry; introduced by a line in the
   customer's language when they write in another language than the shop's FAQ: "Nuestra
   respuesta (en inglés):", `customer_language`), else the shop's fallback message above the
   "did you mean" suggestions, or with none to offer (plainly off-topic) one honest sentence,
   `texts.OFF_TOPIC` (mode "fallback" either way; the consumer attaches the contact route).
   Deltas already sent are superseded by the answer frame's text.
5. `save_answer`: the answer with its mode, sources, best score, confidence, latency and token
   usage. If another connection saved an answer to the same ask first, that stored answer is
   returned instead, so an ask never has two answers.

Everything touching the ORM or the embedding model runs in worker threads. Without Claude, steps
1, 2, 4 and 5 run in one thread hop (`prepare`) and on one database connection: that path is the
one that has to be fast (`manage.py bench_chat`, `bench/load_test.py`). It is three statements
(tests/test_pipeline_round_trips.py counts them): the question's (step 1), the search's (one more
when a hit's entry changed since this process read it: faq/search.py, `_entries`), the answer's
INSERT; an opening-hours question two, while the shop's hours are unchanged. No health check's
`SELECT 1` before them while the kept connection is alive (lib/internals.py). Both writes are
one statement each in autocommit mode (no BEGIN/COMMIT pair), committed without waiting for the
disk (`_ASYNCHRONOUS_COMMIT`: a database crash may lose the last fraction of a second of chat,
never an owner's edit; CHAT_DURABLE_COMMITS waits, as before).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connection, connections, models
from django.db.models import Model
from django.utils import timezone, translation
from django.utils.translation import gettext
from pgvector.django import VectorField

from faq import languages, search
from faq.hours import questions as hours_questions
from faq.hours.models import schedule_at
from faq.models import FAQEntry, Shop
from faq.search import Hit, SearchResult
from lib.internals import is_unsaved, mark_saved, prepared_cursor
from widget.chat import claude, texts
from widget.models import Conversation, CustomerWording, Message

logger = logging.getLogger(__name__)

SEARCH_LIMIT = 5


# Threads answering asks in this process (CHAT_THREADS; 0 chooses). With batching on, a batch can
# only hold the questions whose threads are running, and the loop's default pool (cores + 4
# threads) kept batches small: a pool of its own, one thread per place in a batch. With batching
# off, the loop's default pool, as before.
if settings.CHAT_THREADS > 0:
    _threads = ThreadPoolExecutor(settings.CHAT_THREADS, thread_name_prefix="chat-answer")
elif settings.EMBEDDING_BATCH_WAIT_MS > 0:
    _threads = ThreadPoolExecutor(settings.EMBEDDING_QUERY_BATCH, thread_name_prefix="chat-answer")
else:
    _threads = None


def db_thread(func):
    """Like channels' database_sync_to_async, but on a thread pool (above) instead of the one
    thread all thread-sensitive calls share, so different customers' asks embed and query in
    parallel instead of queueing. The connection is closed (per CONN_MAX_AGE) inside the call
    itself: closing it from channels' wrapper missed connections opened in these worker threads,
    and left them open until the process ended."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False, executor=_threads)


# Retrievals running at once in this process (SEARCH_SLOTS; 0 chooses). Without batching each
# search embeds its query on its own thread (one torch thread, see EMBEDDING_THREADS); more of
# them at once than half the cores only makes them share cores and the GIL with the event loop and
# PostgreSQL. Measured with bench_chat, 20 clients on 2 busy cores, p95 to the answer: 91-163 ms
# with 1 slot, 114-207 ms with 2, 139-649 ms unlimited. With batching the model runs on the
# batcher's one thread whatever the count, and a batch can only hold questions whose searches are
# running: a slot per place in a batch.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
if settings.SEARCH_SLOTS > 0:
    SEARCH_SLOTS = settings.SEARCH_SLOTS
elif settings.EMBEDDING_BATCH_WAIT_MS > 0:
    SEARCH_SLOTS = settings.EMBEDDING_QUERY_BATCH
else:
    SEARCH_SLOTS = max(1, (_cores or 2) // 2)
_search_slots = threading.BoundedSemaphore(SEARCH_SLOTS)


@dataclass
class Prepared:
    """What steps 1-2 produced (and, without Claude, steps 4-5 too)."""

    question: Message
    answer: Message | None = None  # already answered (a re-sent ask) or answered without Claude
    result: SearchResult = field(default_factory=SearchResult)
    history: list[tuple[str, str]] = field(default_factory=list)
    hours: HoursAnswer | None = None  # an opening-hours question's answer (Claude's source)


@dataclass(frozen=True)
class HoursAnswer:
    """An opening-hours question answered from the shop's hours: `text`, the answer in the
    chat's language; `source`, the hours as one text for Claude ("" without Claude)."""

    text: str
    language: str
    source: str = ""


class UnknownEntry(Exception):
    """An ask named an entry (a "did you mean" click) that is not a published entry of this
    shop. Nothing was stored."""


def source_list(entries) -> list[dict]:
    return [{"id": entry.pk, "question": entry.question} for entry in entries]


def customer_language(text: str) -> str:
    """The language the customer writes in: the question's, when the detector is sure of it
    (faq/languages.py), else the chat's."""
    return languages.sure_language(text, languages.SURE) or translation.get_language() or ""


def answer_from_faq(shop: Shop, result: SearchResult, asked_in: str = "") -> dict:
    """Step 4 without Claude (off, missing, out of budget or failed): the fields of the answer,
    the best entry word for word when retrieval is confident (introduced in `asked_in`, the
    customer's language, when the FAQ is written in another), else the shop's fallback message
    with "did you mean" suggestions."""
    best = result.best
    if result.confident and best is not None:
        intro = texts.answer_intro(asked_in, shop.language) if asked_in else ""
        return {
            "text": f"{intro}\n\n{best.entry.answer}" if intro else best.entry.answer,
            "mode": Message.FAQ,
            "sources": source_list([best.entry]),
        }
    return {
        "text": not_answered_text(shop, bool(result.suggestions), asked_in),
        "mode": Message.FALLBACK,
        "sources": [],
        "suggestions": source_list(hit.entry for hit in result.suggestions),
    }


def not_answered_text(shop: Shop, with_suggestions: bool, asked_in: str = "") -> str:
    """What the bot says when it is not confident: the shop's fallback message (as written, or
    the default in the active language, the chat's) above "did you mean" suggestions; with none
    to offer (plainly off-topic), one honest sentence that the contact route follows, in
    `asked_in` (the customer's language) when the widget speaks it, else the chat's."""
    if with_suggestions:
        return shop.fallback_text()
    with translation.override(texts.supported(asked_in) or translation.get_language()):
        return str(texts.OFF_TOPIC)


def hours_source(language: str) -> dict:
    """The source of an answer from the hours: the FAQ page's hours section (Shop.with_urls
    adds its link), named in the chat's language."""
    with translation.override(language):
        return {"hours": True, "question": gettext("Opening hours")}


def answer_from_hours(hours: HoursAnswer) -> dict:
    """Step 2's answer fields without Claude (or when Claude failed): the computed hours."""
    return {"text": hours.text, "mode": Message.HOURS, "sources": [hours_source(hours.language)]}


# An answer from the hours is sure of itself: never one of the owner's unanswered questions.
HOURS_RESULT = SearchResult(confident=True)


def hours_answer(
    conversation: Conversation, text: str, with_source: bool, hours_version: int | None
) -> HoursAnswer | None:
    """Step 2: the answer from the shop's hours when `text` asks about opening times and the shop
    has hours (`hours_version`: ShopHours.version as the ask's first statement read it, None
    without hours), else None. The recognising comes first and costs no query; the hours are
    built only for a question about them, and only when this process's cached Schedule of the
    shop is older than that version (faq/hours/models.py, `schedule_at`)."""
    language = conversation.language or conversation.shop.language or "en"
    now = timezone.now()
    if hours_questions.recognise(text, language, now.date()) is None:
        return None
    schedule = schedule_at(conversation.shop_id, hours_version)
    if schedule is None:
        return None
    text = hours_questions.answer_question(schedule, text, now, language)
    if text is None:
        return None
    # For Claude: the answer to this very question first, then the hours as a whole.
    source = ""
    if with_source:
        source = f"{text} {hours_questions.source_text(schedule, now, language)}"
    return HoursAnswer(text, language, source)


def answer_from_claude(
    reply: claude.ClaudeResult, result: SearchResult, hours: HoursAnswer | None = None
) -> dict:
    """Step 3's answer fields: Claude's text, the entries it cited as sources (and the hours,
    for an opening-hours question), its tokens."""
    entries = {hit.entry.pk: hit.entry for hit in result.hits}
    sources = source_list(entries[pk] for pk in reply.cited_entry_ids)
    fields = {
        "text": reply.text,
        "mode": Message.LLM,
        "sources": ([hours_source(hours.language)] if hours else []) + sources,
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
    }
    if not reply.cited_entry_ids and not result.confident and hours is None:
        # Claude saw the candidates and used none: offer them as "did you mean" anyway.
        fields["suggestions"] = source_list(hit.entry for hit in result.suggestions)
    return fields


def chosen(entry: FAQEntry) -> SearchResult:
    """A "did you mean" click: the customer picked the entry, so it is the one confident hit."""
    return SearchResult(hits=[Hit(entry, 1.0)], confident=True)


def record_click(
    conversation: Conversation, question: Message, entry: FAQEntry, client: str | None = None
) -> None:
    """Link a click to the customer's own question it was suggested for, and count that pairing
    for the owner to accept, once per customer (CustomerWording.record: per conversation and per
    `client` address). A click that no earlier answer of this conversation offered (a hand-made
    frame) is answered but teaches nothing."""
    offered = (
        conversation.messages.filter(
            role=Message.BOT, id__lt=question.id, suggestions__contains=[{"id": entry.pk}]
        )
        .order_by("-id")
        .first()
    )
    if offered is None:
        return
    original = conversation.messages.filter(role=Message.USER, ask_id=offered.ask_id).first()
    if original is None or original.entry_id is not None:
        return
    question.suggested_for = original
    question.save(update_fields=["suggested_for"])
    CustomerWording.record(entry, original.text, click=question, client=client)


# The INSERT of one row of a model, by the model's own fields and defaults (what
# `Model.objects.create` writes), built once per model: the chat's two messages a turn skip the
# ORM's save machinery and SQL compiler, which were most of the Python time of their INSERTs.
_insert_sql: dict[type[Model], tuple[str, list]] = {}

# Fields (of exactly these classes) whose value, when None or of these Python types, is what
# their get_db_prep_save gives on PostgreSQL: sent as it is, without the field's conversions
# (half an INSERT's Python time). Text fields take any str (a TextChoices member is one, and
# their conversion keeps it); the others the exact type. Date-times and vectors only when None
# (never a date-time set by auto_now or auto_now_add). Integers and JSON are not sent as they
# are: `_adapter` gives them what their conversion would. Any other field, or value, goes
# through get_db_prep_save.
_AS_IS: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.FloatField: (float,),
    models.DateTimeField: (),
    models.UUIDField: (uuid.UUID,),
    models.ForeignKey: (uuid.UUID,),
    VectorField: (),
}
_TEXT_FIELDS = (models.CharField, models.TextField)


def _adapter(field: models.Field) -> tuple[tuple[type, ...], Callable | None]:
    """For an integer or JSON field, the exact types of the values whose conversion is only the
    connection's adaptation, and that adaptation (what get_db_prep_save ends with: an integer
    gets its column's type, Int4 or Int2, so a prepared INSERT's parameter types never change
    with a value's size; a list or dict becomes Jsonb with the field's encoder), without the
    field's lazy-text and expression checks before it; (), None for any other field."""
    if isinstance(field, models.IntegerField):
        internal_type = field.get_internal_type()
        return (int,), lambda value, db: db.ops.adapt_integerfield_value(value, internal_type)
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return (list, dict), lambda value, db: db.ops.adapt_json_value(value, encoder)
    return (), None


def row_insert(instance: Model) -> tuple[str, list]:
    """`INSERT INTO table (columns) VALUES (...)` for `instance` and its parameters; the
    instance's auto_now_add fields are set as a save would set them."""
    model = type(instance)
    if model not in _insert_sql:
        fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        values = ", ".join(["%s"] * len(fields))
        table = connection.ops.quote_name(model._meta.db_table)
        plain = []
        for f in fields:
            as_is = _AS_IS.get(type(f))
            adapted, adapt = _adapter(f)
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                as_is = None
            plain.append((f, f.attname, as_is, type(f) in _TEXT_FIELDS, adapted, adapt))
        _insert_sql[model] = (f"INSERT INTO {table} ({columns}) VALUES ({values})", plain)
    sql, fields = _insert_sql[model]
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection, looked up once
    params = []
    for column, attname, as_is, text, adapted, adapt in fields:
        if adapt is not None:
            value = getattr(instance, attname)
            if value is None:
                params.append(value)
                continue
            if type(value) in adapted:
                params.append(adapt(value, db))
                continue
        elif as_is is not None:
            value = getattr(instance, attname)
            if value is None or type(value) in as_is or (text and isinstance(value, str)):
                params.append(value)
                continue
        params.append(column.get_db_prep_save(column.pre_save(instance, True), db))
    return sql, params


# How many earlier messages an ask reads: as many as Claude sees and one more question, for a
# follow-up's context.
EARLIER_MESSAGES = 2 * claude.HISTORY_PAIRS + 2

# Step 1 in one round trip: the new conversation's row (on its first ask), the question, the
# version of the shop's hours and the earlier turns. The conversation and the question are each
# inserted by an INSERT that does nothing on a conflict (the conversation stored by a "talk to a
# person" frame meanwhile; an ask id already asked: a re-sent ask), so nothing is ever half done.
# The SELECTs run on the statement's snapshot, before the question: they never see it.
_START = """
    WITH {conversation}question AS (
        {question} ON CONFLICT ON CONSTRAINT one_message_per_role_and_ask DO NOTHING
        RETURNING id
    )
    SELECT 0, id, NULL::text, NULL::text, NULL::text FROM question
    UNION ALL
    SELECT 1, (SELECT version FROM faq_shophours WHERE shop_id = %s), {commit}, NULL, NULL
    UNION ALL
    (SELECT 2, id, role, ask_id, text FROM widget_message WHERE conversation_id = %s
     ORDER BY id DESC LIMIT %s)
"""
_NEW_CONVERSATION = "conversation AS ({conversation} ON CONFLICT (id) DO NOTHING), "

# The chat's two writes an ask commit without waiting for the WAL to reach the disk: PostgreSQL's
# synchronous_commit off for the statement's own transaction (`set_config(..., true)`, evaluated
# inside the statement, so no round trip of its own, and gone at its commit: the connection's
# next statement, and any pooler's next client, commits as configured). A database crash may then
# lose the chat's last fraction of a second (up to three times wal_writer_delay, 600 ms by
# default), never an owner's edit, and never an answer without its question (the WAL is replayed
# in order). Measured in the load test: 0.8-0.9 ms less of PostgreSQL's CPU an ask, a quarter of
# it (docs/performance.md). CHAT_DURABLE_COMMITS waits for the disk, as before.
_ASYNCHRONOUS_COMMIT = "set_config('synchronous_commit', 'off', true)"


def _commit_mode() -> str:
    """What the chat's statements evaluate for their commit: `_ASYNCHRONOUS_COMMIT`, or a NULL
    that changes nothing with CHAT_DURABLE_COMMITS, or inside a transaction of a caller's
    (`atomic()`), where the setting would hold for everything else that transaction writes."""
    if settings.CHAT_DURABLE_COMMITS or connection.in_atomic_block:
        return "NULL"
    return _ASYNCHRONOUS_COMMIT


@dataclass
class Started:
    """What the ask's first statement (`save_question`) found."""

    question: Message
    answer: Message | None  # the stored answer of a re-sent ask
    earlier: list[tuple[str, str, str]]  # (role, ask id, text) before the question, oldest first
    hours_version: int | None  # ShopHours.version of the shop, None without hours


def save_question(
    conversation: Conversation,
    ask_id: str,
    text: str,
    entry: FAQEntry | None,
    client: str | None = None,
) -> Started:
    """Step 1: the question (and a new conversation's row before it), stored by one statement
    committed on its own, which also reads the earlier turns and the version of the shop's hours.
    A re-sent ask keeps its first text, and gets its stored answer if it has one."""
    question = Message(
        conversation=conversation, role=Message.USER, ask_id=ask_id, text=text, entry=entry
    )
    sql, params = row_insert(question)
    head, head_params = "", []
    if is_unsaved(conversation):
        head, head_params = row_insert(conversation)
        head = _NEW_CONVERSATION.format(conversation=head)
    with prepared_cursor() as cursor:
        cursor.execute(
            _START.format(conversation=head, question=sql, commit=_commit_mode()),
            [*head_params, *params, conversation.shop_id, conversation.pk, EARLIER_MESSAGES],
        )
        rows = cursor.fetchall()
    if head:
        mark_saved(conversation)
    parts: dict[int, list] = {0: [], 1: [], 2: []}
    for part, *row in rows:
        parts[part].append(row)
    hours_version = parts[1][0][0]
    if not parts[0]:  # this ask id was asked before
        question = Message.objects.get(conversation=conversation, role=Message.USER, ask_id=ask_id)
        return Started(
            question,
            conversation.answer_to(ask_id),
            earlier_turns(conversation, question),
            hours_version,
        )
    mark_saved(question, parts[0][0][0])
    earlier = [(role, ask, said) for _, role, ask, said in sorted(parts[2])]
    if entry is not None:
        record_click(conversation, question, entry, client)
    return Started(question, None, earlier, hours_version)


def save_answer(
    conversation: Conversation,
    question: Message,
    result: SearchResult,
    started: float,
    fields: dict,
) -> Message:
    """Step 5 (synchronous): one INSERT committed on its own. Returns the stored answer, ours or
    one saved first elsewhere (then ours is not stored)."""
    answer = Message(
        conversation=conversation,
        role=Message.BOT,
        ask_id=question.ask_id,
        # A click was never scored: it is the customer's choice, not a match.
        score=result.best.score if result.best and not question.entry_id else None,
        confident=result.confident,
        latency_ms=round((time.monotonic() - started) * 1000),
        **fields,
    )
    sql, params = row_insert(answer)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"{sql} ON CONFLICT ON CONSTRAINT one_message_per_role_and_ask DO NOTHING "
            f"RETURNING id, {_commit_mode()}",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return conversation.answer_to(question.ask_id)
    return mark_saved(answer, row[0])


def claude_available(shop: Shop) -> bool:
    """Synchronous (the budget is a query): an API key, Claude on for the shop (the field
    Shop.use_claude) and the shop's monthly token budget not spent; otherwise the answer comes
    from the FAQ, without an error."""
    if not (settings.ANTHROPIC_API_KEY and shop.use_claude):
        return False
    return shop.within_token_budget(Message.objects.claude_tokens(shop))


def earlier_turns(conversation: Conversation, question: Message) -> list[tuple[str, str, str]]:
    """(role, ask id, text) of the messages before `question`, oldest first, as many as Claude
    sees and one more question for a follow-up's context (a re-sent ask's: `save_question` reads
    a new question's in its own statement)."""
    return list(
        conversation.messages.filter(id__lt=question.id)
        .order_by("-id")
        .values_list("role", "ask_id", "text")[:EARLIER_MESSAGES]
    )[::-1]


def retrieve(
    conversation: Conversation, question: Message, entry: FAQEntry | None, earlier: list
) -> SearchResult:
    """Step 2: the entries for the question, the customer's earlier questions as context (the
    latest gives a follow-up its topic). A click chose its entry: no search, no threshold."""
    if entry is not None:
        return chosen(entry)
    context = [text for role, _, text in earlier if role == Message.USER]
    with _search_slots:
        return search.search(conversation.shop, question.text, SEARCH_LIMIT, context)


def claude_history(earlier: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Claude's view of the conversation: the earlier (question, answer) pairs."""
    questions = {ask: text for role, ask, text in earlier if role == Message.USER}
    return [(questions[a], t) for role, a, t in earlier if role == Message.BOT and a in questions]


@db_thread
def prepare(
    conversation: Conversation,
    ask_id: str,
    text: str,
    started: float,
    entry_id: int | None = None,
    client: str | None = None,
) -> Prepared:
    """Steps 1 and 2, and without Claude 4 and 5 too: one thread hop, one connection."""
    entry = None
    if entry_id is not None:
        entry = FAQEntry.objects.filter(
            pk=entry_id, shop_id=conversation.shop_id, published=True
        ).first()
        if entry is None:
            # Already answered (the entry was unpublished since): the stored answer stands.
            stored = conversation.answer_to(ask_id)
            if stored is None:
                raise UnknownEntry(entry_id)
            return Prepared(stored, answer=stored)

    begun = save_question(conversation, ask_id, text, entry, client)
    question, earlier = begun.question, begun.earlier
    if begun.answer is not None:
        return Prepared(question, answer=begun.answer)
    with_claude = claude_available(conversation.shop)
    hours = (
        None
        if entry is not None
        else hours_answer(conversation, text, with_claude, begun.hours_version)
    )
    if hours is not None and not with_claude:
        fields = answer_from_hours(hours)
        answer = save_answer(conversation, question, HOURS_RESULT, started, fields)
        return Prepared(question, answer, HOURS_RESULT)
    result = retrieve(conversation, question, entry, earlier)
    if with_claude and (result.hits or hours is not None):
        return Prepared(question, result=result, history=claude_history(earlier), hours=hours)
    fields = answer_from_faq(conversation.shop, result, customer_language(text))
    return Prepared(question, save_answer(conversation, question, result, started, fields), result)


async def answer(
    conversation: Conversation,
    ask_id: str,
    text: str,
    on_delta: Callable[[str], Awaitable[None]],
    entry_id: int | None = None,
    client: str | None = None,
) -> Message:
    """Run the pipeline for one ask; returns the saved answer (the stored one for a re-sent id).

    `entry_id`: the ask is a click on a "did you mean" suggestion; it is answered from that
    entry (word for word, or by Claude citing it) instead of a search. `client`: the customer's
    address, so a click counts once per customer (CustomerWording.record).

    Raises UnknownEntry when entry_id is not a published entry of the shop, and
    django.db.DatabaseError when the database is down; nothing else escapes.
    """
    started = time.monotonic()
    prepared = await prepare(conversation, ask_id, text, started, entry_id, client)
    if prepared.answer is not None:
        return prepared.answer

    result, hours = prepared.result, prepared.hours
    try:
        reply = await claude.stream_answer(
            conversation.shop,
            prepared.history,
            result.hits,
            prepared.question.text,
            on_delta,
            hours=hours.source if hours else "",
        )
    except claude.ClaudeFailed as exc:
        logger.warning(
            "Claude failed for shop %s, answering from the FAQ: %s", conversation.shop_id, exc
        )
        fields = (
            answer_from_hours(hours)
            if hours
            else answer_from_faq(conversation.shop, result, customer_language(text))
        )
    except Exception:
        # A bug must cost the customer nothing more than the Claude part of the answer.
        logger.exception("Unexpected error from the Claude call; answering from the FAQ")
        fields = (
            answer_from_hours(hours)
            if hours
            else answer_from_faq(conversation.shop, result, customer_language(text))
        )
    else:
        fields = answer_from_claude(reply, result, hours)
    if hours is not None:
        result = HOURS_RESULT  # sure of itself, whatever retrieval thought of the entries
    return await db_thread(save_answer)(conversation, prepared.question, result, started, fields)
