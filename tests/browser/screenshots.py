"""
Screenshots of the open widget for the README: the demo storefront on the real server (test
database, real embedding model, FAQ answers), desktop 1280x800 and phone 390x844, light and dark.

Not part of the test run (the file name does not start with test_); make them with:

    SHOPBOT_TEST_DB=test_shots .venv/bin/python -m pytest tests/browser/screenshots.py

They land in docs/screenshots/widget-{desktop,mobile}-{light,dark}.png and
docs/screenshots/widget-did-you-mean.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, w, wait_answers

OUT = ROOT / "docs" / "screenshots"
SIZES = {"desktop": (1280, 800), "mobile": (390, 844)}

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_screenshot(browser, site, device, scheme):
    width, height = SIZES[device]
    mobile = device == "mobile"
    context = browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,
        device_scale_factor=2 if mobile else 1,
        is_mobile=mobile,
        has_touch=mobile,
        reduced_motion="reduce",  # no half-finished open animation in the picture
    )
    page = context.new_page()
    page.goto(site["server"].url)
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=30_000)
    page.get_by_role("button", name="Do you deliver to Princeton?").click()
    wait_answers(page, 1)
    w(page, "sb-fb-up").click()
    page.locator("[data-testid=sb-input]").focus()  # where a customer's focus would be
    page.mouse.move(1, 1)  # no hover highlight in the picture
    if mobile:  # full screen under 480px
        assert w(page, "sb-panel").bounding_box() == {"x": 0, "y": 0, "width": 390, "height": 844}
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"widget-{device}-{scheme}.png"))
    context.close()


def test_screenshot_did_you_mean(browser, site):
    """An unsure question: the fallback, the "Did you mean" buttons and the contact route."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    page = context.new_page()
    page.goto(site["server"].url)
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=30_000)
    w(page, "sb-input").fill("I want my money back")
    w(page, "sb-input").press("Enter")
    wait_answers(page, 1)
    expect(w(page, "sb-did-you-mean-option").first).to_be_visible()
    page.mouse.move(1, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "widget-did-you-mean.png"))
    context.close()
