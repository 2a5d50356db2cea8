"""The client address of an admin login attempt, for django-axes' login throttling."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The same rule as the chat's limits (widget/chat/limits.client_ip): the peer address, or only
    when TRUSTED_PROXY_HEADER names a header our own proxy sets, the last address in it."""
    header = settings.TRUSTED_PROXY_HEADER.strip()
    if header:
        value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        addresses = [a.strip() for a in value.split(",") if a.strip()]
        if addresses:
            return addresses[-1][:64]
    return request.META.get("REMOTE_ADDR") or None
