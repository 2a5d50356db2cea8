"""
The shop's FAQ as a web page: the public page at /faq/<slug>/ and the HTML export share this.

Both list exactly the published entries, by category, each under its own anchor (entry_anchor),
with schema.org FAQPage JSON-LD of the same entries for search engines' rich results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db.models import Max, QuerySet
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from faq.markup import answer_html
from faq.models import FAQEntry, Shop, entry_anchor

UNCATEGORISED = _("Other questions")


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


def jsonld_script(entries: list[FAQEntry]) -> SafeString:
    """The JSON-LD as a <script> element. <, > and & are escaped as JSON unicode escapes, so an
    answer containing "</script>" cannot end the element early."""
    text = json.dumps(jsonld(entries), ensure_ascii=False, indent=1)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return mark_safe(f'<script type="application/ld+json">\n{text}\n</script>')


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
