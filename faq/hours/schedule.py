"""
Opening hours computed from the data: pure functions on a `Schedule` and a date or an aware
datetime, no database (a `Schedule` is built by `faq.hours.models.ShopHours.schedule()`).

Which hours hold on a date, first match wins:
1. an exception for that date (`SpecialDay`), a one-off date before one repeated every year;
2. a rule for a holiday of the shop's calendar falling on it (`HolidayRule`: closed, open as
   usual, or other hours), from the `holidays` library's public and other calendars (in the US,
   "unofficial" holds Christmas Eve, Valentine's Day, Mother's Day, Easter Sunday...);
3. any other public holiday: closed, or open as usual (`Schedule.closed_on_public_holidays`);
4. the weekly schedule.

A range belongs to the day it opens: Saturday 8 PM to 2 AM is Saturday's, and still runs on a
Sunday that is a closed holiday. Times are wall-clock times in the shop's zone; every comparison
is made in UTC, so a day of 23 or 25 hours (a daylight-saving change) is counted right.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Days a question or a status looks ahead for the next opening: a shop closed for longer than a
# year has no "next opening" worth saying.
HORIZON_DAYS = 400

MIDNIGHT = time(0, 0)

# The calendars of the `holidays` library a holiday rule may name, when the country has them.
# Only "public" holidays follow the shop's default (closed or open as usual); the others count
# only where the owner made a rule.
HOLIDAY_CATEGORIES = ("public", "unofficial", "optional", "half_day")


@dataclass(frozen=True)
class Range:
    """Open from `opens` to `closes`, wall-clock times. It ends on the next day when
    `past_midnight` is set, or when it closes at midnight (00:00)."""

    opens: time
    closes: time
    past_midnight: bool = False

    @property
    def ends_next_day(self) -> bool:
        return self.past_midnight or self.closes == MIDNIGHT

    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes from the opening day's midnight; end may exceed 1440."""
        start = self.opens.hour * 60 + self.opens.minute
        end = self.closes.hour * 60 + self.closes.minute
        if self.ends_next_day:
            end += 1440
        return start, end


@dataclass(frozen=True)
class Special:
    """An exception: `ranges` on the days from `start` to `end` (empty: closed). With
    `every_year`, only the month and day count (a range may run over New Year)."""

    start: date
    end: date
    ranges: tuple[Range, ...] = ()
    note: str = ""
    every_year: bool = False

    def covers(self, day: date) -> bool:
        if not self.every_year:
            return self.start <= day <= self.end
        key = (day.month, day.day)
        first, last = (self.start.month, self.start.day), (self.end.month, self.end.day)
        if first <= last:
            return first <= key <= last
        return key >= first or key <= last  # e.g. December 31 to January 1


@dataclass(frozen=True)
class HolidayHours:
    """What the owner said about one holiday: closed (no ranges, `usual` off), open as usual
    (`usual`), or other hours (`ranges`)."""

    ranges: tuple[Range, ...] = ()
    usual: bool = False


@dataclass(frozen=True)
class Schedule:
    time_zone: ZoneInfo
    week: dict[int, tuple[Range, ...]] = field(default_factory=dict)  # Monday = 0
    specials: tuple[Special, ...] = ()
    country: str = ""
    subdivision: str = ""
    closed_on_public_holidays: bool = False
    holiday_rules: dict[str, HolidayHours] = field(default_factory=dict)  # by holiday name

    @property
    def is_empty(self) -> bool:
        """No weekly hours and no exception with hours: nothing to answer from."""
        return not any(self.week.values()) and not any(s.ranges for s in self.specials)


@dataclass(frozen=True)
class DayHours:
    """The hours of one date. `kind`: "regular", "holiday" or "exception"; `name` is the
    holiday's name or the exception's note; `usual` the weekly hours of that weekday."""

    day: date
    ranges: tuple[Range, ...]
    kind: str = "regular"
    name: str = ""
    usual: tuple[Range, ...] = ()

    @property
    def closed(self) -> bool:
        return not self.ranges

    @property
    def special(self) -> bool:
        """Other hours than the usual ones, or a named day (a holiday, an exception)."""
        return self.kind != "regular"


@dataclass(frozen=True)
class Status:
    """Open or not at a moment, and when that changes (None: never, within the horizon)."""

    open: bool
    next_change: datetime | None


# --- Holidays -----------------------------------------------------------------------------------
# The `holidays` package is imported where it is used (0.05 s of every process's start-up, and
# only the hours' paths need it).


