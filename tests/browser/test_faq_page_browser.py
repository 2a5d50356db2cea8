"""
The public FAQ page in a real browser (Debian's headless Chromium via Playwright) against the real
server: the chat's "From our FAQ" source is a link to that entry's anchor on the shop's FAQ page,
and the page's search works with JavaScript off.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from faq.models import FAQEntry
from tests.browser.conftest import (
    ANSWER_TIMEOUT,
    DELIVERY,
    XSS_QUESTION,
    ask,
    open_widget,
    w,
    wait_answers,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_the_answers_source_links_to_the_faq_page_anchor_of_that_entry(page, site):
    shop, server = site["shop"], site["server"]
    entry = FAQEntry.objects.get(shop=shop, question=DELIVERY)
    open_widget(page, server.url)
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1)

    sources = w(page, "sb-sources")
    expect(sources).to_have_text(f"From our FAQ: {DELIVERY}")
    link = sources.locator("a")
    url = f"{server.url}/faq/{shop.slug}/#faq-{entry.pk}"
    expect(link).to_have_attribute("href", url)
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")

    with page.context.expect_page() as opened:
        link.click()
    faq = opened.value
    faq.wait_for_load_state()
    assert faq.url == url
    target = faq.locator("article.faq-entry:target")
    expect(target).to_have_attribute("id", f"faq-{entry.pk}", timeout=ANSWER_TIMEOUT)
    expect(target.locator("h3")).to_have_text(DELIVERY)
    expect(target).to_be_in_viewport()
    # The widget is on the FAQ page too (its own site, so always allowed).
    expect(w(faq, "sb-launcher")).to_be_visible(timeout=ANSWER_TIMEOUT)


def test_the_storefront_links_to_the_faq_page_whose_search_works_without_javascript(browser, site):
    shop, server = site["shop"], site["server"]
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url)
    page.locator("[data-testid=faq-link]").click()
    expect(page).to_have_url(f"{server.url}/faq/{shop.slug}/")
    page.get_by_label("Search the questions").fill("can you bring flowers to princeton")
    page.get_by_role("button", name="Search").click()
    first = page.locator("[data-testid=faq-results] ol li a").first
    expect(first).to_have_text(DELIVERY)
    first.click()
    expect(page.locator("article.faq-entry:target h3")).to_have_text(DELIVERY)
    # One readable column in the middle of a wide window, never against its left edge.
    page.set_viewport_size({"width": 1280, "height": 800})
    for part in ("header.faq-top", "main", "footer.faq-foot"):
        box = page.locator(part).bounding_box()
        assert box is not None and box["x"] > 200 and box["width"] <= 46 * 17 + 1, (part, box)
    context.close()


def test_the_launcher_wears_the_shops_colour_before_the_first_connection(browser, site):
    # A first visit: nothing stored yet and no connection until the chat is opened, so the colour
    # can only come from the tag's data-color.
    shop, server = site["shop"], site["server"]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/faq/{shop.slug}/")
    launcher = w(page, "sb-launcher")
    expect(launcher).to_be_visible(timeout=ANSWER_TIMEOUT)
    red, green, blue = (int(shop.accent_color[i : i + 2], 16) for i in (1, 3, 5))
    expect(launcher).to_have_css("background-color", f"rgb({red}, {green}, {blue})")
    context.close()


USED_BIKES = "Do you sell used bikes?"
USED_BIKES_ANSWER = (
    "Yes! Check our [used bikes page](https://bikes.example/used) or *call* us.\n"
    "- Road bikes\n"
    "- City bikes"
)


@pytest.fixture(scope="module")
def markdown_entry(site, django_db_blocker):
    """An imported answer with a link and a list, committed so the server sees it."""
    with django_db_blocker.unblock():
        entry = FAQEntry.objects.create(
            shop=site["shop"], question=USED_BIKES, answer=USED_BIKES_ANSWER
        )
    yield entry
    with django_db_blocker.unblock():
        entry.delete()


def test_links_and_lists_show_rendered_on_the_faq_page_never_as_markdown(
    page, site, markdown_entry
):
    shop, server = site["shop"], site["server"]
    page.goto(f"{server.url}/faq/{shop.slug}/#faq-{markdown_entry.pk}")
    answer = page.locator(f"#faq-{markdown_entry.pk} .faq-answer")
    link = answer.get_by_role("link", name="used bikes page")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "https://bikes.example/used")
    expect(answer.locator("em")).to_have_text("call")
    expect(answer.locator("ul > li")).to_have_text(["Road bikes", "City bikes"])
    expect(answer).not_to_contain_text("](")
    expect(answer).not_to_contain_text("- Road")
    # An answer with HTML in it stays text: nothing of it runs.
    xss = FAQEntry.objects.get(shop=shop, question=XSS_QUESTION)
    expect(page.locator(f"#faq-{xss.pk} .faq-answer")).to_contain_text("<img src=x")
    expect(page.locator(f"#faq-{xss.pk} .faq-answer strong")).to_have_text("Photo cards")
    assert page.evaluate("window.__pwned") is None
