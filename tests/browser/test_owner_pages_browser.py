"""
The owner's pages as a new owner meets them in a real browser (Debian's Chromium via Playwright,
the real server and embedding model): an "Add your shop" link on the admin home, Try a question's
"Add this wording" (the check that keeps a wording from pulling another entry's questions
included), and the opening-hours editor fitting a 1280 px window.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from faq.models import FAQEntry
from tests.browser.conftest import OWNER_PASSWORD, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

PASSWORD = "a-long-owner-pages-password-1"
REFUNDS = "What if I'm not happy with my order?"


@pytest.fixture
def owner_page(browser, site, site_owner) -> Iterator[Page]:
    page = signed_in(browser, site["server"].url, site_owner, OWNER_PASSWORD)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def founder(django_db_blocker) -> Iterator[str]:
    """Whoever installed ShopBot: the superuser `createsuperuser` made (committed)."""
    with django_db_blocker.unblock():
        User.objects.create_superuser("founder", "founder@example.com", PASSWORD)
    yield "founder"
    with django_db_blocker.unblock():
        User.objects.filter(username="founder").delete()


def test_the_admin_home_links_to_adding_a_shop(browser, site, founder):
    """A new installation's owner (the superuser) finds "Add your shop" where their shops are
    listed; an owner who cannot add shops does not."""
    page = signed_in(browser, site["server"].url, founder, PASSWORD)
    expect(page.locator("#owner-shops")).to_contain_text("Your shops")
    page.locator("[data-testid=add-shop]").click()
    expect(page).to_have_url(f"{site['server'].url}/admin/faq/shop/add/")
    expect(page.locator("#id_name")).to_be_visible()
    page.context.close()


def test_an_owner_cannot_add_a_shop_from_the_admin_home(owner_page, site):
    expect(owner_page.locator("#owner-shops")).to_contain_text(site["shop"].name)
    expect(owner_page.locator("[data-testid=add-shop]")).to_have_count(0)


def test_try_a_question_adds_the_wording_to_the_right_entry(owner_page, site):
    page, shop, server = owner_page, site["shop"], site["server"]
    wording = "I want my money back"  # below the bar, plainly about refunds
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/try/?q={wording.replace(' ', '+')}")
    row = page.locator("#result_list tbody tr").filter(has_text=REFUNDS)
    expect(row).to_have_count(1)
    row.locator("[data-testid=add-wording]").click()
    expect(page.locator(".messagelist")).to_contain_text(
        f"Added “{wording}” as a phrasing of “{REFUNDS}”"
    )
    assert wording in FAQEntry.objects.get(shop=shop, question=REFUNDS).alternative_list
    # Back on the same question, that entry says so instead of offering the button again.
    expect(page.locator("#id_q")).to_have_value(wording)
    row = page.locator("#result_list tbody tr").filter(has_text=REFUNDS)
    expect(row.locator("[data-testid=has-wording]")).to_be_visible()

    # A delivery question offered to another entry: the check refuses it, nothing is added.
    delivery = "Do you deliver to Trenton?"
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/try/?q={delivery.replace(' ', '+')}")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first).to_contain_text("deliver")
    other = rows.nth(rows.count() - 1)
    other_question = other.locator("td").nth(1).inner_text()
    other.locator("[data-testid=add-wording]").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Not added: “{delivery}” is closer to")
    entry = FAQEntry.objects.get(shop=shop, question=other_question)
    assert delivery not in entry.alternative_list


def test_the_opening_hours_editor_fits_a_1280_px_window(owner_page, site):
    page, shop = owner_page, site["shop"]
    page.goto(f"{site['server'].url}/admin/faq/shop/{shop.pk}/hours/")
    expect(page.locator("[data-testid=hours-form]")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width
    content = page.locator("#content-main").bounding_box()
    for part in ("hours-week", "hours-exceptions", "hours-holidays", "hours-preview"):
        box = page.locator(f"[data-testid={part}]").bounding_box()
        assert box["x"] + box["width"] <= content["x"] + content["width"] + 0.5, (part, box)
