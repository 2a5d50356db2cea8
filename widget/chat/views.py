import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.views.decorators.http import require_safe

WIDGET_JS = Path(__file__).resolve().parent.parent / "static" / "widget" / "widget.js"
# Browsers use a cached copy for 5 minutes, then for up to a day more while revalidating in the
# background: a fix reaches every shop's pages within minutes, and revalidation costs a 304.
CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=86400"


@lru_cache(maxsize=2)
def _bodies(stamp: tuple[int, int]) -> dict[str, tuple[bytes, str]]:
    """encoding -> (body, ETag) for the file as of `stamp` (mtime, size); read and compressed once
    per version of the file, not on every page view of every shop."""
    plain = WIDGET_JS.read_bytes()
    digest = hashlib.sha256(plain).hexdigest()[:16]
    # mtime=0: the same file always compresses to the same bytes (and so matches its ETag).
    packed = gzip.compress(plain, compresslevel=9, mtime=0)
    # Each encoding is its own representation, so each gets its own ETag.
    return {"identity": (plain, f'"{digest}"'), "gzip": (packed, f'"{digest}-gz"')}


def widget_bodies() -> dict[str, tuple[bytes, str]]:
    stat = WIDGET_JS.stat()
    return _bodies((stat.st_mtime_ns, stat.st_size))


def accepts_gzip(request: HttpRequest) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@require_safe
def widget_js(request: HttpRequest) -> HttpResponse:
    """The embeddable script: gzipped when the browser accepts it (every browser does), cached
    briefly with an ETag, and loadable from any website; what a website may then do with a shop's
    key is decided per shop on the websocket (allowed origins)."""
    encoding = "gzip" if accepts_gzip(request) else "identity"
    body, etag = widget_bodies()[encoding]
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    if encoding == "gzip":
        response["Content-Encoding"] = "gzip"
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    patch_vary_headers(response, ["Accept-Encoding"])
    # A 304 when If-None-Match matches; it keeps ETag, Cache-Control and Vary.
    response = get_conditional_response(request, etag=etag, response=response)
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
