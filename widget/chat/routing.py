from django.urls import re_path

from widget.chat.consumers import ChatConsumer

# Any key shape reaches the consumer, so an unknown or mistyped key gets the documented 4404
# instead of a failed handshake.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<key>[^/]{1,100})/$", ChatConsumer.as_asgi()),
]
