"""
A shop's opening hours as data (issue 30): the weekly schedule, exceptions, public holidays, all
in the shop's time zone, and what is computed from them.

- `models`: `ShopHours` (time zone, holiday calendar), `WeeklyRange`, `SpecialDay` (exceptions),
  `HolidayRule`; each owns its validation (`clean`), in sentences an owner understands.
- `schedule`: pure functions on a `Schedule` (built by `ShopHours.schedule()`) and a datetime:
  open or not, the next change, one day's hours, the next opening, the coming days.
- `questions`: recognising a customer's question about opening times, in the chat's language,
  and answering it from the schedule; the widget's status line and the hand-off promise.
- `schemaorg`: `openingHoursSpecification` / `specialOpeningHoursSpecification` out (the FAQ
  page's JSON-LD) and in (the import).
"""
