"""The public FAQ page's search limits (issue 28): searches per client address per minute, counted
in process memory or in Redis across processes, and searches at once per process. A visitor over
either still gets the whole page, without results and with one sentence saying why."""

from __future__ import annotations

import redis
from bs4 import BeautifulSoup

from faq import pagesearch
from faq.models import FAQEntry
from tests.support import require_redis

DELIVERY = "Which towns do you deliver to, and how much is delivery?"


def search(client, shop, query: str = "can you bring flowers to princeton", **extra):
    response = client.get(f"/faq/{shop.slug}/", {"q": query}, **extra)
    assert response.status_code == 200
    soup = BeautifulSoup(response.content, "lxml")
    results = soup.find(attrs={"data-testid": "faq-results"})
    refused = soup.find(attrs={"data-testid": "faq-refused"})
    hits = [a.get_text() for a in results.select("ol li a")]
    # The whole FAQ is on the page either way.
    published = FAQEntry.objects.filter(shop=shop, published=True).count()
    assert len(soup.select("section.faq-section [id^=faq-]")) >= published
    return hits, refused.get_text() if refused else ""


def test_a_visitor_over_the_per_address_limit_gets_the_page_and_a_sentence(
    client, demo_shop, settings
):
    settings.FAQ_SEARCHES_PER_IP_PER_MINUTE = 3
    for _ in range(3):
        hits, refused = search(client, demo_shop)
        assert hits[0] == DELIVERY and not refused
    hits, refused = search(client, demo_shop)
    assert hits == [] and refused == pagesearch.TOO_MANY
    # Another address searches as usual; browsing without a query is never limited.
    hits, refused = search(client, demo_shop, REMOTE_ADDR="203.0.113.9")
    assert hits[0] == DELIVERY and not refused
    assert client.get(f"/faq/{demo_shop.slug}/").status_code == 200


def test_with_redis_the_count_is_shared_by_every_process(client, demo_shop, settings):
    url = require_redis()
    redis.Redis.from_url(url).flushdb()
    settings.REDIS_URL = url
    settings.FAQ_SEARCHES_PER_IP_PER_MINUTE = 2
    assert search(client, demo_shop)[0] and search(client, demo_shop)[0]
    assert redis.Redis.from_url(url).zcard("shopbot:limits:faq-search:127.0.0.1") == 2
    assert search(client, demo_shop) == ([], pagesearch.TOO_MANY)


def test_when_every_search_slot_is_taken_the_page_comes_without_results(
    client, demo_shop, settings, monkeypatch
):
    monkeypatch.setattr(pagesearch, "SLOT_WAIT_SECONDS", 0.05)
    held = [pagesearch.search_slot() for _ in range(settings.FAQ_SEARCH_SLOTS)]
    assert all(slot.__enter__() for slot in held)
    try:
        assert search(client, demo_shop) == ([], pagesearch.BUSY)
    finally:
        for slot in held:
            slot.__exit__(None, None, None)
    assert search(client, demo_shop)[0][0] == DELIVERY


def test_zero_turns_the_address_limit_off(client, demo_shop, settings):
    settings.FAQ_SEARCHES_PER_IP_PER_MINUTE = 0
    for _ in range(25):
        assert search(client, demo_shop)[1] == ""
