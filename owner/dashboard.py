"""
The figures on a shop's dashboard: traffic per day, how questions were answered, feedback, and
which FAQ entries the answers cite. A handful of aggregate queries, whatever the traffic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from faq.models import FAQEntry, Shop
from widget.models import Conversation, Message

DEFAULT_DAYS = 30


@dataclass
class Day:
    day: date
    conversations: int = 0
    questions: int = 0


@dataclass
class Cited:
    entry_id: int
    question: str  # the entry's current question, or the one stored with the answer if deleted
    count: int
    exists: bool


@dataclass
class Stats:
    since: datetime
    days: list[Day]
    conversations: int
    questions: int
    answers: int
    by_mode: dict[str, int]
    thumbs_up: int
    thumbs_down: int
    cited: list[Cited] = field(default_factory=list)

    def share(self, *modes: str) -> float | None:
        """Fraction of answers given in these modes, or None when there were no answers."""
        if not self.answers:
            return None
        return sum(self.by_mode.get(mode, 0) for mode in modes) / self.answers

    @property
    def answered_share(self) -> float | None:
        return self.share(Message.FAQ, Message.LLM)

    @property
    def faq_share(self) -> float | None:
        return self.share(Message.FAQ)

    @property
    def llm_share(self) -> float | None:
        return self.share(Message.LLM)

    @property
    def fallback_share(self) -> float | None:
        return self.share(Message.FALLBACK)


def shop_stats(
    shop: Shop | int, days: int = DEFAULT_DAYS, now: datetime | None = None, top: int = 8
) -> Stats:
    """The shop's figures over the last `days` days, today included (in TIME_ZONE)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first_day = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    calendar = {
        first_day + timedelta(days=i): Day(first_day + timedelta(days=i)) for i in range(days)
    }

    conversations = Conversation.objects.filter(shop=shop, started__gte=since, started__lte=now)
    for row in (
        conversations.annotate(day=TruncDate("started")).values("day").annotate(n=Count("pk"))
    ):
        if row["day"] in calendar:
            calendar[row["day"]].conversations = row["n"]

    messages = Message.objects.filter(conversation__shop=shop, created__gte=since, created__lte=now)
    questions = messages.filter(role=Message.USER)
    for row in questions.annotate(day=TruncDate("created")).values("day").annotate(n=Count("pk")):
        if row["day"] in calendar:
            calendar[row["day"]].questions = row["n"]

    answers = messages.filter(role=Message.BOT)
    by_mode = {
        row["mode"]: row["n"]
        for row in answers.values("mode").annotate(n=Count("pk")).order_by()
        if row["mode"]
    }
    feedback = answers.aggregate(
        up=Count("pk", filter=Q(feedback=Message.UP)),
        down=Count("pk", filter=Q(feedback=Message.DOWN)),
    )
    return Stats(
        since=since,
        days=list(calendar.values()),
        conversations=sum(d.conversations for d in calendar.values()),
        questions=sum(d.questions for d in calendar.values()),
        answers=sum(by_mode.values()),
        by_mode=by_mode,
        thumbs_up=feedback["up"],
        thumbs_down=feedback["down"],
        cited=most_cited(shop, answers, top),
    )


def most_cited(shop: Shop | int, answers, top: int) -> list[Cited]:
    """The entries most often given as a source of a real (FAQ or Claude) answer."""
    counts: Counter[int] = Counter()
    stored_question: dict[int, str] = {}
    for sources in answers.filter(mode__in=[Message.FAQ, Message.LLM]).values_list(
        "sources", flat=True
    ):
        for source in sources or []:
            try:
                entry_id = int(source["id"])
            except (KeyError, TypeError, ValueError):
                continue  # a malformed source row must not break the owner's dashboard
            counts[entry_id] += 1
            stored_question.setdefault(entry_id, str(source.get("question", "")))
    ranked = counts.most_common(top)
    # Only the shop's own entries are linked: a source id is data from a message, not a proof.
    current = FAQEntry.objects.filter(shop=shop).in_bulk([entry_id for entry_id, _ in ranked])
    return [
        Cited(
            entry_id=entry_id,
            question=current[entry_id].question
            if entry_id in current
            else stored_question[entry_id],
            count=count,
            exists=entry_id in current,
        )
        for entry_id, count in ranked
    ]
