"""
The README's screenshot of "Import from your website": the preview of a Squarespace-style FAQ page
against a shop that already has two of its questions, in the real admin on the real server.

Not part of the test run (the file name does not start with test_); make it with:

    SHOPBOT_TEST_DB=test_shots .venv/bin/python -m pytest tests/browser/screenshot_faq_import.py

It lands in docs/screenshots/import-preview.png.
"""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faq.models import FAQEntry
from tests.browser.conftest import ROOT, committed_shop, signed_in

OUT = ROOT / "docs" / "screenshots"
PAGES = ROOT / "tests" / "faq_pages"
PASSWORD = "a-long-screenshot-password-1"

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture(scope="module")
def faq_site():
    handler = partial(SimpleHTTPRequestHandler, directory=str(PAGES))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def juniper(django_db_blocker, start_server):
    # The owner's page is on loopback here, which a real installation refuses.
    server = start_server(wait=False, IMPORT_ALLOW_PRIVATE_HOSTS="1")
    with committed_shop("Juniper Yoga", "juniper", PASSWORD, django_db_blocker) as shop:
        with django_db_blocker.unblock():  # committed: the server is another process
            FAQEntry.objects.create(
                shop=shop, question="Cancellation policy", answer="Cancel 24 hours ahead."
            )
            FAQEntry.objects.create(
                shop=shop,
                question="Can I pause my membership?",
                answer="Yes, once a year for up to a month. Email hello@juniper.example.",
                category="Memberships",
            )
        server.wait_ready()
        yield shop, server


def test_screenshot_import_preview(browser, juniper, faq_site):
    shop, server = juniper
    page = signed_in(browser, server.url, "juniper", PASSWORD, height=800)
    page.goto(f"{server.url}/admin/faq/shop/{shop.pk}/change/")
    page.get_by_role("link", name="Import from your website").click()
    page.fill("#id_url", f"{faq_site}/squarespace_accordion.html")
    page.get_by_role("button", name="Find questions").click()
    page.wait_for_selector("table.import-preview")
    assert page.locator("table.import-preview tbody tr").count() == 3
    page.mouse.move(1, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    height = page.locator(".submit-row").bounding_box()["y"] + 80  # no empty page below
    page.screenshot(
        path=str(OUT / "import-preview.png"), clip={"x": 0, "y": 0, "width": 1280, "height": height}
    )
    page.context.close()
