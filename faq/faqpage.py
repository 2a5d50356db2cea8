"""
The shop's FAQ as a web page: the public page at /faq/<slug>/ and the HTML export share this.

Both list exactly the published entries, by category, each under its own anchor (entry_anchor),
with schema.org FAQPage JSON-LD of the same entries for search engines' rich results. The hosted
page also shows the shop's opening hours (`opening_hours`: the next 7 days and the special days
after them) under HOURS_ANCHOR, where the chat's answers from the hours link, and describes the
shop as a LocalBusiness (or the kind the owner chose) with its hours in JSON-LD too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Max, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from faq.hours import questions as hours_questions
from faq.hours import schedule as sched
from faq.hours import schemaorg
from faq.markup import answer_html
from faq.models import FAQEntry, Shop, ShopHours, entry_anchor

UNCATEGORISED = _("Other questions")
# The page lists the next DAYS_SHOWN days, then the special days (closures, other hours) of the
# COMING_DAYS after them.
DAYS_SHOWN = 7
COMING_DAYS = 90


@dataclass
class Section:
    name: str
    entries: list[FAQEntry]


def published_entries(shop: Shop) -> list[FAQEntry]:
    return anchored(shop.entries.filter(published=True))


def anchored(entries: QuerySet[FAQEntry]) -> list[FAQEntry]:
    """The entries in page order, each ready to show (for_page)."""
    return for_page(list(entries.order_by("position", "pk")))


def for_page(entries: list[FAQEntry]) -> list[FAQEntry]:
    """Each entry with the anchor the chat's source links point at and its answer as HTML
    (faq/markup.py: the widget's markdown subset)."""
    for entry in entries:
        entry.anchor = entry_anchor(entry.pk)
        entry.answer_html = answer_html(entry.answer)
    return entries


def sections(entries: list[FAQEntry]) -> list[Section]:
    """Entries grouped by category, in the owner's order (`entries` come in page order: a
    category where its first entry is), then the uncategorised."""
    groups: dict[str, list[FAQEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.category.strip(), []).append(entry)
    named = [Section(name, items) for name, items in groups.items() if name]
    return named + ([Section(UNCATEGORISED, groups[""])] if "" in groups else [])


def last_updated(shop: Shop):
    return shop.entries.filter(published=True).aggregate(last=Max("updated"))["last"]


def jsonld(entries: list[FAQEntry]) -> dict:
    """schema.org FAQPage; each answer's text as the page's HTML (p, br, ul, ol, li, a, strong,
    em: the HTML Google reads in an FAQPage answer), so links and lists are not raw markdown."""
    return {
        "@context": "https://schema.org",
        "@type": "FAQPage",
        "mainEntity": [
            {
                "@type": "Question",
                "name": entry.question,
                "acceptedAnswer": {"@type": "Answer", "text": str(answer_html(entry.answer))},
            }
            for entry in entries
        ],
    }


def jsonld_script(entries: list[FAQEntry], *more: dict) -> SafeString:
    """The JSON-LD (and `more` documents, each its own element) as <script> elements. <, > and &
    are escaped as JSON unicode escapes, so an answer containing "</script>" cannot end the
    element early."""
    scripts = []
    for document in (jsonld(entries), *more):
        text = json.dumps(document, ensure_ascii=False, indent=1)
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        scripts.append(f'<script type="application/ld+json">\n{text}\n</script>')
    return mark_safe("\n".join(scripts))


@dataclass
class OpeningHours:
    """What the FAQ page shows of the shop's hours, in the page's language: `days` (the next
    DAYS_SHOWN, as faq.hours.questions.days_preview gives them), `coming` (the special days after
    them, the same way) and `jsonld` (the shop as a LocalBusiness with its hours)."""

    days: list[dict]
    coming: list[dict]
    jsonld: dict


def opening_hours(shop: Shop, url: str, language: str) -> OpeningHours | None:
    """The shop's hours for its FAQ page (`url`, the page's address), or None without hours."""
    hours = ShopHours.objects.filter(shop=shop).first()
    schedule = hours.schedule() if hours else None
    if schedule is None or schedule.is_empty:
        return None
    today = timezone.now().astimezone(schedule.time_zone).date()
    after = today + timedelta(days=DAYS_SHOWN)
    coming = [
        hours_questions.days_preview(schedule, special.day, 1, language)[0]
        for special in sched.upcoming_specials(schedule, after, COMING_DAYS)
    ]
    return OpeningHours(
        days=hours_questions.days_preview(schedule, today, DAYS_SHOWN, language),
        coming=coming,
        jsonld=schemaorg.local_business(shop.name, url, schedule, today, hours.business_type),
    )


def export_html(entries: QuerySet[FAQEntry], title: str) -> str:
    """A standalone HTML file of the published ones among `entries`, with the JSON-LD and the
    same anchors as the hosted page, for owners who paste it into their own site; its headings
    in the shop's language."""
    published = anchored(entries.filter(published=True))
    # In the shop's language (the entries of one shop), else English.
    languages = set(entries.filter(published=True).values_list("shop__language", flat=True))
    language = languages.pop() if len(languages) == 1 else "en"
    with translation.override(language):
        return render_to_string(
            "faq/export.html",
            {
                "title": title,
                "language": language,
                "sections": sections(published),
                "jsonld": jsonld_script(published),
            },
        )
