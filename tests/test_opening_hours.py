"""Opening hours as data (issue 30): the models' rules, the computation across daylight-saving
changes and past midnight, holidays, questions answered in English, Spanish and German (and the
delivery questions left to the FAQ), the widget's status line, and the schema.org JSON-LD both
ways. The clock is frozen with time-machine; the models are saved in the real test database."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation.trans_real import translation

from faq.demo import add_hours, load_shop, shop_fields
from faq.hours import questions, schemaorg
from faq.hours import schedule as sched
from faq.hours.models import HolidayRule, ShopHours, SpecialDay, WeeklyRange
from faq.models import Shop
from tests.support import make_demo_shop

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def demo_hours() -> ShopHours:
    """Petal & Stem's hours, loaded by the demo's own loader (no FAQ entries needed here)."""
    shop = Shop.objects.create(**shop_fields())
    add_hours(shop)
    return shop.opening_hours


def ask(hours: ShopHours, text: str, language: str = "en") -> str | None:
    return questions.answer_question(hours.schedule(), text, timezone.now(), language)


# --- Computation --------------------------------------------------------------------------------


def test_a_range_past_midnight_belongs_to_the_day_it_opens():
    # Friday 6 PM to 1 AM (Saturday), nothing else.
    schedule = sched.Schedule(NEW_YORK, {4: (sched.Range(time(18), time(1), True),)})
    friday_night = at(NEW_YORK, 2026, 12, 11, 23, 30)
    saturday_early = at(NEW_YORK, 2026, 12, 12, 0, 30)
    assert sched.status(schedule, friday_night) == sched.Status(
        True, at(NEW_YORK, 2026, 12, 12, 1, 0)
    )
    state = sched.status(schedule, saturday_early)
    assert state.open and state.next_change.isoformat() == "2026-12-12T01:00:00-05:00"
    after = sched.status(schedule, at(NEW_YORK, 2026, 12, 12, 1, 0))
    assert not after.open and after.next_change.isoformat() == "2026-12-18T18:00:00-05:00"
    assert sched.is_open(schedule, saturday_early)
    assert sched.next_change(schedule, saturday_early) == at(NEW_YORK, 2026, 12, 12, 1, 0)
    # Saturday's own hours are none: the range is Friday's.
    assert sched.day_hours(schedule, date(2026, 12, 12)).closed
    text = questions.answer_question(schedule, "are you open now?", saturday_early, "en")
    assert text == "We're open now, until 1:00 AM."


def test_across_the_spring_daylight_saving_change():
    # New York springs forward on Sunday March 8, 2026 at 2 AM: Saturday 8 PM to 3 AM is six
    # hours that night, not seven.
    schedule = sched.Schedule(NEW_YORK, {5: (sched.Range(time(20), time(3), True),)})
    (opens, closes), *_ = sched.intervals(schedule, date(2026, 3, 7), date(2026, 3, 8))
    assert (closes - opens).total_seconds() == 6 * 3600
    state = sched.status(schedule, at(NEW_YORK, 2026, 3, 8, 1, 59))
    assert state.open and state.next_change.isoformat() == "2026-03-08T03:00:00-04:00"
    # A shop open every day 9 to 6 in Berlin, the night Europe changes (March 29, 2026): the
    # next opening is 9:00 summer time, 07:00 UTC, not 08:00.
    daily = sched.Schedule(BERLIN, {d: (sched.Range(time(9), time(18)),) for d in range(7)})
    state = sched.status(daily, at(BERLIN, 2026, 3, 28, 20, 0))
    assert state == sched.Status(False, at(BERLIN, 2026, 3, 29, 9, 0))
    assert state.next_change.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert state.next_change.isoformat() == "2026-03-29T09:00:00+02:00"


def test_across_the_autumn_daylight_saving_change():
    # New York falls back on Sunday November 1, 2026 at 2 AM: 0:30 to 2:00 lasts 2.5 hours, and
    # at 1:15 the second time (standard time) the shop is still open.
    schedule = sched.Schedule(NEW_YORK, {6: (sched.Range(time(0, 30), time(2)),)})
    second_one_fifteen = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)
    assert second_one_fifteen.astimezone(NEW_YORK).strftime("%H:%M %Z") == "01:15 EST"
    state = sched.status(schedule, second_one_fifteen)
    assert state.open and state.next_change.isoformat() == "2026-11-01T02:00:00-05:00"
    (opens, closes), *_ = sched.intervals(schedule, date(2026, 11, 1), date(2026, 11, 1))
    assert (closes - opens).total_seconds() == 2.5 * 3600


@pytest.mark.django_db
def test_the_demo_shops_week_holidays_and_next_days():
    hours = demo_hours()
    schedule = hours.schedule()
    assert [(r.opens, r.closes) for r in schedule.week[0]] == [(time(9), time(18))]
    assert [(r.opens, r.closes) for r in schedule.week[5]] == [(time(9), time(17))]
    assert [(r.opens, r.closes) for r in schedule.week[6]] == [(time(10), time(14))]

    def said(day: date) -> tuple:
        hours = sched.day_hours(schedule, day)
        return hours.kind, hours.name, [(r.opens.hour, r.closes.hour) for r in hours.ranges]

    assert said(date(2026, 11, 26)) == ("holiday", "Thanksgiving Day", [])  # a Thursday
    assert said(date(2026, 12, 24)) == ("holiday", "Christmas Eve", [(9, 15)])
    assert said(date(2026, 12, 25)) == ("holiday", "Christmas Day", [])
    assert said(date(2027, 1, 1)) == ("holiday", "New Year's Day", [])
    assert said(date(2027, 2, 14)) == ("holiday", "Valentine's Day", [(7, 19)])  # a Sunday
    assert said(date(2027, 3, 28)) == ("holiday", "Easter Sunday", [])  # a Sunday
    assert said(date(2027, 5, 9)) == ("holiday", "Mother's Day", [(8, 15)])  # a Sunday
    # A public holiday the shop made no rule for: open as usual.
    assert said(date(2027, 1, 18)) == ("holiday", "Martin Luther King Jr. Day", [(9, 18)])

    fortnight = sched.days(schedule, date(2026, 12, 20), 14)
    assert len(fortnight) == 14
    assert [d.day for d in sched.upcoming_specials(schedule, date(2026, 12, 20), 14)] == [
        date(2026, 12, 24),
        date(2026, 12, 25),
        date(2026, 12, 31),
        date(2027, 1, 1),
    ]
    state = sched.status(schedule, at(NEW_YORK, 2026, 12, 24, 16, 0))
    assert state == sched.Status(False, at(NEW_YORK, 2026, 12, 26, 9, 0))
    assert sched.next_opening(schedule, at(NEW_YORK, 2026, 12, 24, 10, 0)) == at(
        NEW_YORK, 2026, 12, 26, 9, 0
    )


@pytest.mark.django_db
def test_load_demo_adds_the_hours_to_a_demo_without_them_and_keeps_an_owners(
    demo_texts_embedded,
):
    demo = make_demo_shop(demo_texts_embedded, is_demo=True)
    assert demo.opening_hours.week.count() == 7
    ShopHours.objects.filter(shop=demo).delete()  # a demo loaded before hours existed
    shop, created = load_shop()
    assert (shop.pk, created) == (demo.pk, False)
    hours = ShopHours.objects.get(shop=demo)
    assert (hours.time_zone, hours.holiday_rules.count()) == ("America/New_York", 8)
    hours.week.filter(weekday=6).update(closes=time(15))  # the owner's change
    load_shop()
    assert ShopHours.objects.get(shop=demo).week.get(weekday=6).closes == time(15)


def german_shop_hours(
    name: str, subdivision: str, weekdays: range, opens: time, closes: time
) -> ShopHours:
    """A German shop's hours: closed on the public holidays of `subdivision` (a state), open
    `opens` to `closes` on `weekdays` (Monday = 0)."""
    hours = ShopHours.objects.create(
        shop=Shop.objects.create(name=name, language="de"),
        time_zone="Europe/Berlin",
        holiday_country="DE",
        holiday_subdivision=subdivision,
        public_holidays=ShopHours.OnHolidays.CLOSED,
    )
    for day in weekdays:
        WeeklyRange.objects.create(hours=hours, weekday=day, opens=opens, closes=closes)
    return hours


@pytest.mark.django_db
def test_a_closed_public_holiday_on_a_weekday_and_on_a_sunday():
    """A German shop closed on public holidays: Easter Monday (a Monday) and, in Brandenburg,
    Easter Sunday, a Sunday it is otherwise open."""
    hours = german_shop_hours("Blumen Berlin", "BB", range(7), time(10), time(16))
    schedule = hours.schedule()
    sunday, monday = (
        sched.day_hours(schedule, date(2027, 3, 28)),
        sched.day_hours(schedule, date(2027, 3, 29)),
    )
    assert (sunday.kind, sunday.name, sunday.closed) == ("holiday", "Easter Sunday", True)
    assert (monday.kind, monday.name, monday.closed) == ("holiday", "Easter Monday", True)
    assert not sched.day_hours(schedule, date(2027, 3, 30)).closed
    with time_machine.travel(at(BERLIN, 2027, 3, 24, 12, 0), tick=False):
        assert ask(hours, "Habt ihr am Sonntag geöffnet?", "de") == (
            "Am Ostersonntag (Sonntag, 28. März) haben wir geschlossen. Wir öffnen wieder am "
            "Dienstag, 30. März um 10:00 Uhr. Sonst haben wir am Sonntag von 10:00 bis 16:00 Uhr "
            "geöffnet."
        )


@pytest.mark.django_db
def test_a_holiday_of_the_shops_own_calendar_named_in_its_language():
    hours = german_shop_hours("Blumen München", "BY", range(6), time(9), time(18))
    with time_machine.travel(at(BERLIN, 2027, 5, 20, 12, 0), tick=False):
        assert ask(hours, "Habt ihr an Fronleichnam geöffnet?", "de") == (
            "Am Fronleichnam (Donnerstag, 27. Mai) haben wir geschlossen. Wir öffnen wieder am "
            "Freitag, 28. Mai um 09:00 Uhr."
        )
        assert ask(hours, "Are you open on Corpus Christi?", "en") == (
            "We're closed on Corpus Christi (Thursday, May 27). We open again on Friday, May 28 "
            "at 9:00 AM."
        )
        # A holiday this calendar does not have: left to the FAQ, not answered for another day.
        assert ask(hours, "Habt ihr an Thanksgiving offen?", "de") is None


@pytest.mark.django_db
def test_an_exception_with_a_note_and_a_lunch_closing():
    hours = demo_hours()
    with time_machine.travel(at(NEW_YORK, 2026, 12, 7, 10, 0), tick=False):
        inventory = SpecialDay(hours=hours, start=date(2027, 1, 4), note="Inventory day")
        inventory.full_clean()
        inventory.save()
        for opens, closes in ((time(9), time(12)), (time(13), time(17))):
            row = SpecialDay(
                hours=hours, start=date(2027, 1, 5), closed=False, opens=opens, closes=closes
            )
            row.full_clean()
            row.save()
        assert ask(hours, "Are you open on January 4?") == (
            "We're closed on Monday, January 4 (Inventory day). We open again on Tuesday, "
            "January 5 at 9:00 AM."
        )
        assert ask(hours, "are you open on jan 5th?") == (
            "On Tuesday, January 5 we're open 9:00 AM to 12:00 PM and 1:00 PM to 5:00 PM."
        )


def test_a_kept_status_is_given_only_until_its_change():
    """status() keeps its last answer on the Schedule: asked again before the change it is the
    same, at the change and after it, or at an earlier moment, it is worked out again."""
    week = sched.Schedule(NEW_YORK, {4: (sched.Range(time(9), time(18)),)})  # Fridays 9 to 6
    closes = sched.Status(True, at(NEW_YORK, 2026, 12, 11, 18, 0))
    opens_next = sched.Status(False, at(NEW_YORK, 2026, 12, 18, 9, 0))
    assert sched.status(week, at(NEW_YORK, 2026, 12, 11, 10, 0)) == closes
    assert sched.status(week, at(NEW_YORK, 2026, 12, 11, 17, 59)) == closes
    assert sched.status(week, at(NEW_YORK, 2026, 12, 11, 18, 0)) == opens_next
    assert sched.status(week, at(NEW_YORK, 2026, 12, 17, 23, 0)) == opens_next
    earlier = sched.status(week, at(NEW_YORK, 2026, 12, 10, 12, 0))
    assert earlier == sched.Status(False, at(NEW_YORK, 2026, 12, 11, 9, 0))
    # Open around the clock: the change is at the horizon, and is worked out every time.
    always = sched.Schedule(NEW_YORK, {day: (sched.Range(time(0), time(0)),) for day in range(7)})
    first = sched.status(always, at(NEW_YORK, 2026, 12, 11, 10, 0))
    later = sched.status(always, at(NEW_YORK, 2026, 12, 18, 10, 0))
    assert later.next_change - first.next_change == timedelta(days=7)


# --- Time counted in opening hours (the hand-off reminder, issue 31) -----------------------------

# Monday to Friday 9 to 6, Saturday 10 to 2, closed on Sunday and on US public holidays.
SHOP_WEEK = sched.Schedule(
    NEW_YORK,
    {
        **{day: (sched.Range(time(9), time(18)),) for day in range(5)},
        5: (sched.Range(time(10), time(14)),),
    },
    country="US",
    closed_on_public_holidays=True,
)


def test_open_time_skips_the_closed_night_and_the_weekend():
    friday_5pm = at(NEW_YORK, 2026, 12, 4, 17, 0)
    # Friday 5 to 6 PM, then Saturday 10 AM to 2 PM, then nothing until Monday 9 AM.
    assert sched.open_since(SHOP_WEEK, at(NEW_YORK, 2026, 12, 5, 11, 0), timedelta(hours=2)) == (
        friday_5pm
    )
    assert sched.open_since(SHOP_WEEK, at(NEW_YORK, 2026, 12, 7, 10, 0), timedelta(hours=6)) == (
        friday_5pm
    )
    monday_10am = at(NEW_YORK, 2026, 12, 7, 10, 0)
    assert sched.open_time(SHOP_WEEK, friday_5pm, monday_10am) == timedelta(hours=6)
    # At night the answer stays where the shop closed: nothing is counted while it is shut.
    night = sched.open_since(SHOP_WEEK, at(NEW_YORK, 2026, 12, 8, 3, 0), timedelta(hours=1))
    assert night == at(NEW_YORK, 2026, 12, 7, 17, 0)
    # 24 opening hours back from Monday noon: Monday 3, Saturday 4, Friday 9, Thursday 8.
    assert sched.open_since(SHOP_WEEK, at(NEW_YORK, 2026, 12, 7, 12, 0), timedelta(hours=24)) == (
        at(NEW_YORK, 2026, 12, 3, 10, 0)
    )


def test_open_time_skips_a_closed_holiday_and_counts_across_daylight_saving():
    # Christmas Day 2026 is a Friday, closed: Thursday 5 to 6 PM, then Saturday from 10.
    assert sched.open_since(SHOP_WEEK, at(NEW_YORK, 2026, 12, 26, 11, 0), timedelta(hours=2)) == (
        at(NEW_YORK, 2026, 12, 24, 17, 0)
    )
    # Open around the clock across the spring change (March 14, 2027: a 23-hour day): 24 hours
    # of opening are 24 hours of elapsed time, not a calendar day.
    always = sched.Schedule(NEW_YORK, {day: (sched.Range(time(0), time(0)),) for day in range(7)})
    moment = at(NEW_YORK, 2027, 3, 14, 12, 0)
    assert sched.open_since(always, moment, timedelta(hours=24)) == moment - timedelta(hours=24)
    # Never open long enough within the horizon.
    rarely = sched.Schedule(NEW_YORK, {0: (sched.Range(time(9), time(10)),)})
    assert sched.open_since(rarely, moment, timedelta(hours=1000)) is None


def test_the_reminder_cutoff_in_opening_hours_plain_hours_and_at_the_latest():
    from widget.handoff_email import LATEST_REMINDER, due_before

    monday_10am = at(NEW_YORK, 2026, 12, 7, 10, 0)
    wait = timedelta(hours=6)
    # With hours: a request left on Friday at 5 PM is due on Monday at 10, not on Friday at 11 PM.
    assert due_before(SHOP_WEEK, monday_10am, wait) == at(NEW_YORK, 2026, 12, 4, 17, 0)
    # Without hours: plain hours.
    assert due_before(None, monday_10am, wait) == monday_10am - wait
    # A shop open an hour a week still hears of a request within LATEST_REMINDER.
    rarely = sched.Schedule(NEW_YORK, {0: (sched.Range(time(9), time(10)),)})
    assert due_before(rarely, monday_10am, timedelta(hours=24)) == monday_10am - LATEST_REMINDER
    assert due_before(None, monday_10am, timedelta(days=30)) == monday_10am - LATEST_REMINDER


# --- Questions ----------------------------------------------------------------------------------


MONDAY_3PM = at(NEW_YORK, 2026, 12, 7, 15, 0)
SATURDAY_EVENING = at(NEW_YORK, 2026, 12, 5, 18, 30)
BEFORE_THANKSGIVING = at(NEW_YORK, 2026, 11, 20, 12, 0)
BEFORE_EASTER = at(NEW_YORK, 2027, 3, 24, 12, 0)  # Easter Sunday is March 28, a Sunday

# The demo shop's answers: (when, the chat's language, the question, the answer).
ANSWERS = [
    (
        MONDAY_3PM,
        "en",
        "Are you open on Christmas?",
        "We're closed on Christmas Day (Friday, December 25). We open again on Saturday, "
        "December 26 at 9:00 AM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "are you open on christmas eve",
        "On Christmas Eve (Thursday, December 24) we're open 9:00 AM to 3:00 PM.",
    ),
    (MONDAY_3PM, "en", "Are you open now?", "We're open now, until 6:00 PM."),
    (
        MONDAY_3PM,
        "en",
        "How late are you open today?",
        "Today, Monday, December 7, we're open 9:00 AM to 6:00 PM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "what time do you open tomorrow?",
        "Tomorrow, Tuesday, December 8, we're open 9:00 AM to 6:00 PM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "are you open on sundays?",
        "On Sunday, December 13 we're open 10:00 AM to 2:00 PM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "What are your opening hours?",
        "Our opening hours: Monday to Friday 9:00 AM to 6:00 PM; Saturday 9:00 AM to 5:00 PM; "
        "Sunday 10:00 AM to 2:00 PM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "When are you open?",
        "Our opening hours: Monday to Friday 9:00 AM to 6:00 PM; Saturday 9:00 AM to 5:00 PM; "
        "Sunday 10:00 AM to 2:00 PM.",
    ),
    (
        MONDAY_3PM,
        "en",
        "Are you open this weekend?",
        "On Saturday, December 12 we're open 9:00 AM to 5:00 PM. On Sunday, December 13 we're "
        "open 10:00 AM to 2:00 PM.",
    ),
    # A public holiday without a rule: open as usual, and said so.
    (
        MONDAY_3PM,
        "en",
        "Is the store open on Memorial Day?",
        "On Memorial Day (Monday, May 31) we're open as usual, 9:00 AM to 6:00 PM.",
    ),
    (
        SATURDAY_EVENING,
        "en",
        "what time do you open?",
        "We're closed now. We open again tomorrow at 10:00 AM.",
    ),
    (
        BEFORE_THANKSGIVING,
        "en",
        "open on thanksgiving?",
        "We're closed on Thanksgiving (Thursday, November 26). We open again on Friday, "
        "November 27 at 9:00 AM.",
    ),
    (
        BEFORE_EASTER,
        "en",
        "Are you open on Sunday?",
        "We're closed on Easter Sunday (Sunday, March 28). We open again on Monday, March 29 at "
        "9:00 AM. Our usual hours on Sunday are 10:00 AM to 2:00 PM.",
    ),
    (
        MONDAY_3PM,
        "es",
        "¿Abren en Navidad?",
        "Estamos cerrados el día de Navidad (viernes, 25 de diciembre). Volvemos a abrir el "
        "sábado, 26 de diciembre a las 09:00.",
    ),
    (
        MONDAY_3PM,
        "es",
        "¿Están abiertos en Nochebuena?",
        "El día de Nochebuena (jueves, 24 de diciembre) abrimos de 09:00 a 15:00.",
    ),
    (
        MONDAY_3PM,
        "es",
        "¿A qué hora cierran hoy?",
        "Hoy, lunes, 7 de diciembre, abrimos de 09:00 a 18:00.",
    ),
    (
        MONDAY_3PM,
        "es",
        "¿Abren el domingo por la mañana?",
        "El domingo, 13 de diciembre abrimos de 10:00 a 14:00.",
    ),
    (
        MONDAY_3PM,
        "es",
        "¿Cuál es su horario?",
        "Nuestro horario: de lunes a viernes de 09:00 a 18:00; sábado de 09:00 a 17:00; "
        "domingo de 10:00 a 14:00.",
    ),
    (
        MONDAY_3PM,
        "de",
        "Habt ihr Heiligabend offen?",
        "Am Heiligabend (Donnerstag, 24. Dezember) haben wir von 09:00 bis 15:00 Uhr geöffnet.",
    ),
    (
        MONDAY_3PM,
        "de",
        "Habt ihr morgen auf?",
        "Morgen, am Dienstag, 8. Dezember, haben wir von 09:00 bis 18:00 Uhr geöffnet.",
    ),
    (
        MONDAY_3PM,
        "de",
        "Wann schließt ihr heute?",
        "Heute, am Montag, 7. Dezember, haben wir von 09:00 bis 18:00 Uhr geöffnet.",
    ),
    (
        MONDAY_3PM,
        "de",
        "Habt ihr am 25.12. geöffnet?",
        "Am 1. Weihnachtstag (Freitag, 25. Dezember) haben wir geschlossen. Wir öffnen wieder am "
        "Samstag, 26. Dezember um 09:00 Uhr.",
    ),
    # English in a German chat is understood, and answered in the chat's language.
    (MONDAY_3PM, "de", "Are you open now?", "Wir haben jetzt geöffnet, bis 18:00 Uhr."),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("moment", "language", "text", "expected"), ANSWERS)
def test_questions_in_english_spanish_and_german(moment, language, text, expected):
    hours = demo_hours()
    with time_machine.travel(moment, tick=False):
        assert ask(hours, text, language) == expected


@pytest.mark.django_db
def test_the_holiday_hours_list_the_special_days_to_come():
    hours = demo_hours()
    with time_machine.travel(MONDAY_3PM, tick=False):
        assert ask(hours, "Do you have special holiday hours?").startswith(
            "Our special hours coming up: Christmas Eve (Thursday, December 24): 9:00 AM to "
            "3:00 PM; closed on Christmas Day (Friday, December 25); "
        )


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fr", "Êtes-vous ouverts à Noël ?"),
        ("it", "Siete aperti a Natale?"),
        ("pt", "Vocês estão abertos no Natal?"),
        ("nl", "Zijn jullie open met kerst?"),
        ("ar", "هل أنتم مفتوحون في عيد الميلاد؟"),
        ("he", "אתם פתוחים בחג המולד?"),
    ],
)
def test_every_widget_language_recognises_a_holiday_question(language, text):
    question = questions.recognise(text, language, date(2026, 12, 7))
    assert question == questions.HoursQuestion("day", date(2026, 12, 25), holiday="christmas")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "do you deliver on sundays?"),
        ("en", "Do you deliver to Princeton?"),
        ("en", "Can I pick up my order on Christmas Eve?"),
        ("en", "How many hours do roses last?"),
        ("en", "Please order 24 hours ahead?"),
        ("en", "Are you close to Trenton?"),
        ("en", "How do I care for my flowers?"),
        ("es", "¿Hacen entregas los domingos?"),
        ("es", "¿Envían a Princeton el sábado?"),
        ("de", "Liefert ihr sonntags?"),
        ("de", "Habt ihr zu Weihnachten Rosen?"),
        ("fr", "Livrez-vous le dimanche ?"),
        ("nl", "Bezorgen jullie op zondag?"),
    ],
)
def test_questions_not_about_opening_times_stay_with_the_faq(language, text):
    hours = demo_hours()
    with time_machine.travel(MONDAY_3PM, tick=False):
        assert ask(hours, text, language) is None


@pytest.mark.django_db
def test_the_widget_status_line_and_the_hand_off_promise():
    schedule = demo_hours().schedule()
    open_now = questions.status_line(schedule, MONDAY_3PM, "en")
    assert open_now == {
        "open": True,
        "next_change": "2026-12-07T18:00:00-05:00",
        "text": "Open now · closes at 6:00 PM",
    }
    closed = questions.status_line(schedule, at(NEW_YORK, 2026, 12, 24, 16, 0), "es")
    assert closed == {
        "open": False,
        "next_change": "2026-12-26T09:00:00-05:00",
        "text": "Cerrado ahora · abre el sábado a las 09:00",
    }
    assert questions.reply_promise(schedule, at(NEW_YORK, 2026, 12, 24, 16, 0), "en") == (
        "We're closed now; we'll reply after we open on Saturday, December 26 at 9:00 AM."
    )
    assert questions.reply_promise(schedule, MONDAY_3PM, "en") is None
    # What Claude gets as the hours' source: now, the week, the special days to come.
    source = questions.source_text(schedule, MONDAY_3PM, "en")
    assert source.startswith(
        "We're open now, until 6:00 PM. Our opening hours: Monday to Friday 9:00 AM to 6:00 PM;"
    )
    assert "closed on Christmas Day (Friday, December 25)" in source


# --- The models' rules --------------------------------------------------------------------------


def messages(error: ValidationError) -> list[str]:
    return sorted(error.messages)


@pytest.mark.django_db
def test_the_models_say_what_is_wrong_in_sentences():
    shop = Shop.objects.create(name="Rules")
    hours = ShopHours(shop=shop, time_zone="Mars/Olympus_Mons", holiday_country="US")
    hours.holiday_subdivision = "ZZ"
    with pytest.raises(ValidationError) as error:
        hours.full_clean()
    assert error.value.message_dict["time_zone"] == [
        "“Mars/Olympus_Mons” is not a time zone we know. Use a name like America/New_York, "
        "Europe/Berlin or Asia/Tokyo."
    ]
    assert error.value.message_dict["holiday_subdivision"][0].startswith(
        "“ZZ” is not a state or region of US in the holiday calendar. Choose one of: AK, AL,"
    )
    hours = ShopHours.objects.create(shop=shop, time_zone="America/New_York", holiday_country="US")

    backwards = WeeklyRange(hours=hours, weekday=0, opens=time(18), closes=time(9))
    with pytest.raises(ValidationError) as error:
        backwards.full_clean()
    assert error.value.message_dict == {
        "closes": [
            "The closing time 09:00 is before the opening time 18:00. If you close after "
            "midnight, tick “closes after midnight”."
        ]
    }
    WeeklyRange(hours=hours, weekday=0, opens=time(18), closes=time(1), past_midnight=True).save()
    not_past = WeeklyRange(hours=hours, weekday=1, opens=time(9), closes=time(17))
    not_past.past_midnight = True
    with pytest.raises(ValidationError) as error:
        not_past.full_clean()
    assert error.value.messages == [
        "09:00 to 17:00 does not go past midnight: untick “closes after midnight”."
    ]
    # Monday 6 PM to 1 AM reaches into Tuesday 0:30.
    early = WeeklyRange(hours=hours, weekday=1, opens=time(0, 30), closes=time(8))
    with pytest.raises(ValidationError) as error:
        early.full_clean()
    assert error.value.messages == [
        "Monday 18:00-01:00 and Tuesday 00:30-08:00 overlap. Make one end before the other starts."
    ]
    # Rows being edited together (the admin's formset): Sunday night into Monday morning too.
    rows = [
        WeeklyRange(weekday=6, opens=time(22), closes=time(2), past_midnight=True),
        WeeklyRange(weekday=0, opens=time(1), closes=time(9)),
    ]
    with pytest.raises(ValidationError) as error:
        ShopHours.check_week(rows)
    assert error.value.messages == [
        "Sunday 22:00-02:00 and Monday 01:00-09:00 overlap. Make one end before the other starts."
    ]
    WeeklyRange(hours=hours, weekday=2, opens=time(18), closes=time(0)).full_clean()  # midnight

    with time_machine.travel(at(NEW_YORK, 2026, 12, 7, 10, 0), tick=False):
        past = SpecialDay(hours=hours, start=date(2026, 12, 6))
        with pytest.raises(ValidationError) as error:
            past.full_clean()
        assert error.value.message_dict == {
            "start": ["December 6, 2026 is in the past. Exceptions are for days to come."]
        }
        SpecialDay(hours=hours, start=date(2026, 12, 24), note="Staff party").save()
        clash = SpecialDay(
            hours=hours, start=date(2026, 12, 23), end=date(2026, 12, 26), note="Holidays"
        )
        with pytest.raises(ValidationError) as error:
            clash.full_clean()
        assert error.value.messages == [
            "December 24, 2026 (Staff party) and December 23, 2026 to December 26, 2026 "
            "(Holidays) fall on the same day, and one says closed. Keep one of them."
        ]
        times_on_closed = SpecialDay(hours=hours, start=date(2027, 1, 4), opens=time(9))
        with pytest.raises(ValidationError) as error:
            times_on_closed.full_clean()
        assert "untick “closed all day” or clear the times" in error.value.messages[0]

        rule = HolidayRule(hours=hours, holiday="Festivus", action="closed")
        with pytest.raises(ValidationError) as error:
            rule.full_clean()
        assert error.value.messages == [
            "“Festivus” is not a holiday of US in the holiday calendar. Choose one from the list."
        ]
        no_times = HolidayRule(hours=hours, holiday="Christmas Eve", action="hours")
        with pytest.raises(ValidationError) as error:
            no_times.full_clean()
        assert error.value.message_dict == {"opens": ["Give an opening time."]}
    assert ShopHours.objects.get(shop=shop).week.count() == 1  # nothing bad was saved


# --- schema.org ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_json_ld_out_and_back_in():
    hours = demo_hours()
    schedule = hours.schedule()
    data = schemaorg.local_business(
        "Petal & Stem", "https://petalandstem.example", schedule, date(2026, 12, 7), "Florist"
    )
    assert data["@type"] == "Florist"
    assert data["openingHoursSpecification"] == [
        {
            "@type": "OpeningHoursSpecification",
            "dayOfWeek": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
            "opens": "09:00",
            "closes": "18:00",
        },
        {
            "@type": "OpeningHoursSpecification",
            "dayOfWeek": ["Saturday"],
            "opens": "09:00",
            "closes": "17:00",
        },
        {
            "@type": "OpeningHoursSpecification",
            "dayOfWeek": ["Sunday"],
            "opens": "10:00",
            "closes": "14:00",
        },
    ]
    special = data["specialOpeningHoursSpecification"]
    assert special[:2] == [
        {
            "@type": "OpeningHoursSpecification",
            "name": "Christmas Eve",
            "opens": "09:00",
            "closes": "15:00",
            "validFrom": "2026-12-24",
            "validThrough": "2026-12-24",
        },
        {
            "@type": "OpeningHoursSpecification",
            "name": "Christmas Day",
            "opens": "00:00",
            "closes": "00:00",
            "validFrom": "2026-12-25",
            "validThrough": "2026-12-25",
        },
    ]
    assert len(special) == 8  # the eight holiday rules, each once in the coming year

    # Back in, as a page would carry it (inside an @graph), into another shop.
    page = json.dumps({"@context": "https://schema.org", "@graph": [{"@type": "WebPage"}, data]})
    imported = schemaorg.parse_opening_hours(page, date(2026, 12, 7))
    assert imported.problems == []
    other = ShopHours.objects.create(
        shop=Shop.objects.create(name="Copy"), time_zone="America/New_York"
    )
    with time_machine.travel(at(NEW_YORK, 2026, 12, 7, 10, 0), tick=False):
        schemaorg.save_imported(other, imported)
    copy = other.schedule()
    assert copy.week == schedule.week
    assert schemaorg.opening_hours_specification(copy) == data["openingHoursSpecification"]
    for day in (date(2026, 12, 24), date(2026, 12, 25), date(2027, 5, 9), date(2027, 5, 10)):
        assert sched.day_hours(copy, day).ranges == sched.day_hours(schedule, day).ranges, day


@pytest.mark.django_db
def test_past_midnight_and_all_day_in_json_ld():
    schedule = sched.Schedule(
        NEW_YORK,
        {
            5: (sched.Range(time(18), time(3), True),),
            6: (sched.Range(time(0), time(0), True),),
        },
    )
    specs = schemaorg.opening_hours_specification(schedule)
    assert [(s["dayOfWeek"], s["opens"], s["closes"]) for s in specs] == [
        (["Saturday"], "18:00", "03:00"),
        (["Sunday"], "00:00", "23:59"),
    ]
    imported = schemaorg.parse_opening_hours({"openingHoursSpecification": specs}, date.today())
    assert imported.week == [
        (5, sched.Range(time(18), time(3), True)),
        (6, sched.Range(time(0), time(0))),
    ]


def test_bad_json_ld_gets_sentences():
    today = date(2026, 12, 7)
    with pytest.raises(schemaorg.HoursImportError, match="is not valid JSON"):
        schemaorg.parse_opening_hours("{not json", today)
    with pytest.raises(schemaorg.HoursImportError, match="has no openingHoursSpecification"):
        schemaorg.parse_opening_hours({"@type": "Florist", "name": "x"}, today)
    imported = schemaorg.parse_opening_hours(
        {
            "openingHoursSpecification": [
                {"dayOfWeek": "https://schema.org/Monday", "opens": "09:00", "closes": "17:00"},
                {"dayOfWeek": "Caturday", "opens": "09:00", "closes": "17:00"},
                {"dayOfWeek": "Tuesday", "opens": "25:00", "closes": "17:00"},
                {"opens": "09:00", "closes": "17:00"},
                {"dayOfWeek": "PublicHolidays", "opens": "00:00", "closes": "00:00"},
            ],
            "specialOpeningHoursSpecification": [
                {"validFrom": "2026-01-01", "validThrough": "2026-01-01"},
                {"validFrom": "2026-12-31", "validThrough": "2026-12-30"},
            ],
        },
        today,
    )
    assert imported.week == [(0, sched.Range(time(9), time(17)))]
    assert imported.closed_on_public_holidays is True
    assert imported.problems == [
        "Opening hours entry 2 was left out: “Caturday” is not a day of the week.",
        "Opening hours entry 3 was left out: the opening time “25:00” is not a time of day.",
        "Opening hours entry 4 was left out: it names no day of the week.",
        "Opening hours entry 7 was left out: it ends (2026-12-30) before it starts (2026-12-31).",
        "1 special day(s) already past were left out.",
    ]


@pytest.mark.django_db
def test_a_ten_thousand_row_import_is_refused_and_nothing_changes():
    hours = demo_hours()
    before = hours.schedule()
    rows = [
        {"validFrom": f"2027-01-{1 + n % 28:02d}", "validThrough": f"2027-01-{1 + n % 28:02d}"}
        for n in range(10_000)
    ]
    with pytest.raises(schemaorg.HoursImportError) as error:
        schemaorg.parse_opening_hours({"specialOpeningHoursSpecification": rows}, date(2026, 12, 7))
    assert str(error.value) == (
        "The page lists 10,000 special days; an import takes at most 1,000. Nothing was "
        "imported: add the ones to come by hand, or shorten the list on the page."
    )
    assert hours.schedule().week == before.week and not hours.exceptions.exists()


@pytest.mark.django_db
def test_an_import_that_overlaps_is_refused_whole():
    hours = demo_hours()
    imported = schemaorg.parse_opening_hours(
        {
            "openingHoursSpecification": [
                {"dayOfWeek": "Monday", "opens": "09:00", "closes": "13:00"},
                {"dayOfWeek": "Monday", "opens": "12:00", "closes": "18:00"},
            ]
        },
        date(2026, 12, 7),
    )
    with pytest.raises(ValidationError) as error:
        schemaorg.save_imported(hours, imported)
    assert error.value.messages == [
        "Monday 09:00-13:00 and Monday 12:00-18:00 overlap. Make one end before the other starts."
    ]
    assert [(r.opens, r.closes) for r in hours.schedule().week[0]] == [(time(9), time(18))]


# --- Languages ----------------------------------------------------------------------------------


def hours_msgids() -> list[str]:
    """Every sentence faq/hours/questions.py passes through gettext (read from its source)."""
    source = Path(questions.__file__).read_text()
    found = re.findall(r'(?<![\w.])(?:_|gettext_lazy)\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]', source)
    found += [f"{c}\x04{m}" for c, m in re.findall(r'pgettext\(\s*"([^"]*)",\s*"([^"]*)"', source)]
    return sorted(set(found))


@pytest.mark.parametrize("language", [code for code, _ in settings.LANGUAGES if code != "en"])
def test_every_hours_sentence_is_translated_with_its_slots(language):
    catalog = translation(language)._catalog
    msgids = hours_msgids()
    assert len(msgids) > 50
    assert [m for m in msgids if m not in catalog] == []
    for msgid in msgids:
        assert set(re.findall(r"\{\w+\}", catalog[msgid])) == set(re.findall(r"\{\w+\}", msgid))


@pytest.mark.django_db
def test_the_days_preview_for_the_faq_page_and_the_admin():
    schedule = demo_hours().schedule()
    preview = questions.days_preview(schedule, date(2026, 12, 23), 14, "en")
    assert len(preview) == 14
    assert preview[:3] == [
        {
            "date": "2026-12-23",
            "title": "Wednesday, December 23",
            "hours": "9:00 AM to 6:00 PM",
            "open": True,
            "special": False,
        },
        {
            "date": "2026-12-24",
            "title": "Christmas Eve (Thursday, December 24)",
            "hours": "9:00 AM to 3:00 PM",
            "open": True,
            "special": True,
        },
        {
            "date": "2026-12-25",
            "title": "Christmas Day (Friday, December 25)",
            "hours": "Closed",
            "open": False,
            "special": True,
        },
    ]
    german = questions.days_preview(schedule, date(2026, 12, 25), 1, "de")
    assert (german[0]["title"], german[0]["hours"]) == (
        "1. Weihnachtstag (Freitag, 25. Dezember)",
        "Geschlossen",
    )
