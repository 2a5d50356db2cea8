"""
The customer requests admin's "Forget these customers" action: erase everything stored about the
customers who left the selected requests, when they ask (GDPR Art. 17). It calls the same
ConversationQuerySet.forget as `manage.py forget_customer`, for each address (email and phone)
of the selected requests, within the shops the owner manages only: a customer who also wrote to
another shop keeps their data there.

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
from widget.models import Conversation, Handoff


def addresses(requests: QuerySet[Handoff]) -> list[str]:
    """The distinct email addresses (any case) and phone numbers of these requests."""
    found: dict[str, str] = {}
    for email, phone in requests.values_list("email", "phone"):
        for address in (email, phone):
            if address:
                found.setdefault(address.lower(), address)
    return sorted(found.values())


def summary(erased: Counter[str]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in erased.items()) or "nothing"


@admin.action(description="Forget these customers (erase all their data)", permissions=["change"])
def forget_customers(model_admin, request: HttpRequest, queryset: QuerySet[Handoff]):
    conversations = Conversation.objects.filter(shop__in=shops_for(request.user))
    customers = addresses(queryset)
    if request.POST.get("post") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Forget these customers?",
            "opts": model_admin.model._meta,
            "customers": [
                (address, summary(conversations.of_customer(address).forget(dry_run=True)))
                for address in customers
            ],
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "widget/forget_customers.html", context)
    erased: Counter[str] = Counter()
    for address in customers:
        erased += conversations.of_customer(address).forget()
    # No address in the message: it would sit in the message storage until shown.
    model_admin.message_user(
        request, f"Forgot {len(customers)} customer address(es): erased {summary(erased)}."
    )
    return None
