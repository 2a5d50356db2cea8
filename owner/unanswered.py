"""
Unanswered questions: what customers asked that the FAQ did not cover, grouped by meaning.

Which questions are unanswered is the model's business: `Message.objects.unanswered(shop)`, the
customer questions whose answer fell back, was not confident or got a thumbs-down, and for which
no FAQ entry has been written yet. `groups(shop)` clusters a shop's unanswered questions on their
sentence embeddings, so "do you sell chocolate?" and "can I add chocolates to my order" are one
line for the owner, with a count, the latest date and the most typical wording.

The questions are embedded by multilingual-e5-small (`embed_questions`), whichever model answers
the chat, and stored on the message: the worker embeds every shop's new unanswered questions
every minute (`embed_waiting`, owner/tasks.py), so the page reads stored vectors and embeds only
what arrived since (or everything, with the worker down).

The English model put every Spanish question in one group because it was Spanish, and
"can you come get my bike from my house" with "can I hire a bike for the weekend"; e5 groups a
Spanish or French question with English ones of the same meaning more often (6 of 22 on the
labelled set, none before; not always: some still go together by language) and English
paraphrases better too. Measured on eval/unanswered_groups.json with `manage.py eval_grouping`
(docs/owner-guide.md has the figures).

Everything here is synchronous (embedding and ORM); async callers wrap it in sync_to_async.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from faq import embedding
from faq.models import FAQEntry, Shop
from faq.text import wording_key
from widget.models import Message

# Average cosine similarity (multilingual-e5-small, "query: " on every question) above which two
# groups of questions are merged. e5's similarities are high for any two questions (0.75-0.85 for
# unrelated ones), so the bar is high. Chosen on the bike shop of eval/unanswered_groups.json (the
# best F1 of pairs, with precision first), checked on its bakery, which played no part in it.
SIMILARITY_THRESHOLD = 0.87

# Only the most recent unanswered questions are grouped: clustering is quadratic in their number,
# and an owner reads the top of the list, not its thousandth line.
MAX_QUESTIONS = 1000


@dataclass
class Group:
    """Unanswered questions that mean the same thing."""

    questions: list[Message]  # newest first
    typical: Message  # the medoid: the wording closest, on average, to all the others
    # The entry most of these questions led to through "did you mean" clicks (clicked_entries).
    led_to: FAQEntry | None = None

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def latest(self) -> datetime:
        return self.questions[0].created

    @property
    def message_ids(self) -> list[int]:
        return [q.pk for q in self.questions]

    @property
    def reasons(self) -> list[tuple[str, int]]:
        """Why these questions are unanswered: (reason, how many), a question may have several."""
        counts: Counter[str] = Counter()
        for q in self.questions:
            if getattr(q, "answer_mode", None) == Message.FALLBACK:
                counts["fell back"] += 1
            elif getattr(q, "answer_confident", None) is False:
                counts["answered unsure"] += 1
            if getattr(q, "answer_feedback", None) == Message.DOWN:
                counts["thumbs-down"] += 1
        return counts.most_common()

    @property
    def rows(self) -> list[tuple[Message, str]]:
        """Each question with the entry the bot offered for it (offered)."""
        return [(q, offered(q)) for q in self.questions]

    @property
    def phrasings(self) -> list[str]:
        """The other distinct wordings, most frequent first (case and spacing ignored)."""
        seen = {wording_key(self.typical.text)}
        counts = Counter(wording_key(q.text) for q in self.questions)
        first_seen: dict[str, str] = {}
        for q in self.questions:
            first_seen.setdefault(wording_key(q.text), " ".join(q.text.split()))
        ordered = sorted(counts, key=lambda key: -counts[key])
        return [first_seen[key] for key in ordered if key not in seen]


def offered(question: Message) -> str:
    """The FAQ entry the bot offered for this unanswered question (annotated by
    `Message.objects.unanswered`): the one it answered from, else its first "did you mean";
    "" when it offered none."""
    for offer in [
        *(getattr(question, "answer_sources", None) or []),
        *(getattr(question, "answer_suggestions", None) or []),
    ]:
        if isinstance(offer, dict) and offer.get("question"):
            return str(offer["question"])
    return ""


def embed_questions(texts: list[str]) -> np.ndarray:
    """Unit-length vectors to group questions by (multilingual-e5-small), one row per text."""
    return embedding.get_e5().queries([" ".join(text.split()) for text in texts])


def fill_embeddings(questions: list[Message]) -> None:
    """Embed (in batches) and store the questions that have no embedding yet."""
    missing = [q for q in questions if q.embedding is None]
    if not missing:
        return
    vectors = embed_questions([q.text for q in missing])
    for question, vector in zip(missing, vectors, strict=True):
        question.embedding = vector
    Message.objects.bulk_update(missing, ["embedding"], batch_size=200)


# The worker's job (owner/tasks.py) looks this far back for unanswered questions without a
# vector: a question turns unanswered when it is answered (fell back, unsure) or soon after (a
# thumbs-down), and a bounded look keeps the query on the `created` index however many answered
# questions a shop has. Older ones (a backlog from before the job) are embedded by the page.
EMBED_LOOKBACK = timedelta(days=7)
EMBED_BATCH = 200


def embed_waiting(most: int, now: datetime | None = None) -> int:
    """Embed and store the vectors of every shop's unanswered questions of the last
    EMBED_LOOKBACK that have none, newest first, at most `most` of them, in batches of
    EMBED_BATCH: the owner's page then reads stored vectors. Returns how many were embedded."""
    since = (now or timezone.now()) - EMBED_LOOKBACK
    waiting = (
        Message.objects.unanswered(None)
        .filter(embedding__isnull=True, created__gte=since)
        .only("id", "text", "embedding")
        .order_by("-created", "-pk")
    )
    done = 0
    while done < most:
        batch = list(waiting[: min(EMBED_BATCH, most - done)])
        if not batch:
            break
        fill_embeddings(batch)
        done += len(batch)
    return done


