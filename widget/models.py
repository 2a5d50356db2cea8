from __future__ import annotations

import base64
import hmac
import re
import uuid
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import (
    CharField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Lower, Trim
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.http import base36_to_int, int_to_base36
from pgvector.django import VectorField

from faq.models import FAQEntry, Shop
from faq.text import wording_key
from lib import ratelimit
from widget import live

# What an erasure or a purge counts, in the order it is printed.
ERASED_KINDS = (
    "conversations",
    "messages",
    "feedback (thumbs)",
    "question embeddings",
    "customer requests",
    "customer wordings",
    "customer wordings (count lowered)",
    "FAQ phrasings",
    "admin log entries",
)

# Conversations deleted per transaction (retention, erasure): short locks and bounded memory
# however many there are.
ERASE_BATCH = 500


def past_retention(date_field: str, shop_field: str, days: int, now: datetime) -> Q:
    """Rows whose `date_field` is older than `days` (the site's retention, 0 = none) or than
    their shop's own, shorter `retention_days` (`shop_field` leads to the shop)."""
    own_days = F(f"{shop_field}__retention_days")
    expired = Q(
        **{
            f"{shop_field}__retention_days__isnull": False,
            f"{date_field}__lt": Value(now) - Value(timedelta(days=1)) * own_days,
        }
    )
    if days:
        expired |= Q(**{f"{date_field}__lt": now - timedelta(days=days)})
    return expired


# --- A customer's address, as the erasure and the export look for it ---------------------------


def phone_key(value: str) -> str:
    """A phone number as compared: its digits, a leading + kept, so that "+44 20 7946-0000" and
    "+442079460000" are one number (the hand-off stores the number as typed)."""
    value = value.strip()
    return ("+" if value.startswith("+") else "") + re.sub(r"[^0-9]", "", value)


# The same in SQL, for the stored numbers (a + is only ever the first character: handoff.py).
PHONE_KEY = Func(
    F("phone"), Value("[^0-9+]"), Value(""), Value("g"), function="regexp_replace",
    output_field=CharField(),
)  # fmt: skip


def address_kind(address: str) -> str:
    """Whether the address is an "email" address or a "phone" number; ValueError if neither."""
    address = address.strip()
    if "@" in address and not any(c.isspace() for c in address):
        return "email"
    if 6 <= len(phone_key(address).lstrip("+")) <= 20 and not re.search(r"[^0-9 ()./+-]", address):
        return "phone"
    raise ValueError(f"{address!r} is neither an email address nor a phone number.")


def said_pattern(address: str) -> str:
    """A PostgreSQL regular expression finding the address in a message's text as a whole
    address (bob@x.com is not in jacob@x.com), a phone number however it is spaced there."""
    address = address.strip()
    if address_kind(address) == "email":
        return rf"(^|[^a-z0-9._%+-]){re.escape(address.lower())}($|[^a-z0-9_-]|\.($|[^a-z0-9]))"
    key = phone_key(address)
    plus, digits = (r"\+" if key.startswith("+") else ""), "[ ()./-]*".join(key.lstrip("+"))
    return rf"(^|[^0-9]){plus}{digits}($|[^0-9])"


class ConversationQuerySet(QuerySet):
    def of_customer(self, address: str) -> ConversationQuerySet:
        """The conversations of the customer with this email address (any case) or phone number
        (spacing and punctuation aside): those in which they left a customer request with it,
        or wrote it in a message. ValueError if the address is neither."""
        requests = Handoff.objects.from_address(address).filter(conversation=OuterRef("pk"))
        said = Message.objects.filter(
            conversation=OuterRef("pk"), role=Message.USER, text__iregex=said_pattern(address)
        )
        return self.filter(Exists(requests) | Exists(said))

    def expired(self, days: int | None = None, now: datetime | None = None) -> ConversationQuerySet:
        """Conversations past retention: started more than `days` ago (default
        CONVERSATION_RETENTION_DAYS; 0 = no site-wide limit), or more than their shop's own
        `retention_days` ago."""
        days = settings.CONVERSATION_RETENTION_DAYS if days is None else days
        return self.filter(past_retention("started", "shop", days, now or timezone.now()))

    def contents(self) -> Counter[str]:
        """What these conversations hold, per kind (the words erase() and forget() print)."""
        messages = Message.objects.filter(conversation__in=self)
        return Counter(
            {
                "conversations": self.count(),
                "messages": messages.count(),
                "feedback (thumbs)": messages.exclude(feedback="").count(),
                "question embeddings": messages.filter(embedding__isnull=False).count(),
                "customer requests": Handoff.objects.filter(conversation__in=self).count(),
            }
        )

    def erase(self) -> Counter[str]:
        """Delete these conversations with everything in them, ERASE_BATCH at a time: their
        messages (feedback and question embeddings with them), their customer requests, and the
        admin's log lines about them (admin_log). Returns contents() of what went."""
        erased: Counter[str] = Counter()
        while ids := list(self.order_by().values_list("pk", flat=True)[:ERASE_BATCH]):
            with transaction.atomic():
                batch = Conversation.objects.filter(pk__in=ids)
                erased += batch.contents()
                erased["admin log entries"] += batch.admin_log().delete()[0]
                batch.delete()
        return erased

    def admin_log(self) -> QuerySet[LogEntry]:
        """The admin's log lines about these conversations and their customer requests. A
        request's line quotes its address and question: so are found, too, the lines about
        requests from the same addresses that were deleted in the admin earlier."""
        requests = Handoff.objects.filter(conversation__in=self)
        handoff_type = ContentType.objects.get_for_model(Handoff)
        found = Q(
            content_type=handoff_type,
            object_id__in=[str(pk) for pk in requests.values_list("pk", flat=True)],
        )
        found |= Q(
            content_type=ContentType.objects.get_for_model(Conversation),
            object_id__in=[str(pk) for pk in self.values_list("pk", flat=True)],
        )
        addresses = {
            a.lower() for pair in requests.values_list("email", "phone") for a in pair if a
        }
        for address in sorted(addresses):  # str(Handoff): "<address>: <question>"
            found |= Q(content_type=handoff_type, object_repr__istartswith=f"{address}: ")
        return LogEntry.objects.filter(found)

    def forget(self, *, dry_run: bool = False) -> Counter[str]:
        """Erase these conversations (a customer's: `of_customer`) and every copy of what the
        customer said in them: the customer wordings their "did you mean" clicks counted (the
        count lowered, the wording deleted when only they had said it), and the alternative
        phrasings of FAQ entries made from their words (an accepted wording, or a question the
        owner answered from "Unanswered questions") that no other customer of the shop used;
        the entry is re-embedded and the shop's search index rebuilt when this commits.
        Returns what was erased, per kind; `dry_run` does it all and rolls it back.

        The one place an erasure happens: `manage.py forget_customer` and the admin's "Forget
        these customers" action call it."""
        with transaction.atomic():
            ids = list(self.order_by().values_list("pk", flat=True))
            conversations = Conversation.objects.filter(pk__in=ids)
            questions = Message.objects.filter(conversation__in=ids, role=Message.USER)
            erased, accepted = CustomerWording.forget_clicks(questions)
            erased += questions.remove_phrasings(accepted)
            erased += conversations.erase()
            if dry_run:
                transaction.set_rollback(True)
        return Counter({kind: erased[kind] for kind in ERASED_KINDS if erased[kind]})

    def export(self) -> dict[str, list[dict]]:
        """These conversations (a customer's: `of_customer`) as plain data, their customer
        requests and messages: the shape docs/privacy.md documents (`manage.py export_customer`)."""
        conversations = self.order_by("started", "pk").select_related("shop")
        return {
            "requests": [
                handoff.as_export()
                for handoff in Handoff.objects.filter(conversation__in=conversations).order_by(
                    "created", "pk"
                )
            ],
            "conversations": [
                conversation.as_export()
                for conversation in conversations.prefetch_related("messages")
            ],
        }


class Conversation(models.Model):
    # The id travels to the browser and back (resume), so it is random rather than a counter:
    # nobody can read another visitor's transcript by guessing.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    shop = models.ForeignKey(Shop, models.CASCADE, related_name="conversations")
    started = models.DateTimeField(auto_now_add=True, db_index=True)
    page_url = models.URLField(max_length=500, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # The chat's language when the customer last connected (widget.chat.texts.chat_language):
    # what the customer reads, so what the shop sends them by email is in it too. Empty for
    # conversations older than this field: the shop's language then.
    language = models.CharField(max_length=10, blank=True)
    # Live take-over: while this is in the future a person of the shop is in the conversation
    # and the bot stays silent. Each message of theirs moves it HANDOFF_TAKEOVER_IDLE_MINUTES
    # ahead; handing back clears it.
    person_until = models.DateTimeField(null=True, blank=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"{self.shop} · {self.started:%Y-%m-%d %H:%M}"

    @property
    def person_present(self) -> bool:
        return self.person_until is not None and self.person_until > timezone.now()

    @property
    def group(self) -> str:
        """The channel-layer group of this conversation's open sockets, in any server process:
        what the shop says reaches the customer through it (widget/live.py)."""
        return f"chat.{self.pk}"

    # --- A person of the shop in the conversation (the hand-off, docs/protocol.md) -------------
    # An owner takes the conversation over from the hand-off's page: the customer's widget shows
    # that a person has joined, the customer's questions are stored for that person instead of
    # answered by the bot, and the owner's messages reach the open chat at once. Handing back (or
    # HANDOFF_TAKEOVER_IDLE_MINUTES without a message from the owner) lets the bot answer again.
    # What is sent to the open chats goes once the change is committed.

    def take_over(self) -> None:
        self.person_until = _person_until()
        self.save(update_fields=["person_until"])
        self._tell_chats({"type": live.PERSON_CHANGED, "present": True})

    def hand_back(self) -> None:
        # Now rather than None: the conversation keeps the mark of a take-over (the consumer
        # then tells a reconnecting widget that nobody is there).
        self.person_until = timezone.now()
        self.save(update_fields=["person_until"])
        self._tell_chats({"type": live.PERSON_CHANGED, "present": False})

    def say(self, text: str) -> Message:
        """A message from a person of the shop (a hand-off's reply, or during a take-over): the
        one place a `shop` message is made. Stored, sent to the customer's open chats, and a
        take-over kept alive. Emailing it is the caller's (a hand-off's reply)."""
        message = Message.objects.create(
            conversation=self, role=Message.SHOP, ask_id=f"shop-{uuid.uuid4().hex[:20]}", text=text
        )
        if self.person_present:
            Conversation.objects.filter(pk=self.pk).update(person_until=_person_until())
        self._tell_chats({"type": live.SHOP_MESSAGE, "message": message.pk, "text": message.text})
        return message

    def _tell_chats(self, event: dict) -> None:
        group = self.group
        transaction.on_commit(lambda: live.send(group, event))

    def answer_to(self, ask_id: str) -> Message | None:
        """The stored answer to that ask of this conversation, if there is one."""
        return self.messages.filter(role=Message.BOT, ask_id=ask_id).first()

    def as_export(self) -> dict:
        """The conversation for its customer (docs/privacy.md, "Export")."""
        return {
            "id": str(self.pk),
            "shop": self.shop.name,
            "started": self.started.isoformat(),
            "page_url": self.page_url,
            "user_agent": self.user_agent,
            "messages": [message.as_export() for message in self.messages.all()],
        }


# wording_key() in SQL: lower case, spacing collapsed.
WORDING_KEY = Lower(
    Func(
        Trim("text"), Value(r"\s+"), Value(" "), Value("g"),
        function="regexp_replace", output_field=models.TextField(),
    )
)  # fmt: skip


def month_start(now: datetime | None = None) -> datetime:
    """Midnight of the first day of the current month, in TIME_ZONE."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _person_until() -> datetime:
    """When a take-over lapses if the person says nothing more."""
    return timezone.now() + timedelta(minutes=settings.HANDOFF_TAKEOVER_IDLE_MINUTES)


class MessageQuerySet(QuerySet):
    def claude_tokens(self, shop: Shop, now: datetime | None = None) -> int:
        """The shop's Claude spend this calendar month (in TIME_ZONE): the tokens (input plus
        output) its stored answers say Claude used. Its budget is `Shop.within_token_budget`."""
        total = self.filter(
            conversation__shop=shop, role=Message.BOT, created__gte=month_start(now)
        ).aggregate(total=Sum(F("input_tokens") + F("output_tokens")))["total"]
        return total or 0

    def remove_phrasings(self, accepted: Collection[tuple[int, str]] = ()) -> Counter[str]:
        """Take out of FAQ entries the alternative phrasings that are these customer questions'
        words (case and spacing aside): those written from them in "Unanswered questions" (the
        entry that resolved them) and the `accepted` (entry id, wording key) pairs of their
        clicks. A phrasing that another conversation's question in the shop also used stays.
        Saving the entry re-embeds it and rebuilds its shop's search index after the commit."""
        wanted: dict[int, set[str]] = {}
        for entry_id, key in accepted:
            wanted.setdefault(entry_id, set()).add(key)
        resolved = self.filter(role=Message.USER, resolved_by__isnull=False)
        for entry_id, text in resolved.values_list("resolved_by_id", "text"):
            wanted.setdefault(entry_id, set()).add(wording_key(text))
        if not wanted:
            return Counter()
        said_elsewhere = set(
            Message.objects.filter(
                role=Message.USER,
                conversation__shop__in=FAQEntry.objects.filter(pk__in=wanted).values("shop"),
            )
            .exclude(conversation__in=self.values("conversation"))
            .annotate(key=WORDING_KEY)
            .filter(key__in=set().union(*wanted.values()))
            .values_list("key", flat=True)
        )
        removed: Counter[str] = Counter()
        for entry in FAQEntry.objects.select_for_update().filter(pk__in=wanted).order_by("pk"):
            drop = wanted[entry.pk] - said_elsewhere
            lines = entry.alternative_list
            kept = [line for line in lines if wording_key(line) not in drop]
            if len(kept) < len(lines):
                removed["FAQ phrasings"] += len(lines) - len(kept)
                entry.alternatives = "\n".join(kept)
                entry.save()
        return removed

    def unhelpful_answers(self) -> MessageQuerySet:
        """Bot answers that did not help: fell back, unsure, or a thumbs-down."""
        return self.filter(role=Message.BOT).filter(
            Q(mode=Message.FALLBACK) | Q(confident=False) | Q(feedback=Message.DOWN)
        )

    def unanswered(self, shop: Shop | int | None) -> MessageQuerySet:
        """The shop's unanswered questions: customer questions whose answer did not help and
        for which nobody has written an FAQ entry yet (the owner's "Unanswered questions").
        `None`: every shop's (the worker embeds them, owner/tasks.py)."""
        same_ask = {"conversation": OuterRef("conversation"), "ask_id": OuterRef("ask_id")}
        answer = Message.objects.filter(role=Message.BOT, **same_ask)
        of_shop = {} if shop is None else {"conversation__shop": shop}
        return (
            self.filter(
                **of_shop,
                role=Message.USER,
                resolved_by__isnull=True,
                dismissed=False,
            )
            .filter(Exists(Message.objects.unhelpful_answers().filter(**same_ask)))
            # Why each question is unanswered, for the owner (one answer per ask: a unique
            # constraint).
            .annotate(
                answer_mode=Subquery(answer.values("mode")[:1]),
                answer_confident=Subquery(answer.values("confident")[:1]),
                answer_feedback=Subquery(answer.values("feedback")[:1]),
                # What the bot offered: the entries it answered from, or its "did you mean".
                answer_sources=Subquery(answer.values("sources")[:1]),
                answer_suggestions=Subquery(answer.values("suggestions")[:1]),
            )
        )


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "Customer"
        BOT = "bot", "Bot"
        # A person of the shop: a hand-off's reply, or a live take-over (Conversation.say).
        SHOP = "shop", "Shop"

    class Mode(models.TextChoices):
        """How an answer was made."""

        LLM = "llm", "Claude"
        FAQ = "faq", "FAQ answer"
        FALLBACK = "fallback", "Fallback"
        HOURS = "hours", "Opening hours"  # computed from the shop's hours (faq/hours/)

    class Feedback(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    # The short names the code reads (Message.BOT, Message.FALLBACK...): the same enum members.
    USER, BOT, SHOP = Role.USER, Role.BOT, Role.SHOP
    LLM, FAQ, FALLBACK, HOURS = Mode.LLM, Mode.FAQ, Mode.FALLBACK, Mode.HOURS
    UP, DOWN = Feedback.UP, Feedback.DOWN

    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="messages")
    role = models.CharField(max_length=4, choices=Role)
    # The client-made id of the ask; the question and its answer share it, which is how a re-sent
    # ask finds its stored answer instead of producing a second one.
    ask_id = models.CharField(max_length=64)
    text = models.TextField()
    sources = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=8, choices=Mode, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Best retrieval score")
    confident = models.BooleanField(null=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    feedback = models.CharField(max_length=4, choices=Feedback, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # Customer questions only: the question's multilingual-e5-small embedding, for grouping
    # unanswered questions by meaning (owner/unanswered.py; stored by the worker within a minute
    # of the question turning out unanswered, owner/tasks.py), and the FAQ entry an owner wrote
    # to answer it.
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    resolved_by = models.ForeignKey(
        FAQEntry, models.SET_NULL, null=True, blank=True, related_name="resolved_questions"
    )
    # Customer questions only: the owner dismissed it as noise ("Unanswered questions": pizza,
    # the weather), so it is no longer listed there.
    dismissed = models.BooleanField(default=False)
    # A hand-off's reply (role shop) emailed to the customer by the worker
    # (widget/handoff_email.py's `email_customer`): queued, then sent, or why its last try failed.
    email_queued = models.DateTimeField(null=True, blank=True)
    emailed = models.DateTimeField(null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_error = models.TextField(blank=True)
    # Bot answers: the "did you mean" entries offered with it, [{"id", "question"}].
    suggestions = models.JSONField(default=list, blank=True)
    # Customer questions sent by clicking a suggestion: the entry asked for, and the customer's
    # own earlier question it was suggested for (what the owner may teach the bot).
    entry = models.ForeignKey(
        FAQEntry, models.SET_NULL, null=True, blank=True, related_name="clicks"
    )
    suggested_for = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="clicks"
    )

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "role", "ask_id"], name="one_message_per_role_and_ask"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"

    def as_export(self) -> dict:
        """The message for its customer (docs/privacy.md, "Export")."""
        return {
            "time": self.created.isoformat(),
            "from": {self.USER: "customer", self.BOT: "bot", self.SHOP: "shop"}[self.role],
            "text": self.text,
            "feedback": self.feedback or None,
        }


class CustomerWordingQuerySet(QuerySet):
    def expired(self, days: int | None = None, now: datetime | None = None) -> QuerySet:
        """Wordings not clicked within the retention (ConversationQuerySet.expired's rule, on
        `last_seen`), except those the owner accepted: those are the owner's phrasing now."""
        days = settings.CONVERSATION_RETENTION_DAYS if days is None else days
        return self.filter(
            past_retention("last_seen", "entry__shop", days, now or timezone.now())
        ).exclude(status=CustomerWording.ACCEPTED)


class CustomerWording(models.Model):
    """A customer's own question that led, through a "did you mean" click, to an FAQ entry.

    Nothing is learned from it until the owner accepts it on the entry's admin page: it then
    becomes one of the entry's alternative phrasings (re-embedded like any other). A thumbs-down
    on the answer the click led to takes the pairing off the list to accept.
    """

    class Status(models.TextChoices):
        NEW = "new", "Waiting for the owner"
        ACCEPTED = "accepted", "Accepted as a phrasing"
        DISMISSED = "dismissed", "Dismissed by the owner"
        DISLIKED = "disliked", "The customer gave the answer a thumbs-down"

    NEW, ACCEPTED, DISMISSED, DISLIKED = (
        Status.NEW,
        Status.ACCEPTED,
        Status.DISMISSED,
        Status.DISLIKED,
    )

    entry = models.ForeignKey(FAQEntry, models.CASCADE, related_name="customer_wordings")
    text = models.CharField(max_length=1000)
    key = models.CharField(max_length=1000, editable=False)
    count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=9, choices=Status, default=Status.NEW)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    objects = CustomerWordingQuerySet.as_manager()

    class Meta:
        ordering = ["-count", "-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "key"], name="one_wording_per_entry")
        ]

    def __str__(self) -> str:
        return f"{self.text[:60]} -> {self.entry_id}"

    # A client address counts a wording once in this long, across its conversations (counted by
    # lib/ratelimit.py, where the address is only part of a keyed hash, forgotten after it).
    CLIENT_WINDOW_SECONDS = 24 * 3600

    @classmethod
    def record(
        cls,
        entry: FAQEntry,
        text: str,
        click: Message | None = None,
        client: str | None = None,
    ) -> CustomerWording | None:
        """Count one customer's click from `text` to `entry`; None when the entry already has
        that wording. Customers are counted, not clicks: `click` (the clicking question, already
        linked to the question it was suggested for) counts only as its conversation's first
        click from this wording to this entry, and as its client address's first within
        CLIENT_WINDOW_SECONDS (`first_from`). A click that does not count still keeps the wording
        seen."""
        key = wording_key(text)
        if not key or key in entry.wording_keys():
            return None
        counts = click is None or cls.first_from(entry, key, click, client)
        now = timezone.now()
        with transaction.atomic():
            wording, _ = cls.objects.get_or_create(
                entry=entry, key=key, defaults={"text": " ".join(text.split())[:1000]}
            )
            cls.objects.filter(pk=wording.pk).update(count=F("count") + int(counts), last_seen=now)
        wording.refresh_from_db()
        return wording

    @classmethod
    def first_from(cls, entry: FAQEntry, key: str, click: Message, client: str | None) -> bool:
        """Whether `click` is its customer's first from the wording `key` to `entry`: no earlier
        such click in its conversation, and none from its client address (when known) within
        CLIENT_WINDOW_SECONDS, in any conversation (across processes with REDIS_URL)."""
        earlier = (
            Message.objects.filter(
                conversation_id=click.conversation_id,
                role=Message.USER,
                entry=entry,
                suggested_for__isnull=False,
            )
            .exclude(pk=click.pk)
            .values_list("suggested_for__text", flat=True)
        )
        if any(wording_key(text) == key for text in earlier):
            return False
        if not client:
            return True
        mark = salted_hmac("customer-wording", f"{entry.pk}:{key}:{client}").hexdigest()[:32]
        seen = ratelimit.hit(f"wording:{mark}", cls.CLIENT_WINDOW_SECONDS)
        return seen is None or seen <= 1  # Redis down: counted, as before

    @classmethod
    def disliked(cls, answer: Message) -> int:
        """A thumbs-down on `answer`: if a click led to it, that pairing is no longer offered
        to the owner. Returns how many pairings were taken off."""
        click = (
            Message.objects.filter(
                conversation_id=answer.conversation_id,
                role=Message.USER,
                ask_id=answer.ask_id,
                entry__isnull=False,
                suggested_for__isnull=False,
            )
            .select_related("suggested_for")
            .first()
        )
        if click is None:
            return 0
        return cls.objects.filter(
            entry_id=click.entry_id, key=wording_key(click.suggested_for.text), status=cls.NEW
        ).update(status=cls.DISLIKED)

    @classmethod
    def forget_clicks(cls, questions: QuerySet) -> tuple[Counter[str], set[tuple[int, str]]]:
        """Take these customer questions' "did you mean" clicks out of the wordings they were
        counted in: the count lowered, or the wording deleted when only they had said it.
        Returns what changed, per kind, and the (entry id, key) of the deleted wordings the owner
        had accepted (their words are among that entry's phrasings)."""
        # A conversation counted a wording once (`record`), however often it clicked.
        clicks = Counter(
            (entry_id, key)
            for entry_id, _, key in {
                (entry_id, conversation_id, wording_key(text))
                for entry_id, conversation_id, text in questions.filter(
                    entry__isnull=False, suggested_for__isnull=False
                ).values_list("entry_id", "conversation_id", "suggested_for__text")
            }
        )
        changed: Counter[str] = Counter()
        accepted: set[tuple[int, str]] = set()
        for (entry_id, key), clicked in sorted(clicks.items()):
            wording = cls.objects.select_for_update().filter(entry_id=entry_id, key=key).first()
            if wording is None:
                continue
            if wording.count > clicked:
                cls.objects.filter(pk=wording.pk).update(count=F("count") - clicked)
                changed["customer wordings (count lowered)"] += 1
                continue
            wording.delete()
            changed["customer wordings"] += 1
            if wording.status == cls.ACCEPTED:
                accepted.add((entry_id, key))
        return changed, accepted

    def accept(self) -> None:
        """Make the wording one of the entry's alternative phrasings (re-embedded on commit)."""
        with transaction.atomic():
            FAQEntry.objects.select_for_update().get(pk=self.entry_id).add_phrasings([self.text])
            self.status = self.ACCEPTED
            self.save(update_fields=["status"])

    def dismiss(self) -> None:
        self.status = self.DISMISSED
        self.save(update_fields=["status"])


class ReplyRefused(Exception):
    """An email reply's token does not lead to a request that may be answered; `reason` is one
    of REASONS' keys, and the sentence is what the sender is told."""

    REASONS = {
        "unknown": "The address you replied to is not one of ours (or it was mistyped): the "
        "reply was not posted.",
        "expired": "The customer request you replied to no longer exists (old conversations are "
        "deleted after a while): the reply was not posted.",
        "closed": "The customer request you replied to is closed, so the reply was not posted. "
        "Reopen it in the admin and answer there.",
        "other_shop": "The address you replied to belongs to a request of a shop you are not an "
        "owner of: the reply was not posted.",
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.REASONS[reason])
        self.reason = reason


def _reply_mac(handoff_id: int, shop_id: int, secret: str) -> str:
    """120 bits of HMAC-SHA256 over the request and its shop, keyed by SECRET_KEY, in lower-case
    base32: a mail system may change the case of an address's local part."""
    digest = salted_hmac(
        "widget.Handoff.reply_token", f"{handoff_id}-{shop_id}", secret=secret, algorithm="sha256"
    ).digest()
    return base64.b32encode(digest[:15]).decode().lower()


class HandoffQuerySet(QuerySet):
    def from_address(self, address: str) -> HandoffQuerySet:
        """Requests left with this email address (any case) or phone number (spacing and
        punctuation aside: phone_key). ValueError if the address is neither."""
        address = address.strip()
        if address_kind(address) == "email":
            return self.filter(email__iexact=address)
        return self.alias(phone_key=PHONE_KEY).filter(phone_key=phone_key(address))

    def by_reply_token(self, token: str) -> Handoff:
        """The request a reply address's token names (`Handoff.reply_token`), if it may still be
        answered; else ReplyRefused. Tokens made with a key of SECRET_KEY_FALLBACKS still hold
        after a key rotation."""
        try:
            handoff_part, shop_part, mac = token.lower().split("-")
            handoff_id, shop_id = base36_to_int(handoff_part), base36_to_int(shop_part)
        except ValueError:
            raise ReplyRefused("unknown") from None
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        if not any(hmac.compare_digest(mac, _reply_mac(handoff_id, shop_id, key)) for key in keys):
            raise ReplyRefused("unknown")
        handoff = self.select_related("conversation__shop").filter(pk=handoff_id).first()
        if handoff is None:
            raise ReplyRefused("expired")
        if handoff.conversation.shop_id != shop_id:
            raise ReplyRefused("other_shop")
        if handoff.status == Handoff.CLOSED:
            raise ReplyRefused("closed")
        return handoff


class Handoff(models.Model):
    """A hand-off to a person: the customer left a question and a way to reply (the owner's
    admin calls it a "customer request").

    Saved before anything else happens (widget/chat/handoff.py); then the owner is emailed
    (widget/handoff_email.py), on a thread so the chat never waits, retried on failure, the state
    kept here for the admin's inbox (owner/handoffs.py). The owner's reply becomes a `shop`
    message in the same conversation (`reply`)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ANSWERED = "answered", "Answered"
        CLOSED = "closed", "Closed"

    OPEN, ANSWERED, CLOSED = Status.OPEN, Status.ANSWERED, Status.CLOSED

    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="handoffs")
    # The client's id of the `handoff` frame: a re-sent frame is saved once.
    client_id = models.CharField(max_length=64)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=100, blank=True)
    note = models.TextField("question")
    status = models.CharField(max_length=8, choices=Status, default=Status.OPEN, db_index=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    answered = models.DateTimeField(null=True, blank=True)
    # The owner's notification: sent when `notified` is set; else `notify_error` says why not
    # yet, and no new attempt starts before `notify_after` (also a lease: one sender at a time).
    notified = models.DateTimeField("owner notified", null=True, blank=True)
    notify_attempts = models.PositiveSmallIntegerField(default=0)
    notify_error = models.TextField(blank=True)
    notify_after = models.DateTimeField(null=True, blank=True)
    # The one reminder to the owners about a request still unanswered (HANDOFF_REMINDER_HOURS).
    reminded = models.DateTimeField("owner reminded", null=True, blank=True)

    objects = HandoffQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "customer request"
        verbose_name_plural = "customer requests"
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="one_handoff_per_client_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact}: {self.note[:60]}"

    @property
    def contact(self) -> str:
        return self.email or self.phone

    @property
    def shop(self) -> Shop:
        return self.conversation.shop

    @property
    def reply_token(self) -> str:
        """What makes this request's reply address (reply+TOKEN@INBOUND_EMAIL_DOMAIN):
        unguessable without SECRET_KEY, tied to the request and its shop, refused once the
        request is closed (`Handoff.objects.by_reply_token`)."""
        shop_id = self.conversation.shop_id
        mac = _reply_mac(self.pk, shop_id, settings.SECRET_KEY)
        return f"{int_to_base36(self.pk)}-{int_to_base36(shop_id)}-{mac}"

    @property
    def reply_address(self) -> str:
        """The address a reply by email goes to; "" with INBOUND_EMAIL_DOMAIN unset (off)."""
        domain = settings.INBOUND_EMAIL_DOMAIN
        return f"reply+{self.reply_token}@{domain}" if domain else ""

    def reply(self, text: str) -> Message:
        """The owner's answer: a `shop` message of the conversation (Conversation.say, sent to
        the customer's open chats once committed); the request is then answered. Emailing it to
        the customer is the caller's."""
        with transaction.atomic():
            message = self.conversation.say(text)
            self.status, self.answered = self.ANSWERED, timezone.now()
            self.save(update_fields=["status", "answered"])
        return message

    def close(self) -> None:
        self.status = self.CLOSED
        self.save(update_fields=["status"])

    def reopen(self) -> None:
        """Open again: answered if it was, else open."""
        self.status = self.ANSWERED if self.answered else self.OPEN
        self.save(update_fields=["status"])

    def as_export(self) -> dict:
        """The request for its customer (docs/privacy.md, "Export")."""
        return {
            "conversation": str(self.conversation_id),
            "created": self.created.isoformat(),
            "email": self.email,
            "phone": self.phone,
            "name": self.name,
            "question": self.note,
            "status": self.status,
            "answered": self.answered.isoformat() if self.answered else None,
        }


class InboundEmail(models.Model):
    """An email reply to a request's reply address (widget/inbound_email.py): posted into the
    conversation, or held here for the owner when its sender is not one of the shop's owners nor
    its contact address (shown on the request's page, where an owner may post or dismiss it).
    Refused mail (a bad token, an auto-reply) is only logged: it has no request to belong to."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Being posted"
        POSTED = "posted", "Posted to the customer"
        HELD = "held", "Held: not from an owner of the shop"
        DISMISSED = "dismissed", "Dismissed by the owner"

    RECEIVED, POSTED, HELD, DISMISSED = (
        Status.RECEIVED,
        Status.POSTED,
        Status.HELD,
        Status.DISMISSED,
    )

    handoff = models.ForeignKey(Handoff, models.CASCADE, related_name="inbound_emails")
    # The sender's address (From:), the header's Message-ID (a redelivered email is posted once).
    sender = models.CharField(max_length=254)
    email_id = models.CharField("Message-ID", max_length=255, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    # The reply itself: the quoted message and the signature taken off, HTML turned to text.
    text = models.TextField()
    # Names of the attachments that were dropped (the chat carries text only).
    dropped_attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=9, choices=Status, default=Status.RECEIVED)
    received = models.DateTimeField(default=timezone.now)
    posted = models.ForeignKey(Message, models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-received"]
        verbose_name = "email reply"
        constraints = [
            models.UniqueConstraint(
                fields=["handoff", "email_id"],
                condition=~Q(email_id=""),
                name="one_inbound_email_per_message_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender}: {self.text[:60]}"


class SenderNotice(models.Model):
    """An explanation emailed to the sender of an email that was not posted (widget/
    inbound_email.py). Kept a day, to cap them at INBOUND_EMAIL_NOTICES_PER_HOUR per address: a
    forged sender must not turn ShopBot into a source of backscatter."""

    address = models.CharField(max_length=254, db_index=True)
    sent = models.DateTimeField(default=timezone.now, db_index=True)

    @classmethod
    def allow(cls, address: str) -> bool:
        """Record one more notice to `address`, unless the hour's cap is reached (False)."""
        now = timezone.now()
        cls.objects.filter(sent__lt=now - timedelta(days=1)).delete()
        cap = settings.INBOUND_EMAIL_NOTICES_PER_HOUR
        recent = cls.objects.filter(address=address, sent__gte=now - timedelta(hours=1))
        if cap <= 0 or recent.count() >= cap:
            return False
        cls.objects.create(address=address, sent=now)
        return True
