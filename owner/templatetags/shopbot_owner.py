"""`{% owner_shop_links as links %}`: the signed-in user's shops with their owner pages;
`{% can_add_shop as add %}`: whether they may add one; and
`{{ answer|answer_preview }}`: an answer's start as the FAQ page and the widget render it."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils.safestring import SafeString

from faq.markup import answer_html
from faq.owners import shops_for
from widget.models import Handoff, Message

register = template.Library()

# The admin index is no place for a list of every shop a superuser can see.
MAX_SHOPS = 10


@register.simple_tag(takes_context=True)
def owner_shop_links(context) -> list[dict]:
    request = context.get("request")
    if request is None or not request.user.has_perm("widget.view_conversation"):
        return []
    links = []
    for shop in shops_for(request.user)[:MAX_SHOPS]:
        links.append(
            {
                "shop": shop,
                "dashboard_url": reverse("admin:widget_dashboard", args=[shop.pk]),
                "unanswered_url": reverse("admin:widget_unanswered", args=[shop.pk]),
                "open_count": Message.objects.unanswered(shop).count(),
                "requests_url": reverse("admin:widget_handoff_changelist")
                + f"?conversation__shop__id__exact={shop.pk}&status__exact=open",
                "requests_count": Handoff.objects.filter(
                    conversation__shop=shop, status=Handoff.OPEN
                ).count(),
            }
        )
    return links


@register.simple_tag(takes_context=True)
def can_add_shop(context) -> bool:
    """Whether the signed-in user may add a shop (a superuser: the admin's add page), for the
    "Add your shop" link a new installation's owner looks for on the admin home."""
    request = context.get("request")
    return bool(
        request is not None and request.user.is_superuser and request.user.has_perm("faq.add_shop")
    )


@register.filter
def answer_preview(text: str, length: int = 500) -> SafeString:
    """The first `length` characters of an answer, rendered (links, lists, bold) as the FAQ page
    and the widget show them, never as markdown source."""
    return answer_html(truncatechars(text, length))
