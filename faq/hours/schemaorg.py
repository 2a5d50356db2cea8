"""
Opening hours in schema.org's JSON-LD, both ways (issue 30).

Out, for the FAQ page: `opening_hours_specification(schedule)` (the week, one
OpeningHoursSpecification per distinct range with its days) and
`special_opening_hours_specification(schedule, start)` (the coming year's holidays, exceptions
and closures as dated OpeningHoursSpecifications), both as Google's local business guidelines
write them: times as hh:mm in the shop's zone; closing after midnight as a closing time before
the opening time (Saturday 18:00 to 03:00); open all day as 00:00 to 23:59; closed all day as
00:00 to 00:00 with validFrom and validThrough. `local_business(...)` puts them on a
LocalBusiness (or a subtype such as Florist).

In, for the import: `parse_opening_hours(data, today)` reads `openingHoursSpecification` and
`specialOpeningHoursSpecification` from a page's JSON-LD (a text, or already parsed; a LocalBusiness
anywhere in it, @graph included) into plain data (`ImportedHours`), saying in a sentence what it
could not read; `save_imported(hours, imported)` validates it like the admin does and replaces the
week and adds the exceptions, all or nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction

from faq.hours import schedule as sched

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SPEC = "OpeningHoursSpecification"
# The most special days one import takes: a shop's holidays and closures for a few years, not
# a calendar dump (10,000 rows would be a mistake, and a slow page for the owner).
MAX_IMPORTED_SPECIALS = 1000
ALMOST_MIDNIGHT = time(23, 59)


# --- Out ----------------------------------------------------------------------------------------


def hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _times(r: sched.Range) -> dict[str, str]:
    if r.opens == sched.MIDNIGHT and r.closes == sched.MIDNIGHT:  # open all day
        return {"opens": "00:00", "closes": hhmm(ALMOST_MIDNIGHT)}
    return {"opens": hhmm(r.opens), "closes": hhmm(r.closes)}


def opening_hours_specification(schedule: sched.Schedule) -> list[dict]:
    """The weekly hours: one entry per distinct range, with the days it holds on."""
    by_range: dict[sched.Range, list[str]] = {}
    for weekday in range(7):
        for r in schedule.week.get(weekday, ()):
            by_range.setdefault(r, []).append(DAYS[weekday])
    ordered = sorted(by_range.items(), key=lambda item: (DAYS.index(item[1][0]), item[0].opens))
    return [{"@type": SPEC, "dayOfWeek": days, **_times(r)} for r, days in ordered]


def special_opening_hours_specification(
    schedule: sched.Schedule, start: date, days: int = 366
) -> list[dict]:
    """The days from `start` whose hours are not the usual ones, with dates (holidays and
    yearly exceptions have no other form in schema.org). Days in a row with the same hours and
    name are one entry."""
    specs: list[dict] = []
    last: tuple | None = None
    for hours in sched.upcoming_specials(schedule, start, days):
        key = (hours.ranges, hours.name)
        iso = hours.day.isoformat()
        previous = hours.day - timedelta(days=1)
        if last == (key, previous) and specs:
            for spec in specs[-max(1, len(hours.ranges)) :]:
                spec["validThrough"] = iso
            last = (key, hours.day)
            continue
        named = {"name": hours.name} if hours.name else {}
        ranges = hours.ranges or (sched.Range(sched.MIDNIGHT, sched.MIDNIGHT),)
        for r in ranges:
            times = _times(r) if hours.ranges else {"opens": "00:00", "closes": "00:00"}
            specs.append({"@type": SPEC, **named, **times, "validFrom": iso, "validThrough": iso})
        last = (key, hours.day)
    return specs


def local_business(
    name: str,
    url: str,
    schedule: sched.Schedule,
    today: date,
    business_type: str = "LocalBusiness",
) -> dict:
    """A LocalBusiness (or `business_type`, e.g. "Florist") with its hours, for a page's
    JSON-LD."""
    data = {
        "@context": "https://schema.org",
        "@type": business_type,
        "name": name,
        "url": url,
        "openingHoursSpecification": opening_hours_specification(schedule),
    }
    special = special_opening_hours_specification(schedule, today)
    if special:
        data["specialOpeningHoursSpecification"] = special
    return data


# --- In -----------------------------------------------------------------------------------------


class HoursImportError(ValueError):
    """The page's hours cannot be imported at all; the message is a sentence for the owner."""


