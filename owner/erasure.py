"""
The customer requests admin's "Forget these customers" action: erase everything stored about the
customers who left the selected requests, when they ask (GDPR Art. 17). It calls the same
ConversationQuerySet.forget as `manage.py forget_customer`, on the selected requests'
conversations and every other conversation of their addresses (email and phone), within the
shops the owner manages only: a customer who also wrote to another shop keeps their data there.

The first POST shows what would be erased (a dry run, rolled back) and asks to confirm; the
confirmation erases it.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from faq.owners import shops_for
from widget.models import Conversation, Handoff, address_kind, phone_key


def addresses(requests: QuerySet[Handoff]) -> list[str]:
    """The distinct email addresses (any case) and phone numbers of these requests (one that is
    neither, stored before addresses were checked, is left out)."""
    found: dict[str, str] = {}
    for email, phone in requests.values_list("email", "phone"):
        for address in (email, phone):
            try:
                kind = address_kind(address)
            except ValueError:
                continue
            key = address.lower() if kind == "email" else phone_key(address)
            found.setdefault(key, address)
    return sorted(found.values())


def summary(erased: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in erased.items()) or "nothing"


@admin.action(description="Forget these customers (erase all their data)", permissions=["change"])
def forget_customers(model_admin, request: HttpRequest, queryset: QuerySet[Handoff]):
    customers = addresses(queryset)
    mine = Conversation.objects.filter(shop__in=shops_for(request.user))
    # The selected requests' conversations, and every other one of their addresses.
    conversations = mine.filter(pk__in=queryset.values("conversation"))
    for address in customers:
        conversations = conversations | mine.of_customer(address)
    if request.POST.get("post") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Forget these customers?",
            "opts": model_admin.model._meta,
            "customers": customers,
            "erased": summary(conversations.forget(dry_run=True)),
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "owner/forget_customers.html", context)
    erased = conversations.forget()
    # No address in the message: it would sit in the message storage until shown.
    model_admin.message_user(
        request, f"Forgot {len(customers)} customer address(es): erased {summary(erased)}."
    )
    return None
