"""
Reaching a conversation's open chats from anywhere: an owner's page, a command, any server
process. Every socket of a conversation joins its channel-layer group (`Conversation.group`;
Redis with REDIS_URL, so across processes), and `send` is the one way anything is sent to it.
The events are handled by the chat consumer's method of the same name (widget/chat/consumers.py),
which turns each into its frame.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# The events (the consumer's handlers: `person_changed`, `shop_message`).
PERSON_CHANGED = "person.changed"  # {"present": bool}
SHOP_MESSAGE = "shop.message"  # {"message": id, "text": str}


def send(group: str, event: dict) -> None:
    """Send `event` to the group's open sockets, from sync code. Nobody listening is no error
    (the customer sees what is stored when they come back); neither is an unreachable channel
    layer, which is logged."""
    try:
        async_to_sync(get_channel_layer().group_send)(group, event)
    except Exception:
        logger.warning("Could not reach the conversation's open chats", exc_info=True)