@dataclass
class ImportedHours:
    """What a page says: the week as (weekday, range) pairs, the special days, whether it says
    closed on public holidays (schema.org's PublicHolidays), and a sentence for each thing left
    out."""

    week: list[tuple[int, sched.Range]] = field(default_factory=list)
    specials: list[sched.Special] = field(default_factory=list)
    closed_on_public_holidays: bool | None = None
    problems: list[str] = field(default_factory=list)


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$")


def _time(value, what: str) -> time:
    found = _TIME.match(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"the {what} time “{value}” is not a time like 09:00")
    hour, minute = int(found[1]), int(found[2])
    if hour == 24 and minute == 0:
        return sched.MIDNIGHT
    if hour > 23 or minute > 59:
        raise ValueError(f"the {what} time “{value}” is not a time of day")
    return time(hour, minute)


def _date(value, what: str) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"the {what} date “{value}” is not a date like 2026-12-24") from None


def _days(value) -> list[str]:
    values = value if isinstance(value, list) else [value]
    names = []
    for item in values:
        if isinstance(item, dict):
            item = item.get("@id") or item.get("name") or ""
        name = str(item).rstrip("/").rsplit("/", 1)[-1].removeprefix("schema:").strip()
        names.append(name)
    return names


def _range(opens: time, closes: time) -> sched.Range:
    past = closes != sched.MIDNIGHT and closes <= opens
    return sched.Range(opens, closes, past_midnight=past)


def _specs(node, found: list[tuple[dict, bool]]) -> None:
    """Every OpeningHoursSpecification in the data, with whether it was a special one."""
    if isinstance(node, list):
        for item in node:
            _specs(item, found)
    elif isinstance(node, dict):
        for key, special in (
            ("openingHoursSpecification", False),
            ("specialOpeningHoursSpecification", True),
        ):
            value = node.get(key)
            for spec in value if isinstance(value, list) else [value] if value else []:
                found.append((spec, special))
        for key, value in node.items():
            if key not in ("openingHoursSpecification", "specialOpeningHoursSpecification"):
                _specs(value, found)


