"""
A shop's opening hours (issue 30), laid out the way an owner edits them: one `ShopHours` per
shop (its time zone and holiday calendar) with three lists, each a table in the admin: the week
(`WeeklyRange`, one row per opening range, so a lunch closing is two rows), exceptions
(`SpecialDay`: a date or dates, closed or other hours, a note) and holiday rules
(`HolidayRule`: a holiday of the calendar, closed, open as usual or other hours).

Every rule is in a model's `clean()` and said in a sentence. Checks across rows (overlapping
ranges, two exceptions on one day) are class methods the admin's formsets call with the rows
being edited (`ShopHours.check_week`, `SpecialDay.check_conflicts`); `clean()` runs them against
the saved rows.

Registered by faq/models.py, which imports them; the migration is faq.0011_opening_hours.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, time, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from faq.hours import schedule as sched

if TYPE_CHECKING:
    from collections.abc import Iterable

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# The longest exception: a closure for the season is fine, a list of years is not.
MAX_EXCEPTION_DAYS = 366


def clock(value: time) -> str:
    """A time as the owner's sentences show it: 18:00."""
    return value.strftime("%H:%M")


def long_date(value: date) -> str:
    return f"{value:%B} {value.day}, {value.year}"


def default_time_zone() -> str:
    """A new shop's time zone: the TIME_ZONE setting's."""
    return settings.TIME_ZONE


def check_time_zone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"“{name}” is not a time zone we know. Use a name like America/New_York, "
            "Europe/Berlin or Asia/Tokyo.",
            code="time_zone",
        ) from None