def supported_countries() -> dict[str, list[str]]:
    """The holiday calendar's countries (codes), each with its subdivisions' codes."""
    import holidays

    return holidays.list_supported_countries()


@functools.lru_cache(maxsize=256)
def calendar_language(country: str) -> str | None:
    """The language holiday names are kept in: American English wherever the library has it
    (the names HolidayRule stores and faq.hours.questions knows), else the country's own. Said
    explicitly: left unsaid, the library's choice depends on the process's locale."""
    import holidays

    calendar = holidays.country_holidays(country)
    return "en_US" if "en_US" in calendar.supported_languages else calendar.default_language


@functools.lru_cache(maxsize=256)
def holiday_calendar(
    country: str, subdivision: str, year: int, language: str | None = None
) -> dict[date, tuple[str, ...]]:
    """Every holiday the owner may make a rule for, by date (names in `calendar_language`, or
    in `language`, one of the library's codes for the country)."""
    if not country:
        return {}
    import holidays

    supported = holidays.country_holidays(country).supported_categories
    calendar = holidays.country_holidays(
        country,
        subdiv=subdivision or None,
        years=year,
        categories=tuple(c for c in HOLIDAY_CATEGORIES if c in supported),
        language=language or calendar_language(country),
    )
    return {day: tuple(calendar.get_list(day)) for day in sorted(calendar)}


@functools.lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str, year: int) -> dict[date, tuple[str, ...]]:
    """The public holidays only (the shop's default applies to them)."""
    if not country:
        return {}
    import holidays

    calendar = holidays.country_holidays(
        country, subdiv=subdivision or None, years=year, language=calendar_language(country)
    )
    return {day: tuple(calendar.get_list(day)) for day in sorted(calendar)}


def holiday_names(country: str, subdivision: str, years: range) -> list[str]:
    """The names a holiday rule may use (the admin's choices), in calendar order."""
    names: dict[str, None] = {}
    for year in years:
        for day_names in holiday_calendar(country, subdivision, year).values():
            names.update(dict.fromkeys(day_names))
    return list(names)


# --- One day ------------------------------------------------------------------------------------


def day_hours(schedule: Schedule, day: date) -> DayHours:
    """The hours of `day`, exceptions and holidays applied."""
    usual = schedule.week.get(day.weekday(), ())
    for every_year in (False, True):
        for special in schedule.specials:
            if special.every_year == every_year and special.covers(day):
                return DayHours(day, special.ranges, "exception", special.note, usual)
    names = holiday_calendar(schedule.country, schedule.subdivision, day.year).get(day, ())
    for name in names:
        rule = schedule.holiday_rules.get(name)
        if rule is not None:
            return DayHours(day, usual if rule.usual else rule.ranges, "holiday", name, usual)
    public = public_holidays(schedule.country, schedule.subdivision, day.year).get(day, ())
    if public:
        ranges = () if schedule.closed_on_public_holidays else usual
        return DayHours(day, ranges, "holiday", public[0], usual)
    return DayHours(day, usual, usual=usual)


def days(schedule: Schedule, start: date, count: int) -> list[DayHours]:
    """The hours of `count` days from `start` (7 for the FAQ page, 14 for the admin preview)."""
    return [day_hours(schedule, start + timedelta(days=n)) for n in range(count)]


def local_moment(schedule: Schedule, day: date, at: time) -> datetime:
    """The UTC moment of a wall-clock time in the shop's zone. A time skipped by a
    daylight-saving change (2:30 AM on the spring-forward day) counts as the moment after the
    jump (3:30 AM); a repeated one (1:30 AM in the autumn) as its first occurrence."""
    return datetime.combine(day, at, tzinfo=schedule.time_zone).astimezone(UTC)


def day_intervals(schedule: Schedule, hours: DayHours) -> list[tuple[datetime, datetime]]:
    """The day's ranges as (opens, closes) UTC datetimes."""
    result = []
    for r in hours.ranges:
        closes_on = hours.day + timedelta(days=1) if r.ends_next_day else hours.day
        opens = local_moment(schedule, hours.day, r.opens)
        closes = local_moment(schedule, closes_on, r.closes)
        if closes > opens:
            result.append((opens, closes))
    return result


