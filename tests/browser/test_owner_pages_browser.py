"""
The owner's pages as a new owner meets them in a real browser (Debian's Chromium via Playwright,
the real server and embedding model): an "Add your shop" link on the admin home, Try a question's
"Add this wording" (the check that keeps a wording from pulling another entry's questions
included, and the page waiting for the worker to index it), a customer request's reply said
"being emailed" and then "emailed" as the worker sends it, and the opening-hours editor fitting a
1280 px window.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from faq.models import FAQEntry
from harness.daphne_process import DaphneProcess, free_port
from tests.browser.conftest import (
    OWNER_PASSWORD,
    ROOT,
    SERVER_APP_NAME,
    server_env,
    signed_in,
)
from tests.support import Inbox, make_handoff, server_database_url, stored_conversation
from widget.models import Handoff

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


@pytest.fixture(scope="module")
def queued_server(start_server) -> DaphneProcess:
    """A server whose jobs wait in the queue for the worker, as in production (the shared one runs
    them at commit). The owner is signed in there too: the session is in the database both
    servers share, and its cookie is per host."""
    return start_server(JOBS_AT_COMMIT="False")


def run_worker_once(**env: str) -> None:
    """What `make run`'s worker does within seconds: the jobs due now, in a process of its own."""
    subprocess.run(
        [sys.executable, "manage.py", "worker", "--once"],
        cwd=ROOT,
        env=server_env(
            DATABASE_URL=server_database_url(SERVER_APP_NAME), JOBS_AT_COMMIT="False", **env
        ),
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_an_added_wording_is_said_to_wait_for_the_worker_and_tried_again_once_in(
    owner_page, site, queued_server
):
    """The page says the bot learns the wording in a few seconds, not that it already has; once
    the worker has indexed it, the page tries the question again by itself and the verdict is
    the new one."""
    page, shop, server = owner_page, site["shop"], queued_server
    wording = "the roses were wilted, can I get a refund"
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/try/?q={wording.replace(' ', '+')}")
    expect(page.locator(".verdict")).to_contain_text("Not confident")
    expect(page.locator("[data-testid=index-waiting]")).to_have_count(0)
    row = page.locator("#result_list tbody tr").filter(has_text=REFUNDS)
    row.locator("[data-testid=add-wording]").click()
    expect(page.locator(".messagelist")).to_contain_text("The bot uses it in a few seconds")
    waiting = page.locator("[data-testid=index-waiting]")
    expect(waiting).to_contain_text("The bot is still learning 1 change")
    expect(page.locator(".verdict")).to_contain_text("Not confident")  # from before the change

    run_worker_once()  # the queued re-embedding
    expect(waiting).to_have_count(0, timeout=30_000)  # the page tried the question again
    expect(page.locator(".verdict")).to_contain_text("Confident")
    expect(page.locator(".verdict")).to_contain_text(REFUNDS)


@pytest.fixture(scope="module")
def customer_request(site, django_db_blocker) -> Iterator[Handoff]:
    """A customer's request for a person, committed (the server is another process)."""
    with django_db_blocker.unblock():
        conversation = stored_conversation(
            site["shop"], [("Can you fix my car?", {"mode": "fallback"})]
        )
        handoff = make_handoff(conversation, email="ann@example.com", note="Car?")
    yield handoff
    with django_db_blocker.unblock():
        conversation.delete()


def test_a_replys_email_is_said_to_be_on_its_way_then_emailed_without_a_reload(
    owner_page, queued_server, customer_request
):
    """The request's page said "queued" and stayed so: now "being emailed", and the state it
    reaches (emailed, with the time) appears in place once the worker has sent it."""
    page, server, handoff = owner_page, queued_server, customer_request
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        page.goto(f"{server.url}/admin/widget/handoff/{handoff.pk}/change/")
        page.fill("#id_text", "We don't, but Joe's Garage on Main Street does.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.locator(".messagelist")).to_contain_text(
            "it is being emailed to ann@example.com"
        )
        state = page.locator("[data-testid=reply-email]")
        expect(state).to_have_attribute("data-state", "queued")
        expect(state).to_contain_text("being emailed to ann@example.com now")
        page.fill("#id_text", "half-written second reply")  # the owner keeps typing

        run_worker_once(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), EMAIL_USE_TLS="0")
        # (the owners' email about the request goes out with it)
        assert ["ann@example.com"] in [to for to, _ in inbox.wait(1)]
        expect(state).to_have_attribute("data-state", "sent", timeout=15_000)
        expect(state).to_contain_text("emailed to ann@example.com on")
        expect(page.locator("#id_text")).to_have_value("half-written second reply")
    finally:
        smtp.stop()


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
