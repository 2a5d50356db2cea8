from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from pgvector.django import VectorField

from faq.models import FAQEntry, Shop, wording_key


class Conversation(models.Model):
    # The id travels to the browser and back (resume), so it is random rather than a counter:
    # nobody can read another visitor's transcript by guessing.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    shop = models.ForeignKey(Shop, models.CASCADE, related_name="conversations")
    started = models.DateTimeField(auto_now_add=True, db_index=True)
    page_url = models.URLField(max_length=500, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    # Live take-over: while this is in the future a person of the shop is in the conversation
    # and the bot stays silent. Each message of theirs moves it HANDOFF_TAKEOVER_IDLE_MINUTES
    # ahead; handing back clears it.
    person_until = models.DateTimeField(null=True, blank=True)

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
        what the shop says reaches the customer through it (Handoff.reply)."""
        return f"chat.{self.pk}"

    def answer_to(self, ask_id: str) -> Message | None:
        """The stored answer to that ask of this conversation, if there is one."""
        return self.messages.filter(role=Message.BOT, ask_id=ask_id).first()


class MessageQuerySet(QuerySet):
    def unhelpful_answers(self) -> MessageQuerySet:
        """Bot answers that did not help: fell back, unsure, or a thumbs-down."""
        return self.filter(role=Message.BOT).filter(
            Q(mode=Message.FALLBACK) | Q(confident=False) | Q(feedback=Message.DOWN)
        )

    def unanswered(self, shop: Shop | int) -> MessageQuerySet:
        """The shop's unanswered questions: customer questions whose answer did not help and
        for which nobody has written an FAQ entry yet (the owner's "Unanswered questions")."""
        same_ask = {"conversation": OuterRef("conversation"), "ask_id": OuterRef("ask_id")}
        answer = Message.objects.filter(role=Message.BOT, **same_ask)
        return (
            self.filter(conversation__shop=shop, role=Message.USER, resolved_by__isnull=True)
            .filter(Exists(Message.objects.unhelpful_answers().filter(**same_ask)))
            # Why each question is unanswered, for the owner (one answer per ask: a unique
            # constraint).
            .annotate(
                answer_mode=Subquery(answer.values("mode")[:1]),
                answer_confident=Subquery(answer.values("confident")[:1]),
                answer_feedback=Subquery(answer.values("feedback")[:1]),
            )
        )


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "Customer"
        BOT = "bot", "Bot"
        # A person of the shop: a customer request's reply, or a live take-over (Handoff).
        SHOP = "shop", "Shop"

    class Mode(models.TextChoices):
        """How an answer was made."""

        LLM = "llm", "Claude"
        FAQ = "faq", "FAQ answer"
        FALLBACK = "fallback", "Fallback"

    class Feedback(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    # The short names the code reads (Message.BOT, Message.FALLBACK...): the same enum members.
    USER, BOT, SHOP = Role.USER, Role.BOT, Role.SHOP
    LLM, FAQ, FALLBACK = Mode.LLM, Mode.FAQ, Mode.FALLBACK
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
    # Customer questions only: the query's embedding, for grouping unanswered questions by meaning
    # (filled when first needed), and the FAQ entry an owner wrote to answer it.
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    resolved_by = models.ForeignKey(
        FAQEntry, models.SET_NULL, null=True, blank=True, related_name="resolved_questions"
    )
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

    # The two ways the chat protocol shows a message (docs/protocol.md). `shop` is the
    # conversation's, passed in so that no query runs from async code; `site` is this ShopBot
    # site's origin for the sources' links ("" makes them paths), worked out when sent, so a
    # change of where the FAQ lives applies to earlier answers too.

    def history_frame(self, shop: Shop, site: str) -> dict:
        """An item of the `ready` frame's history."""
        if self.role == self.USER:
            return {"role": "user", "id": self.ask_id, "text": self.text}
        if self.role == self.SHOP:  # a person of the shop (a customer request's reply)
            return {"role": "shop", "id": self.ask_id, "text": self.text, "message": self.pk}
        return {
            "role": "bot",
            "id": self.ask_id,
            "text": self.text,
            "message": self.pk,
            "sources": shop.with_urls(self.sources, site),
            "mode": self.mode,
            "suggestions": self.suggestions,
            "feedback": self.feedback or None,
        }

    def answer_frame(self, shop: Shop, site: str) -> dict:
        """The `answer` frame of a bot message, with the shop's contact route."""
        return {
            "type": "answer",
            "id": self.ask_id,
            "message": self.pk,
            "text": self.text,
            "sources": shop.with_urls(self.sources, site),
            "mode": self.mode,
            "suggestions": self.suggestions,
            "contact": shop.contact(),
        }


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

    class Meta:
        ordering = ["-count", "-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "key"], name="one_wording_per_entry")
        ]

    def __str__(self) -> str:
        return f"{self.text[:60]} -> {self.entry_id}"

    @classmethod
    def record(cls, entry: FAQEntry, text: str) -> CustomerWording | None:
        """Count one click from `text` to `entry`; None when the entry already has that wording."""
        key = wording_key(text)
        known = {wording_key(t) for t in [entry.question, *entry.alternative_list]}
        if not key or key in known:
            return None
        now = timezone.now()
        with transaction.atomic():
            wording, _ = cls.objects.get_or_create(
                entry=entry, key=key, defaults={"text": " ".join(text.split())[:1000]}
            )
            cls.objects.filter(pk=wording.pk).update(count=F("count") + 1, last_seen=now)
        wording.refresh_from_db()
        return wording

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

    def accept(self) -> None:
        """Make the wording one of the entry's alternative phrasings (re-embedded on commit)."""
        with transaction.atomic():
            entry = FAQEntry.objects.select_for_update().get(pk=self.entry_id)
            if entry.add_phrasings([self.text]):
                entry.save()
            self.status = self.ACCEPTED
            self.save(update_fields=["status"])

    def dismiss(self) -> None:
        self.status = self.DISMISSED
        self.save(update_fields=["status"])


class Handoff(models.Model):
    """A customer request: the customer left a question and a way to reply, for a person.

    Saved before anything else happens; then the owner is emailed (widget/notify.py), on a thread
    so the chat never waits, retried on failure, the state kept here for the admin's inbox. The
    owner's reply becomes a `shop` message in the same conversation (`reply`)."""

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

    def reply(self, text: str) -> Message:
        """Save the owner's answer as a `shop` message of the conversation; the request is then
        answered. Pushing it to the customer's socket and email is the caller's (after commit)."""
        with transaction.atomic():
            message = Message.objects.create(
                conversation_id=self.conversation_id,
                role=Message.SHOP,
                ask_id=f"shop-{uuid.uuid4().hex[:20]}",
                text=text,
            )
            self.status, self.answered = self.ANSWERED, timezone.now()
            self.save(update_fields=["status", "answered"])
        return message

    def close(self) -> None:
        self.status = self.CLOSED
        self.save(update_fields=["status"])
