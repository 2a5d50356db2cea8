from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from faq.models import FAQEntry, Shop


class Conversation(models.Model):
    # The id travels to the browser and back (resume), so it is random rather than a counter:
    # nobody can read another visitor's transcript by guessing.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    shop = models.ForeignKey(Shop, models.CASCADE, related_name="conversations")
    started = models.DateTimeField(auto_now_add=True, db_index=True)
    page_url = models.URLField(max_length=500, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"{self.shop} · {self.started:%Y-%m-%d %H:%M}"


class Message(models.Model):
    USER, BOT = "user", "bot"
    ROLES = [(USER, "Customer"), (BOT, "Bot")]
    LLM, FAQ, FALLBACK = "llm", "faq", "fallback"
    MODES = [(LLM, "Claude"), (FAQ, "FAQ answer"), (FALLBACK, "Fallback")]
    UP, DOWN = "up", "down"
    FEEDBACK = [(UP, "Thumbs up"), (DOWN, "Thumbs down")]

    conversation = models.ForeignKey(Conversation, models.CASCADE, related_name="messages")
    role = models.CharField(max_length=4, choices=ROLES)
    # The client-made id of the ask; the question and its answer share it, which is how a re-sent
    # ask finds its stored answer instead of producing a second one.
    ask_id = models.CharField(max_length=64)
    text = models.TextField()
    sources = models.JSONField(default=list, blank=True)
    mode = models.CharField(max_length=8, choices=MODES, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Best retrieval score")
    confident = models.BooleanField(null=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    feedback = models.CharField(max_length=4, choices=FEEDBACK, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # Customer questions only: the query's embedding, for grouping unanswered questions by meaning
    # (filled when first needed), and the FAQ entry an owner wrote to answer it.
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    resolved_by = models.ForeignKey(
        FAQEntry, models.SET_NULL, null=True, blank=True, related_name="resolved_questions"
    )

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "role", "ask_id"], name="one_message_per_role_and_ask"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"
