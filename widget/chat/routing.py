from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from widget.chat.consumers import ChatConsumer
from widget.chat.protocol import Close


class UnknownPath(AsyncWebsocketConsumer):
    """Any other websocket path, such as a key longer than any shop's: accepted and closed with
    4404, as an unknown key is, instead of a failed handshake (HTTP 500)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=int(Close.UNKNOWN_SHOP))  # autobahn takes a plain int only


# Any key shape reaches the consumer, so an unknown or mistyped key gets the documented 4404
# instead of a failed handshake; so does every other path.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<key>[^/]{1,100})/$", ChatConsumer.as_asgi()),
    re_path(r"", UnknownPath.as_asgi()),
]
