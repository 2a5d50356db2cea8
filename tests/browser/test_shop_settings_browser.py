"""
The shop's settings in a real browser (Debian's Chromium via Playwright, the real server): an
allowed website typed without its scheme is refused or normalised with a sentence the owner reads,
the checklist does not tick the chat as live until it has been seen from that site, and an
address field takes "petal.example/privacy" instead of the browser's bare "Please enter a URL.".
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from faq.models import Shop
from tests.browser.conftest import OWNER_PASSWORD, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_a_website_without_its_scheme_is_refused_or_normalised_in_the_browser(
    browser, site, site_owner
):
    shop, server = site["shop"], site["server"]
    page = signed_in(browser, server.url, site_owner, OWNER_PASSWORD)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/change/")

    # The embed snippet's box and its help stay inside their fieldset, nothing cut.
    embed = page.locator("#embed").bounding_box()
    for part in ("[data-testid=embed-snippet]", "#embed .help >> nth=0"):
        box = page.locator(part).bounding_box()
        assert box["x"] + box["width"] <= embed["x"] + embed["width"], part
    help_text = page.locator("#embed .help").first
    assert help_text.evaluate("e => e.scrollWidth <= e.clientWidth")
    # The shop's page buttons (six, in two rows on a narrow window) sit below the shop's name
    # and above the checklist, over neither.
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        tools = page.locator("ul.object-tools").bounding_box()
        name = page.locator("#content > h2").bounding_box()
        checklist = page.locator("[data-testid=setup-checklist]").bounding_box()
        assert name["y"] + name["height"] <= tools["y"], (width, name, tools)
        assert tools["y"] + tools["height"] <= checklist["y"], (width, tools, checklist)
    page.set_viewport_size({"width": 1280, "height": 900})

    origins = page.locator("#id_allowed_origins")
    origins.fill("www.petal.example\nftp://petal.example")
    page.locator("input[name=_continue]").click()
    errors = page.locator(".field-allowed_origins .errorlist")
    expect(errors).to_contain_text("only http:// and https:// websites can embed the chat")
    assert Shop.objects.get(pk=shop.pk).allowed_origins != "https://www.petal.example"

    # A bare host means https://; the address field takes a host and a path too.
    origins.fill("www.petal.example")
    page.locator("#id_privacy_notice").fill("We keep this conversation for 90 days.")
    page.locator("#id_privacy_url").fill("petal.example/privacy")
    page.locator("input[name=_continue]").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(origins).to_have_value("https://www.petal.example")
    expect(page.locator("#id_privacy_url")).to_have_value("https://petal.example/privacy")
    # Listed, but never seen from there: the chat is not ticked as live.
    live = page.locator("[data-testid=setup-checklist] li[data-item=live]")
    expect(live).to_have_attribute("data-done", "false")
    expect(live).to_contain_text("https://www.petal.example: not seen yet")
    page.context.close()
