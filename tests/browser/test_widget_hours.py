"""
The shop's opening hours in the customer's browser (issue 30), in Debian's headless Chromium
against the real server (another process, so the real clock): the header shows the status line the
`ready` frame carries ("Open now · closes at 6:00 PM"), and a question about opening times is
answered from the hours (mode `hours`), with the FAQ page's hours section as its source.

With SHOPBOT_SAVE_SCREENSHOTS=1 it saves docs/screenshots/widget-hours.png (the header and the
answer) for the owner's guide.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from faq.hours import questions
from faq.hours.models import shop_schedule
from tests.browser.conftest import SCREENSHOTS, ask, open_widget, w, wait_answers

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def status_texts(shop) -> set[str]:
    """The status line now, and a minute from now (the test may cross a change)."""
    schedule = shop_schedule(shop.pk)
    now = timezone.now()
    return {
        questions.status_line(schedule, moment, "en")["text"]
        for moment in (now, now + timezone.timedelta(minutes=1))
    }


def test_the_header_shows_the_hours_and_an_hours_question_is_answered_from_them(page, site):
    expected = status_texts(site["shop"])
    open_widget(page, site["server"].url)
    hours = w(page, "sb-hours")
    expect(hours).to_be_visible()
    assert hours.text_content() in expected
    assert hours.text_content().startswith(("Open now", "Closed now"))

    ask(page, "Are you open on Christmas?")
    wait_answers(page, 1)
    answer = page.locator("[data-testid=sb-bot][data-state=final]")
    expect(answer).to_have_attribute("data-mode", "hours")
    expect(answer).to_contain_text("We're closed on Christmas Day")
    source = w(page, "sb-sources").get_by_role("link", name="Opening hours")
    expect(source).to_have_attribute(
        "href", f"{site['server'].url}{site['shop'].get_absolute_url()}#opening-hours"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(1, 1)
    w(page, "sb-panel").screenshot(path=str(SCREENSHOTS / "widget-hours.png"))
