from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET

from faq.models import text_hash

WIDGET_JS = Path(__file__).resolve().parent / "static" / "widget" / "widget.js"


@require_GET
def widget_js(request: HttpRequest) -> HttpResponse:
    """The embeddable script. Short public caching with an ETag: a fix reaches every shop's
    pages within minutes, and revalidation costs a 304."""
    body = WIDGET_JS.read_bytes()
    etag = quote_etag(text_hash(body.decode())[:16])
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=300"
    # Any website may load the script; what it may do is decided per shop on the websocket.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
