"""
The Content-Security-Policy (issue 28) in a real browser (Debian's headless Chromium via
Playwright) against the real server: the storefront with the chat, the public FAQ page and the
admin all work under it, and the browser reports no violation on any of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import DELIVERY, ask, open_widget, w, wait_answers

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

PASSWORD = "csp-test-password-1"


def violations(page: Page) -> list[str]:
    """CSP violations the page reports from now on (Chromium also logs each to the console)."""
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return seen


@pytest.fixture(scope="module")
def superuser(site, django_db_blocker) -> Iterator[str]:
    with django_db_blocker.unblock():
        User.objects.create_superuser("csp-admin", "", PASSWORD)
    yield "csp-admin"
    with django_db_blocker.unblock():
        User.objects.filter(username="csp-admin").delete()


def test_the_storefront_and_its_chat_work_under_the_policy(page, site):
    seen = violations(page)
    response = page.goto(site["server"].url)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    open_widget(page, site["server"].url)
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1)
    expect(w(page, "sb-sources")).to_contain_text(DELIVERY)
    assert seen == []


def test_the_faq_page_and_its_search_work_under_the_policy(page, site):
    seen = violations(page)
    shop = site["shop"]
    response = page.goto(f"{site['server'].url}/faq/{shop.slug}/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.fill("#faq-q", "can you bring flowers to princeton")
    page.click(".faq-search button")
    expect(page.locator("[data-testid=faq-results] ol li a").first).to_have_text(DELIVERY)
    assert seen == []


def test_the_admin_works_under_the_policy(page, site, superuser):
    seen = violations(page)
    server, shop = site["server"], site["shop"]
    response = page.goto(f"{server.url}/admin/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("#id_username", superuser)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(superuser)

    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/change/")
    snippet = page.locator("textarea[data-select-on-click]")
    snippet.click()  # selected whole, ready to copy (admin.js, no inline handler)
    selected = snippet.evaluate("t => t.value.substring(t.selectionStart, t.selectionEnd)")
    assert selected == snippet.input_value() and "widget.js" in selected

    page.goto(f"{server.url}/admin/faq/faqentry/?shop__id__exact={shop.pk}")
    expect(page.locator("#result_list")).to_contain_text(DELIVERY)
    page.goto(f"{server.url}/admin/faq/faqentry/add/")
    expect(page.locator("#faqentry_form")).to_be_visible()
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/dashboard/")
    assert seen == []
