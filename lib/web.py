"""
The two addresses every layer asks about: this ShopBot site's own (`site_url`, for the embed
snippet, the FAQ links, the owner's emails) and a client's (`client_ip`, for the chat's
per-address limits and the admin's login throttling).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest


def site_url(request: HttpRequest | None = None) -> str:
    """This ShopBot site's address without a trailing slash: SITE_URL when it is set, else the
    address `request` came in on (Django has checked its Host against ALLOWED_HOSTS); "" with
    neither. (A websocket is not checked by Django: widget.chat.protocol.site_origin.)"""
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/")
    if request is None:
        return ""
    return request.build_absolute_uri("/").rstrip("/")


def client_ip(peer: str | None, headers: Mapping[str, str]) -> str | None:
    """A client's address: the connection's `peer`, or, only when TRUSTED_PROXY_HEADER names a
    header set by our own proxy, the address that proxy put last in it (what the proxy saw; the
    earlier entries of X-Forwarded-For are whatever the client claimed). None if unknown.
    `headers` is looked up by the header's lowercase name (request.headers ignores case)."""
    header = settings.TRUSTED_PROXY_HEADER.strip().lower()
    if header:
        addresses = [a.strip() for a in headers.get(header, "").split(",") if a.strip()]
        if addresses:
            return addresses[-1][:64]
    return str(peer)[:64] if peer else None


def request_client_ip(request: HttpRequest) -> str | None:
    """`client_ip` of an HTTP request (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.headers)
