"""
ASGI entry point: HTTP goes to Django, websockets to the chat consumer.

Run it with daphne (`make run` does) or any ASGI server: `daphne shopbot.asgi:application`.
"""

import gc
import logging
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopbot.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.signals import request_finished  # noqa: E402

from faq import embedding  # noqa: E402
from lib.memory import give_back_freed_memory  # noqa: E402
from shopbot.http_limits import BoundedHTTP, close_request_connections  # noqa: E402
from widget.chat import claude  # noqa: E402
from widget.chat.routing import websocket_urlpatterns  # noqa: E402

logger = logging.getLogger(__name__)

# Each HTTP request's thread closes its database connections when the request ends, and at most
# HTTP_MAX_CONCURRENT_REQUESTS run at once per process (shopbot/http_limits.py).
request_finished.connect(close_request_connections, dispatch_uid="close_request_connections")

application = ProtocolTypeRouter(
    {
        "http": BoundedHTTP(django_asgi_app),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)


def warm_and_freeze() -> None:
    """Load the embedding model (never exporting it: faq/embedding.py), then move every object
    loaded so far out of the garbage collector's reach: Django and the model are objects that
    live as long as the process (640,000 when torch was loaded too). Without this each full
    collection walks them all, holding the GIL for 0.2-0.4 s in which no customer is answered;
    after it, a full collection of the rest takes milliseconds. If the model cannot be loaded
    (no exported ONNX file: the error says what to run), /healthz stays 503 and the log says
    why."""
    try:
        embedding.warm()
    except Exception:
        logger.exception("The embedding model could not be loaded: this process is not ready")
        return
    if settings.ANTHROPIC_API_KEY:
        claude.failures()  # imports the SDK now, not on the first customer's answer
    gc.freeze()
    # Loading the models freed large buffers that glibc would otherwise keep (trimmed after the
    # warm-up and 600 questions, a process went from 366 to 351 MiB: docs/performance.md).
    give_back_freed_memory()


if settings.EMBEDDING_WARM_ON_START:
    # In the background, while the server starts accepting connections, so the first customer
    # does not wait several seconds for the model.
    threading.Thread(target=warm_and_freeze, name="warm-embedding-model", daemon=True).start()
