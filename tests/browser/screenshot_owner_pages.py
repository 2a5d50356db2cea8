"""
Screenshots of the owner's pages that issue 29 changed: the public FAQ page with an answer's links
and list rendered, the unanswered questions (each question with what the bot offered, tick boxes,
Dismiss), and, for checking their width at 1280 px, the customer requests and FAQ lists.

Not part of the test run (the file name does not start with test_); make them with:

    SHOPBOT_TEST_DB=test_shots SHOPBOT_SAVE_SCREENSHOTS=1 \\
        .venv/bin/python -m pytest tests/browser/screenshot_owner_pages.py

They land in docs/screenshots/faq-page-links.png, unanswered.png, requests-list.png and
faq-list.png (without SHOPBOT_SAVE_SCREENSHOTS, in the temporary directory).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from faq.models import FAQEntry
from tests.browser.conftest import OWNER_PASSWORD, SCREENSHOTS, signed_in
from tests.support import make_handoff
from widget.models import Conversation, Message

USED = "Do you sell second-hand vases?"
USED_ANSWER = (
    "Yes! Our [vintage corner](https://petal.example/vintage) has a few each week:\n"
    "- **Glass** vases from $12\n"
    "- *Ceramic* jugs from $18\n"
    "\n"
    "Ask us at hello@petal.example or call [(609) 555-0142](tel:+16095550142)."
)
# Customer questions the FAQ does not answer, as the unanswered page groups them.
UNANSWERED = [
    "do you sell chocolate?",
    "can I add chocolates to my order",
    "chocolates with the flowers?",
    "do you deliver pizza",
    "will it rain on saturday",
    "can you do wedding bouquets",
    "wedding flowers for 80 guests?",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture(scope="module")
def owner_world(site, site_owner, django_db_blocker):
    shop = site["shop"]
    with django_db_blocker.unblock():
        entry = FAQEntry.objects.create(shop=shop, question=USED, answer=USED_ANSWER)
        gifts = shop.entries.filter(question__icontains="balloons").first()
        for n, text in enumerate(UNANSWERED):
            conversation = Conversation.objects.create(shop=shop)
            Message.objects.create(conversation=conversation, role="user", ask_id="a", text=text)
            offered = [{"id": gifts.pk, "question": gifts.question}] if n < 3 and gifts else []
            Message.objects.create(
                conversation=conversation,
                role="bot",
                ask_id="a",
                text=shop.fallback_text(),
                mode=Message.FALLBACK,
                confident=False,
                suggestions=offered,
            )
        make_handoff(
            conversation,
            email="ann@example.com",
            name="Ann",
            note="Could you do the flowers for our wedding on June 14th, about 80 guests?",
        )
    yield {"shop": shop, "entry": entry}
    with django_db_blocker.unblock():
        entry.delete()
        Conversation.objects.filter(shop=shop).delete()


def test_screenshot_faq_page_with_links(browser, site, owner_world):
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    entry = owner_world["entry"]
    page.goto(f"{site['server'].url}/faq/{owner_world['shop'].slug}/#faq-{entry.pk}")
    expect(page.locator(f"#faq-{entry.pk} .faq-answer a").first).to_be_visible()
    page.mouse.move(1, 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "faq-page-links.png"))
    context.close()


def test_screenshot_owner_lists(browser, site, site_owner, owner_world):
    server, shop = site["server"], owner_world["shop"]
    page = signed_in(browser, server.url, site_owner, OWNER_PASSWORD)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/unanswered/")
    expect(page.locator("[data-testid=unanswered-row]").first).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "unanswered.png"), full_page=True)
    page.goto(f"{server.url}/admin/widget/handoff/")
    page.screenshot(path=str(SCREENSHOTS / "requests-list.png"))
    page.goto(f"{server.url}/admin/faq/faqentry/")
    page.screenshot(path=str(SCREENSHOTS / "faq-list.png"))
    page.context.close()
