"""What the FAQ commands (and the chat's customer commands) share: the shop a command names by
its id on the command line."""

from __future__ import annotations

from django.core.management.base import CommandError

from faq.models import Shop


def shop_or_error(shop_id: int) -> Shop:
    """The shop with this id; a CommandError saying there is none otherwise."""
    try:
        return Shop.objects.get(pk=shop_id)
    except Shop.DoesNotExist:
        raise CommandError(f"There is no shop with id {shop_id}.") from None