def intervals(schedule: Schedule, start: date, end: date) -> list[tuple[datetime, datetime]]:
    """Every opening from the day before `start` (its range may run past midnight) to `end`, as
    merged (opens, closes) UTC pairs: Friday to midnight and Saturday from midnight are one."""
    spans: list[tuple[datetime, datetime]] = []
    day = start - timedelta(days=1)
    while day <= end:
        spans += day_intervals(schedule, day_hours(schedule, day))
        day += timedelta(days=1)
    merged: list[tuple[datetime, datetime]] = []
    for opens, closes in sorted(spans):
        if merged and opens <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def _intervals_from(schedule: Schedule, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The merged openings that end after `at`, in order, for up to HORIZON_DAYS, computed a
    fortnight at a time. A span running over a chunk's end is joined to its continuation."""
    first = at.astimezone(schedule.time_zone).date()
    pending: tuple[datetime, datetime] | None = None
    for offset in range(0, HORIZON_DAYS, 14):
        start = first + timedelta(days=offset)
        chunk = intervals(schedule, start, start + timedelta(days=13))
        for opens, closes in chunk:
            if pending is not None:
                if opens <= pending[1]:
                    pending = (pending[0], max(pending[1], closes))
                    continue
                if pending[1] > at:
                    yield pending
            pending = (opens, closes)
    if pending is not None and pending[1] > at:
        yield pending


def status(schedule: Schedule, at: datetime) -> Status:
    """Open at `at` or not, and the next change (in the shop's zone).

    A status holds unchanged from the moment it was worked out until its next change, so the
    last one is kept on the (immutable) Schedule and given again for any moment in between:
    every chat's `ready` frame asks it twice, and a process keeps one Schedule per shop
    (faq/hours/models.py), so most connections need not compute the fortnight's openings again.
    Only a change well inside the horizon is kept (one near it could move as the horizon does)."""
    kept = schedule.__dict__.get("_status")
    if kept is not None and kept[0] <= at < kept[1].next_change:
        return kept[1]
    found = _status(schedule, at)
    if found.next_change is not None and found.next_change - at < _KEEP_WITHIN:
        object.__setattr__(schedule, "_status", (at, found))  # frozen: not a field
    return found


_KEEP_WITHIN = timedelta(days=HORIZON_DAYS - 60)


def _status(schedule: Schedule, at: datetime) -> Status:
    for opens, closes in _intervals_from(schedule, at):
        if opens <= at:
            return Status(True, closes.astimezone(schedule.time_zone))
        return Status(False, opens.astimezone(schedule.time_zone))
    return Status(False, None)


def is_open(schedule: Schedule, at: datetime) -> bool:
    return status(schedule, at).open


def next_change(schedule: Schedule, at: datetime) -> datetime | None:
    """When the shop next opens or closes after `at` (in the shop's zone), or None."""
    return status(schedule, at).next_change


def next_opening(schedule: Schedule, at: datetime) -> datetime | None:
    """The next moment the shop opens after `at` (after the current opening if open now)."""
    for opens, _ in _intervals_from(schedule, at):
        if opens > at:
            return opens.astimezone(schedule.time_zone)
    return None


def open_since(schedule: Schedule, at: datetime, duration: timedelta) -> datetime | None:
    """The moment from which the shop has been open for `duration` until `at`, closed time not
    counted: 24 opening hours back from Monday noon, for a shop open 9 to 6 on weekdays, is the
    previous Wednesday 3 PM. None when the shop was open less than that within HORIZON_DAYS."""
    if duration <= timedelta(0):
        return at
    last = at.astimezone(schedule.time_zone).date()
    span = 14
    while True:
        start = last - timedelta(days=span)
        # `intervals` holds every opening from the day before `start`; from `start`'s midnight
        # on, none is missing (a range ends at the latest the day after it opens).
        complete_from = local_moment(schedule, start, MIDNIGHT)
        left = duration
        for opens, closes in reversed(intervals(schedule, start, last)):
            opens, closes = max(opens, complete_from), min(closes, at)
            if closes <= opens:
                continue
            if closes - opens >= left:
                return closes - left
            left -= closes - opens
        if span >= HORIZON_DAYS:
            return None
        span = min(2 * span, HORIZON_DAYS)


def open_time(schedule: Schedule, start: datetime, end: datetime) -> timedelta:
    """How long the shop was open between two moments."""
    total = timedelta(0)
    first = start.astimezone(schedule.time_zone).date()
    last = end.astimezone(schedule.time_zone).date()
    for opens, closes in intervals(schedule, first, last):
        opens, closes = max(opens, start), min(closes, end)
        if closes > opens:
            total += closes - opens
    return total


def upcoming_specials(schedule: Schedule, start: date, count: int) -> list[DayHours]:
    """The days among the next `count` whose hours are not the usual ones (holidays, closures),
    for "upcoming closures" on the FAQ page and in a general hours answer."""
    return [
        hours
        for hours in days(schedule, start, count)
        if hours.special and hours.ranges != hours.usual
    ]
