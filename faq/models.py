from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_noop
from pgvector.django import VectorField

from faq.text import wording_key


def new_public_key() -> str:
    # 128 bits of randomness: the key is public (it sits in the shop's page), but it must not be
    # guessable or enumerable.
    return "pk_" + secrets.token_urlsafe(16)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def unique_shop_slug(name: str, exclude_pk: int | None = None) -> str:
    """A slug for the shop's public FAQ page address: the name's, with -2, -3... if taken."""
    base = slugify(name)[:50].strip("-") or "shop"
    taken = set(
        Shop.objects.exclude(pk=exclude_pk)
        .filter(slug__startswith=base)
        .values_list("slug", flat=True)
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


# The FAQ page's opening hours section (faq/templates/faq/page.html).
HOURS_ANCHOR = "opening-hours"


def entry_anchor(entry_id: int) -> str:
    """The element id of an entry on the FAQ page and in the HTML export: stable across edits."""
    return f"faq-{entry_id}"


def normalise_origin(value: str) -> str | None:
    """scheme://host[:port], lowercase, default port dropped; None if not an http(s) origin
    (so also for "null", what sandboxed frames and file: pages send)."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def clean_origin(value: str) -> str:
    """A website the owner lists for the chat, as the origin browsers send (normalise_origin):
    a bare host or host:port means https:// (http only when written out), a path is dropped.
    Raises ValueError with a sentence for what is no website address."""
    text = value.strip()
    shown_text = text[:80]
    if "://" not in text:
        if text.lower().startswith(("http:", "https:")):
            raise ValueError(
                f'"{shown_text}": write it as https://host, e.g. https://www.example.com'
            )
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise ValueError(f'"{shown_text}" is not a website address.') from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f'"{shown_text}": only http:// and https:// websites can embed the chat.')
    host = parts.hostname or ""
    if parts.username or parts.password or not re.fullmatch(r"[a-z0-9.:-]+", host):
        raise ValueError(
            f'"{shown_text}" is not a website address: write one per line, like '
            "https://www.example.com (no wildcards, spaces or passwords)."
        )
    if "." not in host and ":" not in host and host != "localhost":
        raise ValueError(f'"{shown_text}": give the whole host name, e.g. www.{host}.com')
    origin = normalise_origin(text)
    if origin is None:
        raise ValueError(f'"{shown_text}" is not a website address.')
    return origin


def default_use_claude() -> bool:
    """A new shop answers with Claude only on a server that has an ANTHROPIC_API_KEY."""
    return bool(settings.ANTHROPIC_API_KEY)


def default_monthly_tokens() -> int:
    """A new shop's Claude budget: the CLAUDE_DEFAULT_MONTHLY_TOKENS setting."""
    return settings.CLAUDE_DEFAULT_MONTHLY_TOKENS


# Line breaks and other control characters: a one-line setting holds none.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

MIN_SENTENCE_WORDS = 3
# A sentence ends at ., ! or ? followed by a space and a capital, a digit or an opening mark (so
# "a.m." and "e.g. roses" stay whole), or at a line break (list items, paragraphs).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\u201c])|\s*\n\s*")


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer, each stripped; very short fragments ("Yes.") are dropped,
    as they match anything."""
    parts = (part.strip(" -*\u2022\t") for part in _SENTENCE_END.split(text))
    return [part for part in parts if len(part.split()) >= MIN_SENTENCE_WORDS]


# The defaults of a new shop's bot name, greeting, fallback and usual reply time, in English in
# the database; shown in the chat's language while the owner keeps them (Shop.bot_name_text,
# greeting_text, fallback_text, reply_time_text).
DEFAULT_BOT_NAME = gettext_noop("Assistant")
DEFAULT_GREETING = gettext_noop("Hi! Ask me anything about our shop.")
# One sentence that reads right whatever follows it: the "did you mean" buttons, the "Talk to a
# person" button, or both (an earlier default promised a person, then offered other questions;
# migration faq 0012 moves shops that kept it to this one).
DEFAULT_FALLBACK = gettext_noop("I'm not sure about that one, and I'd rather not guess.")
# Translators: the usual time a shop takes to answer a question left for a person, shown after
# "usually within" in the hand-off form and its confirmation.
DEFAULT_REPLY_TIME = gettext_noop("one business day")


def shown(value: str, default: str) -> str:
    """`value` as the customer sees it: translated into the active language while it is the
    default (English in the database), as written once the owner changed it."""
    return gettext(default) if value == default else value


class Shop(models.Model):
    class FAQLocation(models.TextChoices):
        HOSTED = "hosted", "The FAQ page ShopBot hosts (/faq/<slug>/)"
        OWN_PAGE = "own", "My own page (the address below)"

    class Position(models.TextChoices):
        RIGHT = "right", "Bottom right"
        LEFT = "left", "Bottom left"

    HOSTED, OWN_PAGE = FAQLocation.HOSTED, FAQLocation.OWN_PAGE

    name = models.CharField(max_length=100)
    slug = models.SlugField(
        max_length=60,
        unique=True,
        blank=True,
        help_text="The last part of the shop's public FAQ page's address, e.g. petal-stem in "
        "/faq/petal-stem/. Empty: made from the name.",
    )
    faq_location = models.CharField(
        "where the FAQ lives",
        max_length=10,
        choices=FAQLocation,
        default=FAQLocation.HOSTED,
        blank=True,  # a settings form saved without this field keeps the hosted page
        help_text='Where the chat\'s "From our FAQ" links point.',
    )
    faq_page_url = models.URLField(
        "your FAQ page's address",
        blank=True,
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Used when the FAQ lives on your own page. Paste the HTML export there and the "
        "links land on each entry.",
    )
    question_tried = models.DateTimeField(
        "last tried a question",
        null=True,
        blank=True,
        editable=False,
        help_text='When "Try a question" was last used on this shop (the set-up checklist).',
    )
    public_key = models.CharField(
        max_length=40, unique=True, default=new_public_key, editable=False
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Websites allowed to embed the chat, one per line, e.g. https://www.example.com "
        "(www.example.com means https://; write http:// for a site without https).",
    )
    bot_name = models.CharField(max_length=60, default=DEFAULT_BOT_NAME)
    greeting = models.CharField(max_length=300, default=DEFAULT_GREETING)
    suggestions = models.TextField(
        blank=True, help_text="Starter questions shown before the first message, one per line."
    )
    accent_color = models.CharField(
        max_length=7,
        default="#2f6f4f",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #2f6f4f.")],
    )
    position = models.CharField(max_length=5, choices=Position, default=Position.RIGHT)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)
    contact_url = models.URLField(blank=True)
    phone_callbacks = models.BooleanField(
        "accept phone call-backs",
        default=False,
        help_text="Customers who leave a question may give a phone number instead of an email.",
    )
    reply_time = models.CharField(
        "usual reply time",
        max_length=60,
        default=DEFAULT_REPLY_TIME,
        help_text='Shown to a customer who leaves a question: "usually within one business day".',
    )
    fallback_message = models.TextField(default=DEFAULT_FALLBACK)
    # One of settings.LANGUAGES (the admin offers only those; widget.chat.texts.chat_language).
    language = models.CharField(max_length=10, default="en")
    use_claude = models.BooleanField(
        "answer with Claude",
        default=default_use_claude,
        help_text="Off: answers are the best matching FAQ entry, word for word.",
    )
    monthly_token_budget = models.PositiveIntegerField(
        "monthly Claude token budget",
        default=default_monthly_tokens,
        help_text="Claude tokens (input plus output) this shop may use per calendar month; 0 means "
        "no limit. Once spent, answers come straight from the FAQ until the month turns. New "
        "shops start with the CLAUDE_DEFAULT_MONTHLY_TOKENS setting.",
    )
    # Privacy (docs/privacy.md): how long this shop's conversations are kept, and the notice
    # the chat shows before the first message.
    retention_days = models.PositiveIntegerField(
        "keep conversations for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Conversations (with their messages and customer requests) older than this "
        "are deleted daily. Empty: the site's CONVERSATION_RETENTION_DAYS; a shop may only "
        "keep them for less.",
    )
    privacy_notice = models.CharField(
        "privacy notice",
        max_length=200,
        blank=True,
        help_text='One line shown in the chat before the first message, e.g. "We keep this '
        'conversation for 90 days to answer you."',
    )
    privacy_url = models.URLField(
        "privacy page's address",
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The notice links here (your privacy policy).",
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

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = unique_shop_slug(self.name, exclude_pk=self.pk)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("faq-page", args=[self.slug])

    def embed_snippet(self, site: str) -> SafeString:
        """The one tag a website adds to show this shop's chat; `site` is ShopBot's own address.
        data-color paints the launcher before the first connection tells the shop's colour."""
        return format_html(
            '<script src="{}/widget.js" data-shop="{}" data-color="{}" async></script>',
            site,
            self.public_key,
            self.accent_color,
        )

    def clean(self) -> None:
        errors = {}
        if self.faq_location == self.OWN_PAGE and not self.faq_page_url:
            errors["faq_page_url"] = "Give the address of your FAQ page, or choose the hosted page."
        site_days = settings.CONVERSATION_RETENTION_DAYS
        if self.retention_days and site_days and self.retention_days > site_days:
            errors["retention_days"] = (
                f"At most {site_days} days: this site deletes conversations after that."
            )
        if _CONTROL.search(self.privacy_notice):
            errors["privacy_notice"] = "Write the notice on one line."
        origins, refused = [], []
        for line in split_lines(self.allowed_origins):
            try:
                origin = clean_origin(line)
            except ValueError as error:
                refused.append(str(error))
            else:
                if origin not in origins:
                    origins.append(origin)
        if refused:
            errors["allowed_origins"] = refused
        else:
            self.allowed_origins = "\n".join(origins)
        if self.privacy_url and not self.privacy_notice.strip():
            errors["privacy_notice"] = "Write the sentence that links to your privacy page."
        if errors:
            raise ValidationError(errors)

    def privacy_notice_frame(self) -> dict[str, str] | None:
        """The notice the chat shows before the first message (the `ready` frame's
        `bot.privacy`): {"text", "url"} ("url" may be ""), or None when the shop has none."""
        text = " ".join(self.privacy_notice.split())
        if not text:
            return None
        url = self.privacy_url if self.privacy_url.startswith(("http://", "https://")) else ""
        return {"text": text, "url": url}

    def faq_entry_url(self, entry_id: int, site: str) -> str:
        """Where "From our FAQ" links for that entry: the owner's page if they chose it (and gave
        an http/https address), else the hosted page on `site` (e.g. https://bot.example.com)."""
        if self.faq_location == self.OWN_PAGE and self.faq_page_url.startswith(
            ("http://", "https://")
        ):
            return f"{self.faq_page_url.split('#')[0]}#{entry_anchor(entry_id)}"
        return f"{site}{self.get_absolute_url()}#{entry_anchor(entry_id)}"

    def with_urls(self, sources: list[dict], site: str) -> list[dict]:
        """An answer's stored sources with each entry's link added (worked out when sent, so a
        change of where the FAQ lives applies to old answers too)."""
        return [
            {**s, "url": self.faq_entry_url(s["id"], site)}
            if "id" in s
            else {**s, "url": self.hours_url(site)}
            if s.get("hours")
            else s
            for s in sources
        ]

    def hours_url(self, site: str) -> str:
        """Where an answer from the opening hours links: the hosted FAQ page's hours section
        (an owner's own page need not show the hours)."""
        return f"{site}{self.get_absolute_url()}#{HOURS_ANCHOR}"

    @property
    def origins(self) -> list[str]:
        return [o.rstrip("/").lower() for o in split_lines(self.allowed_origins)]

    def within_token_budget(self, tokens_used: int) -> bool:
        """The monthly Claude budget (monthly_token_budget, 0 = no limit): False once this
        month's spend, `tokens_used` (the chat's stored answers know it:
        `Message.objects.claude_tokens(shop)`), has reached it. The pipeline then answers from
        the FAQ (mode "faq" or "fallback"), with no error, until the month turns; asks already
        streaming finish, so a shop can overshoot by a few answers at most."""
        budget = self.monthly_token_budget
        return budget == 0 or tokens_used < budget

    def listed_origin(self, origin: str) -> str | None:
        """`origin`, normalised, if it is one of the shop's allowed websites; else None."""
        wanted = normalise_origin(origin)
        listed = wanted is not None and wanted in {normalise_origin(o) for o in self.origins}
        return wanted if listed else None

    def allows_origin(self, origin: str | None, site: str | None) -> bool:
        """May a page of `origin` open this shop's chat? Yes for the shop's allowed websites and
        for `site`, this ShopBot site itself (its storefront and admin pages). Yes without an
        Origin too: browsers always send one on websockets, so it is not a browser (curl, the
        bench, the tests) and cannot be another website's page borrowing the public key."""
        if origin is None:
            return True
        wanted = normalise_origin(origin)
        if wanted is None:  # includes "null"
            return False
        return wanted == site or self.listed_origin(wanted) is not None

    @property
    def suggestion_list(self) -> list[str]:
        return split_lines(self.suggestions)

    # What the customer sees of the texts that have a default: the owner's words as written, the
    # default in the active language (the chat's).

    def bot_name_text(self) -> str:
        return shown(self.bot_name, DEFAULT_BOT_NAME)

    def greeting_text(self) -> str:
        return shown(self.greeting, DEFAULT_GREETING)

    def fallback_text(self) -> str:
        return shown(self.fallback_message, DEFAULT_FALLBACK)

    def reply_time_text(self) -> str:
        return shown(self.reply_time, DEFAULT_REPLY_TIME)

    def contact(self) -> dict[str, str]:
        """The handoff route, only the parts the owner filled in."""
        route = {
            "email": self.contact_email,
            "phone": self.contact_phone,
            "url": self.contact_url,
        }
        return {key: value for key, value in route.items() if value}


class OriginSeen(models.Model):
    """The first and last chat connection from each website embedding the widget (the set-up
    checklist's "seen live"). One row per shop and origin, touched once per connection."""

    shop = models.ForeignKey(Shop, models.CASCADE, related_name="origins_seen")
    origin = models.CharField(max_length=200)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "origin"], name="origin_seen_once_per_shop")
        ]

    def __str__(self) -> str:
        return self.origin

    @classmethod
    def record(cls, shop: Shop, origin: str) -> None:
        """One INSERT ... ON CONFLICT: the first connection sets both dates, later ones only
        last_seen."""
        now = timezone.now()
        cls.objects.bulk_create(
            [cls(shop=shop, origin=origin[:200], first_seen=now, last_seen=now)],
            update_conflicts=True,
            unique_fields=["shop", "origin"],
            update_fields=["last_seen"],
        )


