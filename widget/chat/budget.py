"""
A shop's monthly Claude token budget (Shop.monthly_token_budget, 0 = no limit).

The spend is what the stored answers say Claude used (Message input + output tokens) since the
start of this calendar month in TIME_ZONE. Once it reaches the budget the pipeline stops calling
Claude for that shop and answers from the FAQ (mode "faq" or "fallback"), with no error, until the
month turns. Asks already streaming when the budget runs out finish, so a shop can overshoot by
at most a few answers.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Sum
from django.utils import timezone

from faq.models import Shop


def month_start(now: datetime | None = None) -> datetime:
    """Midnight of the first day of the current month, in TIME_ZONE."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def tokens_used(shop: Shop, now: datetime | None = None) -> int:
    """Claude tokens the shop's answers used this calendar month (synchronous: ORM)."""
    from widget.models import Message

    total = Message.objects.filter(
        conversation__shop=shop, role=Message.BOT, created__gte=month_start(now)
    ).aggregate(total=Sum(F("input_tokens") + F("output_tokens")))["total"]
    return total or 0


def claude_allowed(shop: Shop) -> bool:
    """False once the shop has spent its monthly budget (synchronous: ORM)."""
    budget = shop.monthly_token_budget
    return budget == 0 or tokens_used(shop) < budget