def parse_opening_hours(data, today: date) -> ImportedHours:
    """The hours a page's JSON-LD gives. Raises HoursImportError (a sentence) when it is not
    JSON, has no opening hours, or lists more than MAX_IMPORTED_SPECIALS special days; a spec
    it cannot read is left out with a sentence in `problems`. Special days already past are
    left out."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data, strict=False)
        except ValueError:
            raise HoursImportError("The page's schema.org data is not valid JSON.") from None
    found: list[tuple[dict, bool]] = []
    _specs(data, found)
    if not found:
        raise HoursImportError("The page's schema.org data has no openingHoursSpecification.")
    dated = sum(1 for spec, special in found if special or _has_dates(spec))
    if dated > MAX_IMPORTED_SPECIALS:
        raise HoursImportError(
            f"The page lists {dated:,} special days; an import takes at most "
            f"{MAX_IMPORTED_SPECIALS:,}. Nothing was imported: add the ones to come by hand, or "
            "shorten the list on the page."
        )
    result = ImportedHours()
    past = 0
    for n, (spec, special) in enumerate(found, start=1):
        try:
            past += _read_spec(spec, special, today, result)
        except ValueError as error:
            result.problems.append(f"Opening hours entry {n} was left out: {error}.")
    if past:
        result.problems.append(f"{past} special day(s) already past were left out.")
    return result


def _has_dates(spec) -> bool:
    return isinstance(spec, dict) and bool(spec.get("validFrom") or spec.get("validThrough"))


def _read_spec(spec, special: bool, today: date, result: ImportedHours) -> int:
    """Add one spec to `result`; returns 1 when it was a special day already past."""
    if not isinstance(spec, dict):
        raise ValueError("it is not an object")
    has_times = spec.get("opens") is not None or spec.get("closes") is not None
    opens = _time(spec.get("opens", "00:00"), "opening")
    closes = _time(spec.get("closes", "00:00"), "closing")
    closed = not has_times or (opens == sched.MIDNIGHT and closes == sched.MIDNIGHT)
    if closes == ALMOST_MIDNIGHT:
        closes = sched.MIDNIGHT  # "until 23:59" is until midnight (and 00:00-23:59 all day)
    days = _days(spec.get("dayOfWeek", []))
    if special or _has_dates(spec):
        first = _date(spec.get("validFrom") or spec.get("validThrough"), "first")
        last = _date(spec.get("validThrough") or spec.get("validFrom"), "last")
        if last < first:
            raise ValueError(f"it ends ({last}) before it starts ({first})")
        if (last - first).days >= 366:
            raise ValueError("it covers more than a year")
        if days and last > first:
            raise ValueError(
                "seasonal hours by day of the week are not supported; add them as exceptions"
            )
        if last < today:
            return 1
        ranges = () if closed else (_range(opens, closes),)
        note = str(spec.get("name") or spec.get("description") or "")[:100]
        result.specials.append(sched.Special(max(first, today), last, ranges, note))
        return 0
    if not days:
        raise ValueError("it names no day of the week")
    for name in days:
        if name == "PublicHolidays":
            result.closed_on_public_holidays = closed
            continue
        if name not in DAYS:
            raise ValueError(f"“{name}” is not a day of the week")
        if not closed:
            result.week.append((DAYS.index(name), _range(opens, closes)))
    return 0


def save_imported(hours, imported: ImportedHours) -> None:
    """Replace `hours`' week with the imported one and add the imported special days, checked
    like the admin checks them (overlaps included). All or nothing: raises ValidationError with
    the sentences, and then nothing has changed."""
    from faq.hours.models import ShopHours, SpecialDay, WeeklyRange

    week = [
        WeeklyRange(
            hours=hours, weekday=day, opens=r.opens, closes=r.closes, past_midnight=r.past_midnight
        )
        for day, r in imported.week
    ]
    exceptions = [
        SpecialDay(
            hours=hours,
            start=special.start,
            end=special.end if special.end != special.start else None,
            closed=not special.ranges,
            opens=r.opens if r else None,
            closes=r.closes if r else None,
            past_midnight=r.past_midnight if r else False,
            note=special.note,
        )
        for special in imported.specials
        for r in (special.ranges or (None,))
    ]
    errors: list[str] = []
    for row in week:
        errors += [f"{row.label()}: {message}" for message in row.range_errors().values()]
    for row in exceptions:
        errors += [f"{row.label()}: {message}" for message in row.own_errors().values()]
    for check, rows in (
        (ShopHours.check_week, week),
        (SpecialDay.check_conflicts, [*hours.exceptions.all(), *exceptions]),
    ):
        try:
            check(rows)
        except ValidationError as error:
            errors += error.messages
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if imported.closed_on_public_holidays is not None:
            hours.public_holidays = (
                ShopHours.OnHolidays.CLOSED
                if imported.closed_on_public_holidays
                else ShopHours.OnHolidays.USUAL
            )
            hours.save(update_fields=["public_holidays"])
        if week:
            hours.week.all().delete()
            WeeklyRange.objects.bulk_create(week)
        SpecialDay.objects.bulk_create(exceptions)
