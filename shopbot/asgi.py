"""
ASGI entry point: HTTP goes to Django, websockets to the chat consumer.

Run it with daphne (`make run` does) or any ASGI server: `daphne shopbot.asgi:application`.
"""

import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopbot.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from widget.chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

if settings.EMBEDDING_WARM_ON_START:
    # Load the embedding model in the background while the server starts accepting connections,
    # so the first customer does not wait several seconds for torch.
    from faq import embedding

    threading.Thread(target=embedding.warm, name="warm-embedding-model", daemon=True).start()
