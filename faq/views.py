"""The public FAQ page of a shop: /faq/<slug>/ (plain HTML, works without JavaScript)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import translation

from faq import faqpage, pagesearch, search
from faq.models import HOURS_ANCHOR, Shop
from faq.text import clean_text
from lib.web import site_url

SEARCH_LIMIT = 3
MAX_QUERY_CHARS = 300


def faq_page(request: HttpRequest, slug: str) -> HttpResponse:
    shop = get_object_or_404(Shop, slug=slug)
    entries = faqpage.published_entries(shop)
    # Cleaned as the chat cleans a question: a NUL byte would reach PostgreSQL in the search.
    query = clean_text(request.GET.get("q", "")).strip()[:MAX_QUERY_CHARS]
    hits = None
    confident = False
    refused = ""
    if query and entries:
        if pagesearch.over_address_limit(request):
            refused = pagesearch.TOO_MANY
        else:
            with pagesearch.search_slot() as free:
                if free:
                    # The same search the chat uses, so the page finds what the bot would.
                    result = search.search(shop, query, limit=SEARCH_LIMIT)
                    confident = result.confident
                    hits = [hit.entry for hit in result.hits]
                else:
                    refused = pagesearch.BUSY
        faqpage.for_page(hits or [])
    site = site_url(request)
    hours = faqpage.opening_hours(shop, site + shop.get_absolute_url(), shop.language)
    with translation.override(shop.language):  # the page's headings in the shop's language
        return render(
            request,
            "faq/page.html",
            {
                "shop": shop,
                "sections": faqpage.sections(entries),
                "entry_count": len(entries),
                "updated": faqpage.last_updated(shop),
                "jsonld": faqpage.jsonld_script(entries, *([hours.jsonld] if hours else [])),
                "hours": hours,
                "hours_anchor": HOURS_ANCHOR,
                "query": query,
                "hits": hits,
                "confident": confident,
                "refused": refused,
                "site": site,
                "embed_snippet": shop.embed_snippet(site),
            },
        )
