"""
The owner's guide's screenshot of the hours editor: the demo shop's opening hours (the week, its
holiday rules, an inventory day) and the next 14 days, in the real admin on the real server.

Not part of the test run (the file name does not start with test_); make it with:

    SHOPBOT_TEST_DB=test_shots .venv/bin/python -m pytest tests/browser/screenshot_hours_editor.py

It lands in docs/screenshots/hours-editor.png.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from faq.demo import add_hours
from faq.hours.models import SpecialDay
from tests.browser.conftest import ROOT, committed_shop, signed_in

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "a-long-screenshot-password-1"

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture(scope="module")
def florist(django_db_blocker, start_server):
    server = start_server(wait=False)
    with committed_shop("Petal & Stem", "petal", PASSWORD, django_db_blocker) as shop:
        with django_db_blocker.unblock():  # committed: the server is another process
            add_hours(shop)
            hours = shop.opening_hours
            SpecialDay.objects.create(
                hours=hours, start=hours.today() + timedelta(days=3), note="Inventory day"
            )
        server.wait_ready()
        yield shop, server


def test_screenshot_hours_editor(browser, florist):
    shop, server = florist
    # Wide enough (1700 px and up) for the next 14 days beside the form, not below it.
    page = signed_in(browser, server.url, "petal", PASSWORD, width=1760, height=1100)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/change/")
    page.locator("ul.object-tools").get_by_role("link", name="Opening hours").click()
    page.wait_for_selector("[data-testid=hours-preview] tr")
    assert page.locator("[data-testid=hours-preview] tr").count() == 14
    page.mouse.move(1, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "hours-editor.png"), full_page=True)
    page.context.close()