class FAQEntry(models.Model):
    # Each phrasing is embedded and searched: a hundred is far more than customers' ways of asking
    # one thing, and 20,000 in one CSV cell kept an import busy for three minutes.
    MAX_ALTERNATIVES = 100

    shop = models.ForeignKey(Shop, models.CASCADE, related_name="entries")
    question = models.CharField(max_length=300)
    answer = models.TextField()
    alternatives = models.TextField(
        "alternative phrasings",
        blank=True,
        help_text="Other ways customers ask this, one per line. Each helps the bot find it.",
    )
    category = models.CharField(max_length=60, blank=True)
    # The owner's order on the FAQ page and in the export (faq/faqpage.py): entries by position,
    # then in the order they were added; categories in the order of their first entry.
    position = models.IntegerField(
        "order",
        default=0,
        help_text="Lower comes first on the FAQ page; equal ones keep the order they were added "
        "in. A category's place is that of its first entry.",
    )
    published = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "FAQ entry"
        verbose_name_plural = "FAQ entries"
        ordering = ["category", "question"]
        indexes = [models.Index(fields=["shop", "published"])]
        constraints = [
            # What FAQVector's (entry, shop) foreign key points at (migration faq.0009).
            models.UniqueConstraint(fields=["id", "shop"], name="faq_entry_id_shop")
        ]

    def __str__(self) -> str:
        return self.question

    @property
    def alternative_list(self) -> list[str]:
        return split_lines(self.alternatives)

    def wording_keys(self) -> set[str]:
        """The wording keys (faq.text.wording_key) of the question and its alternatives."""
        return {wording_key(text) for text in [self.question, *self.alternative_list]}

    def add_phrasings(self, texts: list[str]) -> list[str]:
        """Add `texts` to the alternative phrasings, except wordings the entry already has (or
        that come twice); saves the entry (re-embedded on commit) when any was added. Returns
        the added ones. Callers that may race hold the row (select_for_update)."""
        known, added = self.wording_keys(), []
        for text in texts:
            text = " ".join(text.split())
            key = wording_key(text)
            if key and key not in known:
                known.add(key)
                added.append(text)
        if added:
            self.alternatives = "\n".join([*self.alternative_list, *added])
            self.save()
        return added

    def clean(self) -> None:
        count = len(self.alternative_list)
        if count > self.MAX_ALTERNATIVES:
            raise ValidationError(
                {
                    "alternatives": f"{count} alternative phrasings; at most "
                    f"{self.MAX_ALTERNATIVES}: keep the ways customers really ask."
                }
            )

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

    class Kind(models.TextChoices):
        QUESTION = "question", "Question"
        QUESTION_ANSWER = "qa", "Question and answer"
        ALTERNATIVE = "alt", "Alternative"
        QUESTION_SENTENCE = "qsentence", "Question and answer sentence"

    QUESTION, QUESTION_ANSWER = Kind.QUESTION, Kind.QUESTION_ANSWER
    ALTERNATIVE, QUESTION_SENTENCE = Kind.ALTERNATIVE, Kind.QUESTION_SENTENCE

    entry = models.ForeignKey(FAQEntry, models.CASCADE, related_name="vectors")
    # The entry's shop, copied: search scans one shop's vectors, and reaching them through their
    # entries made PostgreSQL read the whole table (1 s for a 5,000-entry shop among 1,000 shops).
    # The database keeps it equal to the entry's: a foreign key on (entry, shop) to the entry's
    # (id, shop) that follows the entry if it moves (migration faq.0009).
    shop = models.ForeignKey(Shop, models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind)
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    model_name = models.CharField(max_length=200)
    embedding = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # No vector (HNSW) index: search scans one shop's rows exactly (faq/search.py), which
        # no approximate index serves, and maintaining one cost about a fifth of import time.
        # (shop, model_name): search's per-shop scan reads only that shop's rows (and it serves
        # the shop foreign key too, so that has no index of its own).
        indexes = [
            models.Index(fields=["entry", "model_name"]),
            models.Index(fields=["shop", "model_name"], name="faq_vector_shop_model"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:60]}"

    def save(self, *args, **kwargs):
        self.text_hash = text_hash(self.text)
        if self.shop_id is None:
            self.shop_id = self.entry.shop_id
        super().save(*args, **kwargs)

    @classmethod
    def of(
        cls, entry: FAQEntry, kind: str, text: str, model_name: str, vector: Sequence[float]
    ) -> FAQVector:
        """An unsaved row for bulk_create (which calls no save()): `entry`'s `text`, of `kind`,
        embedded as `vector` by the model named `model_name` (embedding.model_name)."""
        return cls(
            entry=entry,
            shop_id=entry.shop_id,
            kind=kind,
            text=text,
            text_hash=text_hash(text),
            model_name=model_name,
            embedding=vector,
        )


class SearchIndex(models.Model):
    """A shop's search index for one embedding model (faq/search_index.py's ShopIndex: threshold,
    classifier, word statistics), built when its entries change and stored here, so that every
    server process loads it in milliseconds instead of rebuilding it (0.7 s at 1,000 entries) on a
    customer's question. `vector_count` and `vector_id_sum` are the signature of the published
    vectors of `model_name` it was built from: a process whose search sees another signature
    knows the shop was edited. An English shop has two (faq/embedding.py's `shop_models`)."""

    shop = models.ForeignKey(Shop, models.CASCADE, related_name="search_indexes", db_index=False)
    model_name = models.CharField(max_length=200)
    vector_count = models.PositiveIntegerField()
    vector_id_sum = models.BigIntegerField()
    data = models.BinaryField()
    built = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "model_name"], name="faq_searchindex_shop_model"
            )
        ]

    def __str__(self) -> str:
        return f"search index of shop {self.shop_id}, {self.model_name}"


# The shop's opening hours live in their own module (faq/hours/models.py); imported here so that
# Django registers them with this app.
from faq.hours.models import HolidayRule, ShopHours, SpecialDay, WeeklyRange  # noqa: E402, F401
