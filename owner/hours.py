"""
The shop's opening hours in the admin: one page per shop (admin/faq/shop/<id>/hours/, reached
through `ShopAdmin.shop_page`) where the owner sets the time zone and holiday calendar, the week,
the exceptions and the holiday rules, sees the next 14 days as customers will, and can bring the
hours in from their website's schema.org data.

Every rule is the models' (faq/hours/models.py): each row's `clean()`, and across the rows being
edited `ShopHours.check_week` and `SpecialDay.check_conflicts`, run by the formsets here. A save is
all or nothing: with any error the page comes back as typed, each sentence beside its row.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, time

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet, inlineformset_factory
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from faq.hours import questions as hours_questions
from faq.hours import schedule as sched
from faq.hours import schemaorg
from faq.hours.models import HolidayRule, ShopHours, SpecialDay, WeeklyRange
from faq.models import Shop
from owner import views as owner_views

PREVIEW_DAYS = 14
IMPORT_SALT = "faq.hours.import"


def time_zone_choices() -> list[tuple[str, str]]:
    names = sorted(z for z in zoneinfo.available_timezones() if "/" in z and "Etc" not in z)
    return [(name, name.replace("_", " ")) for name in names]


def country_choices() -> list[tuple[str, str]]:
    """The holiday calendar's countries by name ("United States (US)"), two-letter codes only."""
    import holidays

    named = {
        code: re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)  # UnitedStates -> United States
        for name, code, *_ in holidays.registry.COUNTRIES.values()
    }
    countries = [c for c in sched.supported_countries() if len(c) == 2]
    countries.sort(key=lambda c: named.get(c, c))
    return [("", "No public holidays")] + [(c, f"{named.get(c, c)} ({c})") for c in countries]