def cluster(vectors: np.ndarray, threshold: float = SIMILARITY_THRESHOLD) -> list[list[int]]:
    """Average-linkage agglomerative clustering on cosine similarity (scipy's).

    `vectors` are unit length (rows). Two groups merge while the mean similarity between their
    members is at least `threshold`. Returns lists of row indexes.
    """
    # Imported here: scipy's clustering is about 40 MB that a web process serving only the chat
    # never needs (docs/performance.md, memory).
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(vectors)
    if n < 2:
        return [[0]] if n else []
    tree = linkage(vectors.astype(np.float64), method="average", metric="cosine")
    # Average linkage never merges at a smaller distance than an earlier merge, so cutting the
    # tree at a cosine distance of 1 - threshold is the same as stopping there.
    labels = fcluster(tree, t=1 - threshold, criterion="distance")
    by_label: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(row)
    return list(by_label.values())


def medoid(vectors: np.ndarray) -> int:
    """Index of the row with the highest mean similarity to the other rows."""
    if len(vectors) <= 2:
        return 0
    return int(np.argmax((vectors @ vectors.T).sum(axis=1)))


def group_questions(
    questions: list[Message], threshold: float = SIMILARITY_THRESHOLD
) -> list[Group]:
    """Group questions (with embeddings) by meaning; biggest group first, then the most recent."""
    questions = [q for q in questions if q.embedding is not None]
    if not questions:
        return []
    vectors = np.asarray([np.asarray(q.embedding, dtype=np.float32) for q in questions])
    found = []
    for rows in cluster(vectors, threshold):
        members = sorted(
            (questions[r] for r in rows), key=lambda q: (q.created, q.pk), reverse=True
        )
        member_vectors = np.asarray([np.asarray(q.embedding, dtype=np.float32) for q in members])
        found.append(Group(questions=members, typical=members[medoid(member_vectors)]))
    found.sort(key=lambda group: (group.count, group.latest), reverse=True)
    return found


def groups(shop: Shop | int, limit: int | None = None) -> list[Group]:
    """The shop's unanswered questions, grouped by meaning, most frequent first."""
    questions = list(
        Message.objects.unanswered(shop)
        .select_related("conversation")
        .order_by("-created", "-pk")[:MAX_QUESTIONS]
    )
    fill_embeddings(questions)
    found = group_questions(questions)
    return found[:limit] if limit is not None else found


def clicked_entries(found: list[Group]) -> None:
    """Set each group's `led_to`: the entry most of its questions led to through a "did you
    mean" click (more than half of them), or None. One query for all the groups."""
    ids = [pk for group in found for pk in group.message_ids]
    chosen: dict[int, int] = {}
    for question_id, entry_id in (
        Message.objects.filter(suggested_for__in=ids, entry__isnull=False)
        .order_by("pk")
        .values_list("suggested_for_id", "entry_id")
    ):
        chosen.setdefault(question_id, entry_id)  # a customer's first click counts
    counts_by_group = [
        Counter(chosen[pk] for pk in group.message_ids if pk in chosen) for group in found
    ]
    wanted = {c.most_common(1)[0][0] for c in counts_by_group if c}
    entries = FAQEntry.objects.in_bulk(wanted)
    for group, counts in zip(found, counts_by_group, strict=True):
        group.led_to = None
        if counts:
            entry_id, n = counts.most_common(1)[0]
            if 2 * n > group.count:
                group.led_to = entries.get(entry_id)


def find_group(shop: Shop | int, message_id: int) -> Group | None:
    """The group that holds this unanswered question now (groups are recomputed on every
    request)."""
    for group in groups(shop):
        if message_id in group.message_ids:
            return group
    return None


def resolve(shop: Shop | int, message_ids: list[int], entry: FAQEntry) -> int:
    """Mark these unanswered questions of the shop as answered by `entry`. Returns how many
    changed.

    Ids of other shops, of answers or of questions already resolved are ignored, so a stale or
    tampered form cannot touch anything else.
    """
    with transaction.atomic():
        return Message.objects.filter(
            pk__in=message_ids,
            role=Message.USER,
            conversation__shop=shop,
            resolved_by__isnull=True,
        ).update(resolved_by=entry)


def dismiss(shop: Shop | int, message_ids: list[int]) -> int:
    """Take these unanswered questions of the shop off the list as noise (pizza, the weather):
    they stay in their conversations, and are never offered as phrasings. Returns how many
    changed; other shops' ids are ignored."""
    return Message.objects.filter(
        pk__in=message_ids, role=Message.USER, conversation__shop=shop, dismissed=False
    ).update(dismissed=True)
