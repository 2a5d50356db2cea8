"""
The README's screenshots of the public FAQ page (the demo shop's page after a search, on the real
server, with the chat's launcher in the corner), of the set-up checklist, and of Try a question
on an unsure question (what the customer would see, and "Add this wording").

Not part of the test run (the file name does not start with test_); make it with:

    SHOPBOT_TEST_DB=test_shots .venv/bin/python -m pytest tests/browser/screenshot_faq_page.py

They land in docs/screenshots/faq-page.png, setup-checklist.png and try-a-question.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OWNER_PASSWORD, ROOT, signed_in, w

OUT = ROOT / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_screenshot_faq_page(browser, site):
    shop, server = site["shop"], site["server"]
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/faq/{shop.slug}/?q=do+you+deliver+on+sundays")
    expect(w(page, "sb-launcher")).to_be_visible()
    page.mouse.move(1, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "faq-page.png"))
    context.close()


def test_screenshot_setup_checklist(browser, site, site_owner):
    shop, server = site["shop"], site["server"]
    page = signed_in(browser, server.url, site_owner, OWNER_PASSWORD, height=800)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/change/")
    box = page.locator("[data-testid=setup-checklist]")
    expect(box).to_be_visible()
    box.screenshot(path=str(OUT / "setup-checklist.png"))
    page.context.close()


def test_screenshot_try_a_question(browser, site, site_owner):
    shop, server = site["shop"], site["server"]
    page = signed_in(browser, server.url, site_owner, OWNER_PASSWORD)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/try/?q=I+want+my+money+back")
    expect(page.locator("[data-testid=try-suggestion]").first).to_be_visible()
    expect(page.locator("[data-testid=add-wording]").first).to_be_visible()
    page.mouse.move(1, 1)
    page.screenshot(path=str(OUT / "try-a-question.png"), full_page=True)
    page.context.close()
