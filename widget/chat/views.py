"""
`/widget.js`, the embeddable script (and `/widget-handoff.js`, the module it loads for the
hand-off to a person): minified, gzipped when the browser accepts it (every browser does),
cached briefly with an ETag per representation, and loadable from any website; what a website may
then do with a shop's key is decided per shop on the websocket (allowed origins).

The source in widget/static/widget/ is written to be read (no build step); rjsmin strips its
comments and indentation, keeping the `/*! … */` header. Django does the HTTP: `condition`
answers If-None-Match with a 304, `cache_control` and `vary_on_headers` set their headers (on the
304 too). Each script is read, minified and compressed once per process (a deploy restarts the
processes; so must a developer who edits a script), not on every page view of every shop.
(WhiteNoise, which serves the other static files, would give both encodings one ETag and serve
gzip to `gzip;q=0`.)
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path

import rjsmin
from django.http import HttpRequest, HttpResponse
from django.http.request import MediaType
from django.views.decorators.cache import cache_control
from django.views.decorators.http import condition, require_safe
from django.views.decorators.vary import vary_on_headers

WIDGET_JS = Path(__file__).resolve().parent.parent / "static" / "widget" / "widget.js"
# The hand-off to a person, a module widget.js imports the first time it is needed (and from the
# same place as itself), so the widget stays within its size budget.
HANDOFF_JS = WIDGET_JS.with_name("widget-handoff.js")
# Browsers use a cached copy for 5 minutes, then for up to a day more while revalidating in the
# background: a fix reaches every shop's pages within minutes, and revalidation costs a 304.
CACHE = {"public": True, "max_age": 300, "stale_while_revalidate": 86400}
CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=86400"  # what CACHE sends


@cache
def _bodies(path: Path) -> dict[str, tuple[bytes, str]]:
    """encoding -> (body, ETag) of the script as served: minified, and minified then gzipped."""
    plain = rjsmin.jsmin(path.read_text(encoding="utf-8"), keep_bang_comments=True).encode()
    digest = hashlib.sha256(plain).hexdigest()[:16]
    # mtime=0: the same file always compresses to the same bytes (and so matches its ETag).
    packed = gzip.compress(plain, compresslevel=9, mtime=0)
    # Each encoding is its own representation, so each gets its own ETag.
    return {"identity": (plain, f'"{digest}"'), "gzip": (packed, f'"{digest}-gz"')}


def representation(request: HttpRequest, path: Path = WIDGET_JS) -> tuple[str, bytes, str]:
    """(encoding, body, ETag) of the script for this request."""
    # Accept-Encoding has Accept's grammar (coding;q=…), so Django's parser of the one reads the
    # other; q=0 means "not acceptable".
    codings = [MediaType(c) for c in request.headers.get("Accept-Encoding", "").split(",")]
    gzipped = any(c.main_type == "gzip" and c.quality != 0 for c in codings)
    encoding = "gzip" if gzipped else "identity"
    return encoding, *_bodies(path)[encoding]


def from_any_website(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Any page may load the response (and its 304s) with a script tag or fetch."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Access-Control-Allow-Origin"] = "*"
        response["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response

    return wrapped


def script_view(path: Path) -> Callable[..., HttpResponse]:
    """The view serving that script as described above."""

    @require_safe
    @from_any_website
    @cache_control(**CACHE)
    @vary_on_headers("Accept-Encoding")
    @condition(etag_func=lambda request: representation(request, path)[2])
    def view(request: HttpRequest) -> HttpResponse:
        encoding, body, _ = representation(request, path)
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
        if encoding == "gzip":
            response["Content-Encoding"] = "gzip"
        return response

    return view


widget_js = script_view(WIDGET_JS)
widget_handoff_js = script_view(HANDOFF_JS)
