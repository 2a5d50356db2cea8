"""
The set-up checklist on a shop's admin page: what stands between this shop and a working chat,
each item with a link to where it is fixed. Cheap: a handful of small queries per page view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from faq.hours.models import ShopHours
from faq.models import Shop, normalise_origin


@dataclass
class Item:
    key: str
    label: str
    done: bool
    detail: str
    fix_url: str
    fix_label: str
    origins: list[tuple[str, object, object]] = field(default_factory=list)  # seen live only


def for_shop(shop: Shop) -> list[Item]:
    entries = reverse("admin:faq_faqentry_changelist") + f"?shop__id__exact={shop.pk}"
    published = shop.entries.filter(published=True).count()
    total = shop.entries.count()
    items = [
        Item(
            "entries",
            "FAQ entries published",
            published > 0,
            f"{published} of {total} entries published."
            if total
            else "No entries yet: add some, import a file, or import your website's FAQ page.",
            entries,
            "Edit the FAQ",
        ),
        Item(
            "tried",
            "A question tried",
            shop.question_tried is not None,
            f"Last tried {timezone.localtime(shop.question_tried):%b %-d, %Y %H:%M}."
            if shop.question_tried
            else "See what the bot would answer before your customers do.",
            "#try-question",
            "Try a question",
        ),
        Item(
            "contact",
            "Contact route filled in",
            bool(shop.contact()),
            "When the bot cannot help, customers are shown: " + ", ".join(shop.contact().values())
            if shop.contact()
            else "When the bot cannot help, customers get no way to reach you.",
            "#id_contact_email",
            # Done, the link changes what is there rather than asking to add what is.
            "Change" if shop.contact() else "Add an email, phone or contact page",
        ),
        hours_item(shop),
        origins_item(shop),
        seen_live(shop),
        claude_item(shop),
    ]
    return items


def hours_item(shop: Shop) -> Item:
    """Done when the shop has opening hours to answer from; names their time zone, the one thing
    a new shop's hours may get wrong unseen."""
    hours = ShopHours.objects.filter(shop=shop).first()
    done = hours is not None and hours.week.exists()
    return Item(
        "hours",
        "Opening hours set",
        done,
        f"In the time zone {hours.time_zone}: the chat says whether you are open and answers "
        "questions about your hours."
        if done
        else "Without them the chat cannot say whether you are open, nor answer "
        "“are you open on Sunday?”.",
        reverse("admin:faq_shop_hours", args=[shop.pk]),
        "Opening hours",
    )


def origins_item(shop: Shop) -> Item:
    """Done only when every listed website is an address the chat can be opened from (one saved
    before Shop.clean normalised them, e.g. "www.example.com", is named here)."""
    broken = [origin for origin in shop.origins if normalise_origin(origin) is None]
    if broken:
        detail = (
            "The chat cannot open on "
            + ", ".join(broken)
            + ": write each as https://host (save the shop to have it corrected)."
        )
    elif shop.origins:
        detail = ", ".join(shop.origins)
    else:
        detail = "No website may embed the chat yet (only this server's own pages)."
    return Item(
        "origins",
        "Allowed websites set",
        bool(shop.origins) and not broken,
        detail,
        "#id_allowed_origins",
        "List your website",
    )


def seen_live(shop: Shop) -> Item:
    seen = {s.origin: s for s in shop.origins_seen.all()}
    rows = []
    for origin in shop.origins:
        key = normalise_origin(origin) or origin
        hit = seen.get(key)
        rows.append((origin, hit.first_seen if hit else None, hit.last_seen if hit else None))
    live = any(first for _, first, _ in rows)
    return Item(
        "live",
        "The chat seen live on your site",
        live,
        "First and last chat opened from each allowed website:"
        if rows
        else "List your website first, then paste the snippet into its pages.",
        "#id_allowed_origins",
        "Allowed websites and the embed snippet",
        origins=rows,
    )


def claude_item(shop: Shop) -> Item:
    if not shop.use_claude:
        return Item(
            "claude",
            "Answers: FAQ only",
            True,
            "Answers are the best FAQ entry, word for word.",
            "#id_use_claude",
            "Change",
        )
    has_key = bool(settings.ANTHROPIC_API_KEY)
    return Item(
        "claude",
        "Answers: Claude" if has_key else "Answers: Claude key missing",
        has_key,
        "Claude writes answers from your FAQ entries."
        if has_key
        else '"Answer with Claude" is on, but this server has no ANTHROPIC_API_KEY, so answers '
        "are FAQ entries word for word. Ask whoever runs ShopBot to set it, or turn Claude off.",
        "#id_use_claude",
        "Answer with Claude",
    )
