from __future__ import annotations

import hashlib
import re
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from pgvector.django import HnswIndex, VectorField


def new_public_key() -> str:
    # 128 bits of randomness: the key is public (it sits in the shop's page), but it must not be
    # guessable or enumerable.
    return "pk_" + secrets.token_urlsafe(16)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def default_monthly_tokens() -> int:
    """A new shop's Claude budget: the CLAUDE_DEFAULT_MONTHLY_TOKENS setting."""
    return settings.CLAUDE_DEFAULT_MONTHLY_TOKENS


MIN_SENTENCE_WORDS = 3
# A sentence ends at ., ! or ? followed by a space and a capital, a digit or an opening mark (so
# "a.m." and "e.g. roses" stay whole), or at a line break (list items, paragraphs).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\u201c])|\s*\n\s*")


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer, each stripped; very short fragments ("Yes.") are dropped,
    as they match anything."""
    parts = (part.strip(" -*\u2022\t") for part in _SENTENCE_END.split(text))
    return [part for part in parts if len(part.split()) >= MIN_SENTENCE_WORDS]


class Shop(models.Model):
    name = models.CharField(max_length=100)
    public_key = models.CharField(
        max_length=40, unique=True, default=new_public_key, editable=False
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Websites allowed to embed the chat, one per line, e.g. https://www.example.com",
    )
    bot_name = models.CharField(max_length=60, default="Assistant")
    greeting = models.CharField(max_length=300, default="Hi! Ask me anything about our shop.")
    suggestions = models.TextField(
        blank=True, help_text="Starter questions shown before the first message, one per line."
    )
    accent_color = models.CharField(
        max_length=7,
        default="#2f6f4f",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #2f6f4f.")],
    )
    position = models.CharField(
        max_length=5, choices=[("right", "Bottom right"), ("left", "Bottom left")], default="right"
    )
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)
    contact_url = models.URLField(blank=True)
    fallback_message = models.TextField(
        default="I'm not sure about that one, and I'd rather not guess. "
        "A person from our team will be happy to help."
    )
    language = models.CharField(max_length=10, default="en")
    use_claude = models.BooleanField(
        "answer with Claude",
        default=True,
        help_text="Off: answers are the best matching FAQ entry, word for word.",
    )
    monthly_token_budget = models.PositiveIntegerField(
        "monthly Claude token budget",
        default=default_monthly_tokens,
        help_text="Claude tokens (input plus output) this shop may use per calendar month; 0 means "
        "no limit. Once spent, answers come straight from the FAQ until the month turns. New "
        "shops start with the CLAUDE_DEFAULT_MONTHLY_TOKENS setting.",
    )
    # The shop `load_demo` made (and `/` shows), whatever it is called now: found by this marker,
    # never by its name, so renaming any shop cannot break start-up.
    is_demo = models.BooleanField("demo shop", default=False, editable=False)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="shops")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_demo"], condition=models.Q(is_demo=True), name="one_demo_shop"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def origins(self) -> list[str]:
        return [o.rstrip("/").lower() for o in split_lines(self.allowed_origins)]

    @property
    def suggestion_list(self) -> list[str]:
        return split_lines(self.suggestions)

    def contact(self) -> dict[str, str]:
        """The handoff route, only the parts the owner filled in."""
        route = {
            "email": self.contact_email,
            "phone": self.contact_phone,
            "url": self.contact_url,
        }
        return {key: value for key, value in route.items() if value}


class FAQEntry(models.Model):
    shop = models.ForeignKey(Shop, models.CASCADE, related_name="entries")
    question = models.CharField(max_length=300)
    answer = models.TextField()
    alternatives = models.TextField(
        "alternative phrasings",
        blank=True,
        help_text="Other ways customers ask this, one per line. Each helps the bot find it.",
    )
    category = models.CharField(max_length=60, blank=True)
    published = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "FAQ entry"
        verbose_name_plural = "FAQ entries"
        ordering = ["category", "question"]
        indexes = [models.Index(fields=["shop", "published"])]

    def __str__(self) -> str:
        return self.question

    @property
    def alternative_list(self) -> list[str]:
        return split_lines(self.alternatives)

    def embedding_texts(self) -> list[tuple[str, str]]:
        """The texts that represent this entry in the vector index, as (kind, text) pairs."""
        question = self.question.strip()
        texts = [
            (FAQVector.QUESTION, question),
            (FAQVector.QUESTION_ANSWER, f"{question}\n{self.answer.strip()}"),
        ]
        texts += [(FAQVector.ALTERNATIVE, alt) for alt in self.alternative_list]
        # Each answer sentence with the question: customers ask about facts that sit inside
        # answers ("do you have donuts" when donuts appear only in the seasonal menu), which the
        # whole answer's vector blurs. (A sentence without its question matched other entries'
        # topics: measured worse, see docs/retrieval-research.md.) A one-sentence answer is the
        # "qa" text already.
        sentences = split_sentences(self.answer)
        if len(sentences) > 1:
            texts += [(FAQVector.QUESTION_SENTENCE, f"{question}\n{s}") for s in sentences]
        seen: set[tuple[str, str]] = set()
        return [t for t in texts if t[1] and not (t in seen or seen.add(t))]


class FAQVector(models.Model):
    """One embedded text of an entry. Rows are keyed by the text's hash and the model's name, so
    unchanged text is never embedded twice and a change of EMBEDDING_MODEL shows as stale."""

    QUESTION = "question"
    QUESTION_ANSWER = "qa"
    ALTERNATIVE = "alt"
    QUESTION_SENTENCE = "qsentence"
    KINDS = [
        (QUESTION, "Question"),
        (QUESTION_ANSWER, "Question and answer"),
        (ALTERNATIVE, "Alternative"),
        (QUESTION_SENTENCE, "Question and answer sentence"),
    ]

    entry = models.ForeignKey(FAQEntry, models.CASCADE, related_name="vectors")
    kind = models.CharField(max_length=10, choices=KINDS)
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    model_name = models.CharField(max_length=200)
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            HnswIndex(
                name="faq_vector_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["entry", "model_name"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:60]}"

    def save(self, *args, **kwargs):
        self.text_hash = text_hash(self.text)
        super().save(*args, **kwargs)