class TimeRange(models.Model):
    """Open from `opens` to `closes`; `past_midnight` says the closing time is on the next day.

    `checked_with_rows`: set by the admin's hours editor, whose formsets check the rows being
    edited together (`ShopHours.check_week`, `SpecialDay.check_conflicts`): `clean()` then does not
    compare a row with its saved siblings, which the same save may be changing."""

    checked_with_rows = False

    opens = models.TimeField("opens", null=True, blank=True)
    closes = models.TimeField("closes", null=True, blank=True)
    past_midnight = models.BooleanField(
        "closes after midnight",
        default=False,
        help_text="Tick when the closing time is on the next day, e.g. 6 PM to 1 AM.",
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.label()

    def label(self) -> str:
        """The row as the owner knows it: in the admin and in the sentences of its errors."""
        raise NotImplementedError

    def as_range(self) -> sched.Range:
        return sched.Range(self.opens, self.closes, self.past_midnight)

    def range_errors(self) -> dict[str, str]:
        """What is wrong with the opening and closing times, by field."""
        if self.opens is None or self.closes is None:
            missing = "opens" if self.opens is None else "closes"
            word = "an opening" if missing == "opens" else "a closing"
            return {missing: f"Give {word} time."}
        if self.past_midnight:
            if self.closes > self.opens:
                return {
                    "past_midnight": f"{clock(self.opens)} to {clock(self.closes)} does not go "
                    "past midnight: untick “closes after midnight”."
                }
            return {}
        if self.closes == sched.MIDNIGHT:
            return {}  # until midnight
        if self.closes == self.opens:
            return {"closes": "The closing time is the same as the opening time."}
        if self.closes < self.opens:
            return {
                "closes": f"The closing time {clock(self.closes)} is before the opening time "
                f"{clock(self.opens)}. If you close after midnight, tick “closes after midnight”."
            }
        return {}


def overlap_errors(labelled: Iterable[tuple[str, int, int]], span: int | None) -> list[str]:
    """Sentences for ranges (label, start minute, end minute) that overlap. With `span` (the
    minutes of a week) each range is also compared one span later, so a Sunday night past
    midnight meets Monday morning."""
    items = [(n, label, start, end) for n, (label, start, end) in enumerate(labelled)]
    if span is not None:
        items += [(n, label, start + span, end + span) for n, label, start, end in items]
    items.sort(key=lambda item: item[2])
    errors: list[str] = []
    for i, (n, label, _, end) in enumerate(items):
        for m, other, other_start, _ in items[i + 1 :]:
            if other_start >= end:
                break
            sentence = f"{label} and {other} overlap. Make one end before the other starts."
            if m != n and sentence not in errors:
                errors.append(sentence)
    return errors


# schema.org's LocalBusiness and the subtypes small shops are most often: the FAQ page's JSON-LD
# describes the shop as the one the owner picks.
class BusinessType(models.TextChoices):
    LOCAL_BUSINESS = "LocalBusiness", "A local business (any kind)"
    STORE = "Store", "A shop (any kind)"
    FLORIST = "Florist", "Florist"
    BAKERY = "Bakery", "Bakery"
    BOOK_STORE = "BookStore", "Book shop"
    CLOTHING_STORE = "ClothingStore", "Clothing shop"
    GROCERY_STORE = "GroceryStore", "Grocery"
    HARDWARE_STORE = "HardwareStore", "Hardware shop"
    JEWELRY_STORE = "JewelryStore", "Jewellery shop"
    PET_STORE = "PetStore", "Pet shop"
    CAFE = "CafeOrCoffeeShop", "Café"
    RESTAURANT = "Restaurant", "Restaurant"
    BAR = "BarOrPub", "Bar or pub"
    HAIR_SALON = "HairSalon", "Hair salon"


class ShopHours(models.Model):
    BusinessType = BusinessType

    class OnHolidays(models.TextChoices):
        USUAL = "usual", "Open as usual"
        CLOSED = "closed", "Closed"

    shop = models.OneToOneField(
        "faq.Shop", models.CASCADE, primary_key=True, related_name="opening_hours"
    )
    time_zone = models.CharField(
        "time zone",
        max_length=64,
        default=default_time_zone,
        help_text="Where the shop is, e.g. America/New_York or Europe/Berlin. All hours are in "
        "this time zone, daylight saving included.",
    )
    holiday_country = models.CharField(
        "public holidays of",
        max_length=3,
        blank=True,
        help_text="The country whose public holidays you follow, as a two-letter code: US, DE, "
        "ES... Empty: no public holidays.",
    )
    holiday_subdivision = models.CharField(
        "state or region",
        max_length=10,
        blank=True,
        help_text="For holidays of one state or region only, e.g. NJ or BY. Empty: the country's.",
    )
    public_holidays = models.CharField(
        "on public holidays",
        max_length=10,
        choices=OnHolidays,
        default=OnHolidays.USUAL,
        help_text="What holds on a public holiday you made no rule for below.",
    )
    business_type = models.CharField(
        "kind of shop",
        max_length=40,
        choices=BusinessType,
        default=BusinessType.LOCAL_BUSINESS,
        help_text="How search engines are told what the shop is (the FAQ page's schema.org data).",
    )
    # Set by the database on every change to these hours or to any of their rows, from a sequence
    # (triggers of migration faq.0015, so bulk writes and imports count too; what the app writes
    # here is ignored): a process's cached Schedule (`shop_schedule`) is current while it is the
    # same.
    version = models.BigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "opening hours"
        verbose_name_plural = "opening hours"

    def __str__(self) -> str:
        return f"opening hours of shop {self.shop_id}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            check_time_zone(self.time_zone)
        except ValidationError as error:
            errors["time_zone"] = error.messages
        self.holiday_country = self.holiday_country.strip().upper()
        self.holiday_subdivision = self.holiday_subdivision.strip().upper()
        supported = sched.supported_countries()
        if self.holiday_country and self.holiday_country not in supported:
            errors["holiday_country"] = [
                f"“{self.holiday_country}” is not a country the holiday calendar knows. Use a "
                "two-letter code such as US, DE or ES."
            ]
        elif self.holiday_subdivision:
            if not self.holiday_country:
                errors["holiday_country"] = ["Choose the country of that state or region."]
            elif self.holiday_subdivision not in supported[self.holiday_country]:
                known = ", ".join(supported[self.holiday_country]) or "none"
                errors["holiday_subdivision"] = [
                    f"“{self.holiday_subdivision}” is not a state or region of "
                    f"{self.holiday_country} in the holiday calendar. Choose one of: {known}."
                ]
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def today(self) -> date:
        """Today in the shop's time zone (in UTC while the time zone is not one we know: a form
        being corrected, whose clean() says so)."""
        try:
            zone = self.zone
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = UTC
        return timezone.now().astimezone(zone).date()

    def holiday_choices(self) -> list[str]:
        """The holidays a rule may name: this year's and next year's in the shop's calendar
        (none while the country or region is not one the calendar knows: clean() says so)."""
        supported = sched.supported_countries()
        if self.holiday_country not in supported or (
            self.holiday_subdivision
            and self.holiday_subdivision not in supported[self.holiday_country]
        ):
            return []
        year = self.today().year
        return sched.holiday_names(
            self.holiday_country, self.holiday_subdivision, range(year, year + 2)
        )

    @staticmethod
    def check_week(ranges: Iterable[WeeklyRange]) -> None:
        """Raise one sentence per pair of overlapping weekly ranges (the formset's rows)."""
        labelled = []
        for item in ranges:
            if item.opens is None or item.closes is None or item.range_errors():
                continue
            start, end = item.as_range().minutes()
            offset = item.weekday * 1440
            labelled.append((item.label(), offset + start, offset + end))
        errors = overlap_errors(labelled, span=7 * 1440)
        if errors:
            raise ValidationError(errors, code="overlap")

    def schedule(self) -> sched.Schedule:
        """The hours as plain data for faq.hours.schedule (three queries)."""
        week: dict[int, list[sched.Range]] = {}
        for item in self.week.all():
            week.setdefault(item.weekday, []).append(item.as_range())
        specials = tuple(
            sched.Special(
                item.start,
                item.last_day,
                () if item.closed else (item.as_range(),),
                item.note,
                item.every_year,
            )
            for item in self.exceptions.all()
        )
        rules = {
            item.holiday: sched.HolidayHours(
                (item.as_range(),) if item.action == HolidayRule.Action.HOURS else (),
                usual=item.action == HolidayRule.Action.USUAL,
            )
            for item in self.holiday_rules.all()
        }
        return sched.Schedule(
            time_zone=self.zone,
            week={day: tuple(sorted(r, key=lambda x: x.opens)) for day, r in week.items()},
            specials=_merged_specials(specials),
            country=self.holiday_country,
            subdivision=self.holiday_subdivision,
            closed_on_public_holidays=self.public_holidays == self.OnHolidays.CLOSED,
            holiday_rules=rules,
        )


# Each process keeps the Schedules it built, by shop: {shop id: (ShopHours.version, Schedule or
# None)}. A Schedule is frozen, so threads share it. At most SCHEDULE_CACHE_SHOPS shops; over it,
# the cache starts again empty (a reload is four queries).
SCHEDULE_CACHE_SHOPS = 10_000
_schedules: dict[int, tuple[int, sched.Schedule | None]] = {}


def hours_version(shop_id: int) -> int | None:
    """The shop's ShopHours.version (one query), None when it has no hours."""
    return ShopHours.objects.filter(shop_id=shop_id).values_list("version", flat=True).first()


def shop_schedule(shop_id: int) -> sched.Schedule | None:
    """The shop's hours as a Schedule, or None when it has none to answer from: no hours, or no
    opening time anywhere. One query (the version), and four more when this process's cached
    Schedule of the shop is not current (`schedule_at`)."""
    return schedule_at(shop_id, hours_version(shop_id))


def schedule_at(shop_id: int, version: int | None) -> sched.Schedule | None:
    """`shop_schedule` for a caller that read the hours' `version` (None: no hours) in a query
    of its own (the chat's first statement of an ask, widget/chat/pipeline.py): no query while
    this process's cached Schedule has that version, else four to build it again."""
    if version is None:
        _schedules.pop(shop_id, None)
        return None
    cached = _schedules.get(shop_id)
    if cached is not None and cached[0] == version:
        return cached[1]
    hours = ShopHours.objects.filter(shop_id=shop_id).first()
    if hours is None:
        _schedules.pop(shop_id, None)
        return None
    # Keyed by the version of the row read before its ranges: they are at least that new, so a
    # concurrent edit at worst costs a reload, never a stale answer.
    schedule = hours.schedule()
    schedule = None if schedule.is_empty else schedule
    if len(_schedules) >= SCHEDULE_CACHE_SHOPS:
        _schedules.clear()
    _schedules[shop_id] = (hours.version, schedule)
    return schedule


def _merged_specials(specials: tuple[sched.Special, ...]) -> tuple[sched.Special, ...]:
    """Exceptions with hours on the same dates are one exception with several ranges (a lunch
    closing on a special day is two rows)."""
    merged: dict[tuple, sched.Special] = {}
    for item in specials:
        key = (item.start, item.end, item.every_year)
        if key in merged and item.ranges and merged[key].ranges:
            before = merged[key]
            ranges = tuple(sorted(before.ranges + item.ranges, key=lambda r: r.opens))
            note = before.note or item.note
            merged[key] = sched.Special(item.start, item.end, ranges, note, item.every_year)
        else:
            merged.setdefault(key, item)
    return tuple(merged.values())


class WeeklyRange(TimeRange):
    """One opening range of one weekday: Monday 9:00-13:00 and Monday 14:00-18:00 are two."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    hours = models.ForeignKey(ShopHours, models.CASCADE, related_name="week")
    weekday = models.PositiveSmallIntegerField("day", choices=Weekday)
    opens = models.TimeField("opens")
    closes = models.TimeField("closes")

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name = "weekly opening hours"
        verbose_name_plural = "weekly opening hours"

    def label(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {clock(self.opens)}-{clock(self.closes)}"

    def clean(self) -> None:
        errors = self.range_errors()
        if errors:
            raise ValidationError(errors)
        if self.hours_id is not None and not self.checked_with_rows:
            siblings = list(self.hours.week.exclude(pk=self.pk))
            ShopHours.check_week([*siblings, self])


class SpecialDay(TimeRange):
    """An exception: a date, or dates in a row, closed or with other hours, with a note the
    customer sees ("Inventory day"). Two rows on the same dates with hours are a day with a
    lunch closing. With `every_year`, the month and day repeat every year."""

    hours = models.ForeignKey(ShopHours, models.CASCADE, related_name="exceptions")
    start = models.DateField("date")
    end = models.DateField(
        "until", null=True, blank=True, help_text="The last day, for several days in a row."
    )
    closed = models.BooleanField("closed all day", default=True)
    note = models.CharField(
        max_length=100, blank=True, help_text="Shown to customers, e.g. “Inventory day”."
    )
    every_year = models.BooleanField(
        "every year", default=False, help_text="The same date every year, e.g. our anniversary."
    )

    class Meta:
        ordering = ["start", "opens"]
        verbose_name = "exception"
        verbose_name_plural = "exceptions (holidays, closures, other hours)"

    @property
    def last_day(self) -> date:
        return self.end or self.start

    def label(self) -> str:
        days = long_date(self.start)
        if self.end and self.end != self.start:
            days = f"{days} to {long_date(self.end)}"
        return f"{days} ({self.note})" if self.note else days

    def own_errors(self) -> dict[str, str]:
        """What is wrong with this row alone, by field."""
        if self.start is None:
            return {"start": "Give the date."}
        errors: dict[str, str] = {}
        if self.end is not None and self.end < self.start:
            errors["end"] = (
                f"The last day ({long_date(self.end)}) is before the first "
                f"({long_date(self.start)})."
            )
        elif (self.last_day - self.start).days >= MAX_EXCEPTION_DAYS:
            errors["end"] = f"An exception covers at most {MAX_EXCEPTION_DAYS} days."
        if self._state.adding and not self.every_year and self.hours_id is not None:
            if self.last_day < self.hours.today():
                errors["start"] = (
                    f"{long_date(self.last_day)} is in the past. Exceptions are for days to come."
                )
        if self.closed:
            if self.opens is not None or self.closes is not None:
                errors["closed"] = (
                    "A day closed all day has no opening hours: untick “closed all day” or "
                    "clear the times."
                )
        else:
            errors.update(self.range_errors())
        return errors

    def clean(self) -> None:
        errors = self.own_errors()
        if errors:
            raise ValidationError(errors)
        if self.hours_id is not None and not self.checked_with_rows:
            SpecialDay.check_conflicts([*self.hours.exceptions.exclude(pk=self.pk), self])

    def _days(self) -> set[tuple[int, ...]]:
        """The days it covers: dates, or (month, day) pairs for a yearly one."""
        span = range((self.last_day - self.start).days + 1)
        days = (self.start + timedelta(days=n) for n in span)
        if self.every_year:
            return {(d.month, d.day) for d in days}
        return {(d.year, d.month, d.day) for d in days}

    @staticmethod
    def check_conflicts(items: Iterable[SpecialDay]) -> None:
        """Two exceptions on the same day must both have hours that do not overlap (one-off
        dates and yearly ones are compared apart: a one-off date overrides a yearly one)."""
        items = [i for i in items if i.start is not None and not i.own_errors()]
        # Pairs sharing a day, found through the days (an import checks a thousand rows).
        by_day: dict[tuple, list[SpecialDay]] = {}
        pairs: dict[tuple[int, int], tuple[SpecialDay, SpecialDay]] = {}
        for item in items:
            for day in item._days():
                for other in by_day.setdefault((item.every_year, day), []):
                    pairs.setdefault((id(other), id(item)), (other, item))
                by_day[item.every_year, day].append(item)
        errors = []
        for item, other in pairs.values():
            if item.closed or other.closed:
                errors.append(
                    f"{item.label()} and {other.label()} fall on the same day, and one says "
                    "closed. Keep one of them."
                )
                continue
            a, b = item.as_range().minutes(), other.as_range().minutes()
            if a[0] < b[1] and b[0] < a[1]:
                errors.append(
                    f"The hours of {item.label()} ({clock(item.opens)}-{clock(item.closes)}) "
                    f"and {other.label()} ({clock(other.opens)}-{clock(other.closes)}) overlap. "
                    "Make one end before the other starts."
                )
        if errors:
            raise ValidationError(errors, code="overlap")


class HolidayRule(TimeRange):
    """What the shop does on one holiday of its calendar, every year it falls."""

    class Action(models.TextChoices):
        CLOSED = "closed", "Closed"
        USUAL = "usual", "Open as usual"
        HOURS = "hours", "Other hours"

    hours = models.ForeignKey(ShopHours, models.CASCADE, related_name="holiday_rules")
    holiday = models.CharField(
        max_length=100, help_text="The holiday's name in the calendar, e.g. Christmas Day."
    )
    action = models.CharField("that day", max_length=10, choices=Action, default=Action.CLOSED)

    class Meta:
        ordering = ["holiday"]
        verbose_name = "holiday rule"
        constraints = [
            models.UniqueConstraint(fields=["hours", "holiday"], name="one_rule_per_holiday")
        ]

    def label(self) -> str:
        return f"{self.holiday}: {self.get_action_display()}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        self.holiday = self.holiday.strip()
        if self.hours_id is not None:
            if not self.hours.holiday_country:
                errors["holiday"] = "Choose the country whose holidays you follow first."
            elif self.holiday not in self.hours.holiday_choices():
                place = "-".join(
                    filter(None, [self.hours.holiday_country, self.hours.holiday_subdivision])
                )
                errors["holiday"] = (
                    f"“{self.holiday}” is not a holiday of {place} in the holiday calendar. "
                    "Choose one from the list."
                )
        if self.action == self.Action.HOURS:
            errors.update(self.range_errors())
        elif self.opens is not None or self.closes is not None:
            errors["action"] = "Times are only for “other hours”: choose it, or clear the times."
        if errors:
            raise ValidationError(errors)
