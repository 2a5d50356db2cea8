"""The opening hours on the owner's side and on the public FAQ page (issue 30): the hours editor
(admin/faq/shop/<id>/hours/) saves what is valid, answers each bad input with a sentence and keeps
what was typed, previews the next 14 days, and imports a website's schema.org hours after a
preview; the FAQ page lists the hours and describes the shop in JSON-LD. The clock is frozen
(time-machine); the database and the admin are real."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from bs4 import BeautifulSoup
from django.conf import settings as django_settings
from django.urls import reverse

from faq.demo import add_hours, shop_fields
from faq.hours.models import HolidayRule, ShopHours, SpecialDay, WeeklyRange
from faq.models import Shop
from owner.hours import IMPORT_SALT
from owner.shops import PREVIEW_SALT
from owner.views import PREVIEW_EXPIRED, PREVIEW_MAX_AGE, sign_preview
from tests.support import Site, make_owner

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 12, 7, 15, 0, tzinfo=NEW_YORK)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(MONDAY, tick=False):
        yield


@pytest.fixture
def shop(db) -> Shop:
    return Shop.objects.create(name="Corner Shop")


@pytest.fixture
def owner_client(client, shop):
    client.force_login(make_owner(shop, "olive"))
    return client


def page(shop: Shop) -> str:
    return reverse("admin:faq_shop_hours", args=[shop.pk])


def form_data(response, **changes) -> dict:
    """The page's forms as the browser would post them, with `changes` (field name -> value;
    None leaves a field out, as an unticked box)."""
    data = {"action": "save"}
    contexts = [response.context["form"], *response.context["tables"].values()]
    for item in contexts:
        forms = [item] if not hasattr(item, "management_form") else item.forms
        if hasattr(item, "management_form"):
            for field in item.management_form:
                data[field.html_name] = field.value()
        for form in forms:
            for field in form:
                value = field.value()
                if value is True:
                    data[field.html_name] = "on"
                elif value is not None and value is not False:
                    data[field.html_name] = (
                        value.strftime("%H:%M") if isinstance(value, time) else value
                    )
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def errors_of(response) -> str:
    return " ".join(BeautifulSoup(response.content, "html.parser").get_text(" ").split())


def test_an_owner_sets_the_hours_and_sees_the_next_14_days(owner_client, shop):
    change_page = owner_client.get(reverse("admin:faq_shop_change", args=[shop.pk]))
    assert page(shop) in change_page.content.decode()
    response = owner_client.get(page(shop))
    assert response.status_code == 200 and "No hours saved yet" in response.content.decode()
    # A new shop's time zone is shown as the one it has (TIME_ZONE), not the list's first.
    chosen = BeautifulSoup(response.content, "html.parser").select_one(
        "select[name=time_zone] option[selected]"
    )
    assert chosen is not None and chosen["value"] == django_settings.TIME_ZONE
    # A first week has a row for each day; once saved, three empty rows are offered.
    assert len(response.context["tables"]["week"].forms) == 7
    data = form_data(
        response,
        time_zone="America/New_York",
        holiday_country="US",
        holiday_subdivision="nj",
        public_holidays="closed",
        business_type="Florist",
        **{"week-0-weekday": "0", "week-0-opens": "09:00", "week-0-closes": "13:00"},
        **{"week-1-weekday": "0", "week-1-opens": "14:00", "week-1-closes": "18:00"},
        **{"week-2-weekday": "4", "week-2-opens": "18:00", "week-2-closes": "01:00"},
        **{"week-2-past_midnight": "on"},
        **{"exceptions-0-start": "2026-12-09", "exceptions-0-note": "Inventory day"},
        **{"exceptions-0-closed": "on"},
    )
    response = owner_client.post(page(shop), data)
    assert response.status_code == 302, errors_of(response)
    hours = ShopHours.objects.get(shop=shop)
    assert (hours.time_zone, hours.holiday_country, hours.holiday_subdivision) == (
        "America/New_York",
        "US",
        "NJ",
    )
    assert hours.business_type == "Florist" and hours.public_holidays == "closed"
    assert [str(r) for r in hours.week.all()] == [
        "Monday 09:00-13:00",
        "Monday 14:00-18:00",
        "Friday 18:00-01:00",
    ]
    assert hours.exceptions.get().note == "Inventory day"

    # Now the calendar is known, a holiday rule: chosen from its holidays.
    response = owner_client.get(page(shop))
    choices = dict(response.context["tables"]["holidays"].forms[0].fields["holiday"].widget.choices)
    assert "Christmas Day" in choices
    data = form_data(
        response,
        **{"holidays-0-holiday": "Christmas Eve", "holidays-0-action": "hours"},
        **{"holidays-0-opens": "09:00", "holidays-0-closes": "15:00"},
    )
    response = owner_client.post(page(shop), data)
    assert response.status_code == 302, errors_of(response)
    assert [str(r) for r in hours.holiday_rules.all()] == ["Christmas Eve: Other hours"]

    preview = owner_client.get(page(shop)).context["preview"]
    assert len(preview) == 14
    assert preview[0] == {
        "date": "2026-12-07",
        "title": "Monday, December 7",
        "hours": "9:00 AM to 1:00 PM and 2:00 PM to 6:00 PM",
        "open": True,
        "special": False,
    }
    assert preview[2]["title"] == "Wednesday, December 9 (Inventory day)"
    assert preview[2]["hours"] == "Closed"


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"time_zone": "Mars/Olympus"}, "“Mars/Olympus” is not a time zone we know."),
        ({"holiday_country": "XX"}, "“XX” is not a country the holiday calendar knows."),
        (
            {"week-0-weekday": "0", "week-0-opens": "18:00", "week-0-closes": "09:00"},
            "The closing time 09:00 is before the opening time 18:00. If you close after "
            "midnight, tick “closes after midnight”.",
        ),
        (
            {
                **{"week-0-weekday": "0", "week-0-opens": "09:00", "week-0-closes": "13:00"},
                **{"week-1-weekday": "0", "week-1-opens": "12:00", "week-1-closes": "18:00"},
            },
            "Monday 09:00-13:00 and Monday 12:00-18:00 overlap.",
        ),
        (
            {"exceptions-0-start": "2026-12-01", "exceptions-0-closed": "on"},
            "December 1, 2026 is in the past. Exceptions are for days to come.",
        ),
        (
            {"exceptions-0-start": "2026-12-20", "exceptions-0-end": "2026-12-18"},
            "The last day (December 18, 2026) is before the first (December 20, 2026).",
        ),
        (
            {"holidays-0-holiday": "Bastille Day", "holidays-0-action": "closed"},
            "“Bastille Day” is not a holiday of US-NJ in the holiday calendar.",
        ),
        ({"week-0-weekday": "0", "week-0-opens": "9 in the morning"}, "Enter a valid time."),
    ],
)
def test_bad_input_gets_a_sentence_and_loses_nothing(owner_client, shop, changes, sentence):
    hours = ShopHours.objects.create(
        shop=shop, time_zone="America/New_York", holiday_country="US", holiday_subdivision="NJ"
    )
    WeeklyRange.objects.create(hours=hours, weekday=5, opens=time(10), closes=time(16))
    before = [str(r) for r in hours.week.all()]
    response = owner_client.get(page(shop))
    data = form_data(response, **{"exceptions-1-note": "Keep this note", **changes})
    response = owner_client.post(page(shop), data)
    assert response.status_code == 200
    text = errors_of(response)
    assert sentence in text
    assert "Nothing was saved: please correct the errors below." in text
    # As typed: the page comes back with the owner's input.
    assert 'value="Keep this note"' in response.content.decode()
    hours.refresh_from_db()
    assert hours.time_zone == "America/New_York" and hours.holiday_country == "US"
    assert [str(r) for r in hours.week.all()] == before
    assert not SpecialDay.objects.exists() and not HolidayRule.objects.exists()


def test_another_owners_shop_is_not_found(client, shop):
    other = Shop.objects.create(name="Other Shop")
    client.force_login(make_owner(shop, "olive"))
    assert client.get(page(other)).status_code == 404


@pytest.fixture
def site() -> Iterator[Site]:
    with Site.serving() as site:
        yield site


def test_hours_imported_from_the_owners_page_after_a_preview(owner_client, shop, site, settings):
    settings.IMPORT_ALLOW_PRIVATE_HOSTS = True  # the test page is on loopback
    business = {
        "@context": "https://schema.org",
        "@type": "Bakery",
        "name": "Corner Shop",
        "openingHoursSpecification": [
            {
                "@type": "OpeningHoursSpecification",
                "dayOfWeek": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                "opens": "07:00",
                "closes": "15:00",
            },
            {
                "@type": "OpeningHoursSpecification",
                "dayOfWeek": "Saturday",
                "opens": "08:00",
                "closes": "12:00",
            },
        ],
        "specialOpeningHoursSpecification": [
            {
                "@type": "OpeningHoursSpecification",
                "validFrom": "2026-12-25",
                "validThrough": "2026-12-26",
                "name": "Christmas",
            },
        ],
    }
    url = site.page(
        "/contact",
        f'<html><script type="application/ld+json">{json.dumps(business)}</script></html>',
    )
    response = owner_client.post(page(shop), {"action": "import-fetch", "url": url})
    assert response.status_code == 200
    preview = errors_of(response)
    assert "Monday 7:00 AM to 3:00 PM" in preview and "Sunday Closed" in preview
    assert "December 25, 2026 to December 26, 2026 Closed (Christmas)" in preview
    assert not ShopHours.objects.exists()  # nothing saved before the owner says so

    payload = response.context["payload"]
    response = owner_client.post(page(shop), {"action": "import-save", "payload": payload})
    assert response.status_code == 302
    hours = ShopHours.objects.get(shop=shop)
    assert len(hours.week.all()) == 6
    assert [(e.start, e.end, e.closed) for e in hours.exceptions.all()] == [
        (date(2026, 12, 25), date(2026, 12, 26), True)
    ]
    # An altered preview is refused; a page without hours says so.
    assert (
        owner_client.post(page(shop), {"action": "import-save", "payload": "x"}).status_code == 400
    )
    url = site.page("/about", "<html><p>No hours here</p></html>")
    response = owner_client.post(page(shop), {"action": "import-fetch", "url": url})
    assert "The page's schema.org data has no openingHoursSpecification." in errors_of(response)


def test_a_preview_an_hour_old_another_shops_or_altered_saves_nothing(owner_client, shop):
    """Both imports (hours here, the FAQ page's questions) carry their preview signed for the shop
    (owner/views.py open_preview): an hour later it is said too old; another shop's preview, or an
    altered one, is a 400 with its sentence."""
    other = Shop.objects.create(name="Other Shop")
    week = {"week": [[0, ["09:00:00", "17:00:00", False]]], "specials": [], "holidays": False}
    pages = [
        (page(shop), {"action": "import-save"}, IMPORT_SALT, {"hours": week}),
        (
            reverse("admin:faq_shop_import_page", args=[shop.pk]),
            {"row": "0"},
            PREVIEW_SALT,
            {"faqs": []},
        ),
    ]
    for url, form, salt, data in pages:
        own = sign_preview(shop, salt, source="https://corner.example/", **data)
        with time_machine.travel(MONDAY + timedelta(seconds=PREVIEW_MAX_AGE + 1), tick=False):
            response = owner_client.post(url, {**form, "payload": own})
        assert response.status_code == 200, url
        assert PREVIEW_EXPIRED in errors_of(response), url
        for payload, sentence in [
            (own + "x", "The preview was altered; fetch the page again."),
            (
                sign_preview(other, salt, source="https://other.example/", **data),
                "This preview belongs to another shop.",
            ),
        ]:
            response = owner_client.post(url, {**form, "payload": payload})
            assert (response.status_code, response.content.decode()) == (400, sentence), url
    assert not ShopHours.objects.exists() and not shop.entries.exists()


def test_the_faq_page_shows_the_hours_and_describes_the_shop(client, db):
    shop = Shop.objects.create(**shop_fields())
    add_hours(shop)
    response = client.get(shop.get_absolute_url())
    assert response.status_code == 200
    soup = BeautifulSoup(response.content, "html.parser")
    section = soup.find(id="opening-hours")
    rows = [" ".join(tr.get_text(" ").split()) for tr in section.find_all("tr")]
    assert rows[0] == "Monday, December 7 9:00 AM to 6:00 PM"
    assert len(rows) == 7 and rows[6] == "Sunday, December 13 10:00 AM to 2:00 PM"
    coming = [" ".join(li.get_text().split()) for li in section.find_all("li")]
    assert "Christmas Day (Friday, December 25): Closed" in coming
    assert "Christmas Eve (Thursday, December 24): 9:00 AM to 3:00 PM" in coming

    blocks = [json.loads(s.string) for s in soup.find_all("script", type="application/ld+json")]
    assert [b["@type"] for b in blocks] == ["FAQPage", "Florist"]
    florist = blocks[1]
    assert florist["name"] == shop.name and florist["url"].endswith(shop.get_absolute_url())
    assert florist["openingHoursSpecification"][0] == {
        "@type": "OpeningHoursSpecification",
        "dayOfWeek": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
        "opens": "09:00",
        "closes": "18:00",
    }
    special = {s["validFrom"]: s for s in florist["specialOpeningHoursSpecification"]}
    christmas = special["2026-12-25"]
    assert christmas["validThrough"] == "2026-12-25"
    assert (christmas["opens"], christmas["closes"]) == ("00:00", "00:00")  # closed all day
    assert (special["2026-12-24"]["opens"], special["2026-12-24"]["closes"]) == ("09:00", "15:00")
    # The chat's answers link here.
    assert re.search(r'id="opening-hours"', response.content.decode())


def test_a_shop_without_hours_has_no_hours_section(client, shop):
    response = client.get(shop.get_absolute_url())
    assert b'id="opening-hours"' not in response.content
    assert response.content.count(b"application/ld+json") == 1