class HoursForm(forms.ModelForm):
    """The time zone and the holiday calendar. Lists to choose from, but any value posted is
    checked by ShopHours.clean(), whose sentences say what is wrong."""

    class Meta:
        model = ShopHours
        fields = [
            "time_zone",
            "holiday_country",
            "holiday_subdivision",
            "public_holidays",
            "business_type",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        zones = time_zone_choices()
        # The zone this form starts from (a new shop's is TIME_ZONE, "UTC" by default) is always
        # a choice: a list without it showed its first zone (Africa/Abidjan) as chosen and saved
        # that.
        current = self.initial.get("time_zone") or self.instance.time_zone
        if current and current not in dict(zones):
            zones.insert(0, (current, current.replace("_", " ")))
        self.fields["time_zone"].widget = forms.Select(choices=zones)
        self.fields["holiday_country"].widget = forms.Select(choices=country_choices())


class RowForm(forms.ModelForm):
    """A row of one of the three tables: its own rules in its model's clean(); the rules across
    rows are the formset's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.checked_with_rows = True
        for name in ("opens", "closes"):
            if name in self.fields:
                self.fields[name].widget = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
        for name in ("start", "end"):
            if name in self.fields:
                self.fields[name].widget = forms.DateInput(attrs={"type": "date"})


class RowsFormSet(BaseInlineFormSet):
    """Rows kept (filled in and not marked for deletion), and a check across them."""

    check = None  # ShopHours.check_week or SpecialDay.check_conflicts

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.instance.hours = self.instance  # as being edited: a rule reads its calendar
        return form

    def kept(self) -> list:
        return [
            form.instance
            for form in self.forms
            if form.has_changed() or form.instance.pk
            if not (self.can_delete and self._should_delete_form(form))
        ]

    def clean(self) -> None:
        super().clean()
        if self.check is None or any(form.errors for form in self.forms):
            return
        try:
            type(self).check(self.kept())
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None


class WeekFormSet(RowsFormSet):
    check = staticmethod(ShopHours.check_week)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.initial_form_count():
            self.extra = 7  # a first week: a row for each day, not three and a second save


class ExceptionFormSet(RowsFormSet):
    check = staticmethod(SpecialDay.check_conflicts)


class HolidayForm(RowForm):
    def __init__(self, *args, holidays: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = list(holidays)
        if self.instance.holiday and self.instance.holiday not in names:
            names.insert(0, self.instance.holiday)  # one the calendar no longer has: clean() says
        self.fields["holiday"].widget = forms.Select(
            choices=[("", "Choose a holiday")] + [(n, n) for n in names]
        )


TIMES = ["opens", "closes", "past_midnight"]
WeekRows = inlineformset_factory(
    ShopHours,
    WeeklyRange,
    form=RowForm,
    formset=WeekFormSet,
    fields=["weekday", *TIMES],
    extra=3,
)
ExceptionRows = inlineformset_factory(
    ShopHours,
    SpecialDay,
    form=RowForm,
    formset=ExceptionFormSet,
    fields=["start", "end", "closed", *TIMES, "note", "every_year"],
    labels={"past_midnight": "After midnight"},  # nine columns at 1280 px: short headers
    extra=2,
)
HolidayRows = inlineformset_factory(
    ShopHours,
    HolidayRule,
    form=HolidayForm,
    formset=RowsFormSet,
    fields=["holiday", "action", *TIMES],
    labels={"past_midnight": "After midnight"},
    extra=2,
)


class ImportForm(forms.Form):
    url = forms.URLField(
        label="Your website's page with your hours",
        assume_scheme="https",
        max_length=2000,
        widget=forms.URLInput(attrs={"size": 60, "placeholder": "https://yourshop.com/contact"}),
    )


def preview(hours: ShopHours | None, today: date) -> list[dict]:
    """The next PREVIEW_DAYS days as customers will see them (the saved hours)."""
    if hours is None:
        return []
    return hours_questions.days_preview(hours.schedule(), today, PREVIEW_DAYS, "en")


def imported_rows(imported: schemaorg.ImportedHours) -> dict:
    """What an import would bring in, said for the owner to check before saving."""
    with_hours = {}
    for day, r in imported.week:
        with_hours.setdefault(day, []).append(r)
    return {
        "week": [
            (
                label,
                hours_questions.ranges_text(tuple(with_hours[day])) if day in with_hours else "",
            )
            for day, label in WeeklyRange.Weekday.choices
        ],
        "specials": [
            (
                special.start,
                special.end,
                hours_questions.ranges_text(special.ranges) if special.ranges else "Closed",
                special.note,
            )
            for special in imported.specials
        ],
    }


def _import_data(imported: schemaorg.ImportedHours) -> dict:
    def r(value: sched.Range) -> list:
        return [value.opens.isoformat(), value.closes.isoformat(), value.past_midnight]

    return {
        "week": [[day, r(value)] for day, value in imported.week],
        "specials": [
            [s.start.isoformat(), s.end.isoformat(), [r(x) for x in s.ranges], s.note]
            for s in imported.specials
        ],
        "holidays": imported.closed_on_public_holidays,
    }


def _from_import_data(data: dict) -> schemaorg.ImportedHours:
    def r(value: list) -> sched.Range:
        return sched.Range(time.fromisoformat(value[0]), time.fromisoformat(value[1]), value[2])

    return schemaorg.ImportedHours(
        week=[(day, r(value)) for day, value in data["week"]],
        specials=[
            sched.Special(date.fromisoformat(a), date.fromisoformat(b), tuple(map(r, rs)), note)
            for a, b, rs, note in data["specials"]
        ],
        closed_on_public_holidays=data["holidays"],
    )


def edit_hours(request, model_admin, shop: Shop) -> HttpResponse:
    """The hours editor: the settings, the three tables, the preview; and the import."""
    saved = ShopHours.objects.filter(shop=shop).first()  # for the preview: as saved
    hours = ShopHours.objects.filter(shop=shop).first() or ShopHours(shop=shop)
    today = saved.today() if saved else timezone.localdate()
    action = request.POST.get("action", "") if request.method == "POST" else ""
    page_url = reverse("admin:faq_shop_hours", args=[shop.pk])
    import_form, imported, payload, import_error = ImportForm(), None, "", ""

    if action == "save":
        form = HoursForm(request.POST, instance=hours)
        valid = form.is_valid()  # first: the holiday rules check against its calendar
        holiday_names = hours.holiday_choices() if hours.holiday_country else []
        tables = _tables(hours, request.POST, holiday_names)
        if valid and all(table.is_valid() for table in tables.values()):
            with transaction.atomic():
                form.save()
                for table in tables.values():
                    table.instance = hours
                    table.save()
            model_admin.message_user(request, "The opening hours were saved.", messages.SUCCESS)
            return HttpResponseRedirect(page_url)
        model_admin.message_user(
            request,
            "Nothing was saved: please correct the errors below.",
            messages.ERROR,
        )
    else:
        form = HoursForm(instance=hours)
        holiday_names = hours.holiday_choices() if hours.holiday_country else []
        tables = _tables(hours, None, holiday_names)

    if action == "import-fetch":
        from faq import webimport  # imported here: see owner.shops.import_page

        import_form = ImportForm(request.POST)
        if import_form.is_valid():
            try:
                page = webimport.fetch(import_form.cleaned_data["url"])
                imported = schemaorg.parse_opening_hours(webimport.json_ld(page), today)
            except (webimport.PageImportError, schemaorg.HoursImportError) as error:
                import_error = str(error)
            else:
                payload = owner_views.sign_preview(
                    shop, IMPORT_SALT, source=page.url, hours=_import_data(imported)
                )
    elif action == "import-save":
        data = owner_views.open_preview(request.POST.get("payload", ""), shop, IMPORT_SALT)
        if data is None:
            import_error = owner_views.PREVIEW_EXPIRED
        else:
            imported = _from_import_data(data["hours"])
            try:
                with transaction.atomic():
                    if saved is None:  # the shop's first hours
                        hours.full_clean()
                        hours.save()
                    schemaorg.save_imported(hours, imported)
            except ValidationError as error:
                import_error = " ".join(error.messages)
                payload = request.POST.get("payload", "")
            else:
                model_admin.message_user(
                    request,
                    f"The opening hours from {data['source']} were saved.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(page_url)

    context = owner_views.page_context(
        request,
        model_admin,
        f"Opening hours: {shop.name}",
        model_crumbs=True,
        shop=shop,
        form=form,
        tables=tables,
        preview=preview(saved, today),
        import_form=import_form,
        imported=imported_rows(imported) if imported else None,
        import_problems=imported.problems if imported else [],
        import_error=import_error,
        payload=payload,
    )
    return TemplateResponse(request, "owner/hours.html", context)


def _tables(hours: ShopHours, data, holiday_names: list[str]) -> dict:
    return {
        "week": WeekRows(data, instance=hours, prefix="week"),
        "exceptions": ExceptionRows(data, instance=hours, prefix="exceptions"),
        "holidays": HolidayRows(
            data, instance=hours, prefix="holidays", form_kwargs={"holidays": holiday_names}
        ),
    }
