"""What `forget_customer` and `export_customer` share: the customer's address and shop from the
command line, as the conversations to erase or export."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from faq.management.shops import shop_or_error
from widget.models import Conversation, ConversationQuerySet, address_kind


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "address",
        help="The customer's email address (any case) or phone number (spacing and punctuation "
        "aside), as they gave it in a customer request.",
    )
    parser.add_argument("--shop", type=int, help="Only this shop's conversations (its id).")


def conversations_of(address: str, shop_id: int | None) -> ConversationQuerySet:
    """The customer's conversations (ConversationQuerySet.of_customer), in one shop or all;
    CommandError for an address that is neither an email nor a phone number, or an unknown
    shop."""
    try:
        address_kind(address)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    conversations = Conversation.objects.all()
    if shop_id is not None:
        shop_or_error(shop_id)
        conversations = conversations.filter(shop_id=shop_id)
    return conversations.of_customer(address)
