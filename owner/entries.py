"""
The FAQ in the admin: `FAQEntryAdmin` (the list with its embedding state and filters, list
editing, publish and re-embed actions, exports), the import of a CSV/JSON file, the way to "Import
from your website" (owner/shops.py), and the customer wordings an owner accepts or dismisses on an
entry's page.

Every FAQ change made here is queued for the worker with the transaction that saves it, and the
entry's vectors are fresh once the worker has run it (within a second or two): form saves and
list editing go through post_save (faq/signals.py), batched per request; publish toggles change no
text, so they only queue the index; deletes cascade to the vectors. The list says how many
changes are still waiting and which entries failed every try (`queue_notices`). Owners see only
their own shops' entries (faq/owners.py).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import slugify

from faq import faqpage, importing, indexing
from faq.models import FAQEntry, Shop
from faq.owners import ShopScopedAdmin, shops_for
from owner.shops import can_import
from owner.views import page_context
from widget.models import CustomerWording


class EmbeddingStateFilter(admin.SimpleListFilter):
    title = "embedding"
    parameter_name = "embedding"

    def lookups(self, request, model_admin):
        return [
            (indexing.FRESH, "Fresh"),
            (indexing.STALE, "Stale (text or model changed)"),
            (indexing.MISSING, "Missing"),
        ]

    def queryset(self, request, queryset):
        if self.value() not in (indexing.FRESH, indexing.STALE, indexing.MISSING):
            return queryset
        states = indexing.states(queryset)
        return queryset.filter(pk__in=[pk for pk, s in states.items() if s == self.value()])


class CustomerWordingsFilter(admin.SimpleListFilter):
    """Entries with customer wordings waiting for the owner's accept or dismiss."""

    title = "customer wordings"
    parameter_name = "wordings"

    def lookups(self, request, model_admin):
        return [("waiting", "Waiting for a decision")]

    def queryset(self, request, queryset):
        if self.value() != "waiting":
            return queryset
        return queryset.filter(customer_wordings__status=CustomerWording.NEW).distinct()


class ImportForm(forms.Form):
    shop = forms.ModelChoiceField(queryset=Shop.objects.none())
    file = forms.FileField(help_text="A .csv or .json file (max 5 MB).")
    format = forms.ChoiceField(
        choices=[("", "From the file name"), ("csv", "CSV"), ("json", "JSON")], required=False
    )
    replace = forms.BooleanField(
        required=False,
        label="Replace",
        help_text="Also delete this shop's entries that are not in the file.",
    )

    MAX_BYTES = 5 * 1024 * 1024

    def __init__(self, *args, shops: QuerySet, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["shop"].queryset = shops
        if shops.count() == 1:
            self.fields["shop"].initial = shops.first()

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > self.MAX_BYTES:
                self.add_error("file", "The file is larger than 5 MB.")
            fmt = data.get("format") or importing.guess_format(upload.name)
            if not fmt:
                self.add_error("format", "Cannot tell the format from the file name; choose one.")
            data["format"] = fmt
        return data


class OrderField(forms.IntegerField):
    """The entry's place on the FAQ page (FAQEntry.position): empty means 0."""

    def clean(self, value):
        number = super().clean(value)
        return 0 if number is None else number


class FAQEntryAdmin(ShopScopedAdmin):
    list_display = [
        "question",
        "category",
        "position",
        "published",
        "shop",
        "embedding_state",
        "updated",
    ]
    list_display_links = ["question"]
    list_editable = ["category", "position", "published"]
    list_filter = ["shop", "category", "published", EmbeddingStateFilter, CustomerWordingsFilter]
    search_fields = ["question", "answer", "alternatives"]
    list_select_related = ["shop"]
    list_per_page = 50
    readonly_fields = ["embedding_state", "created", "updated"]
    fields = [
        "shop",
        "question",
        "answer",
        "alternatives",
        "category",
        "position",
        "published",
        "embedding_state",
        "created",
        "updated",
    ]
    actions = [
        "publish",
        "unpublish",
        "reembed_selected",
        "export_csv",
        "export_json",
        "export_html",
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "position":
            return OrderField(
                label="Order",
                required=False,
                initial=0,
                help_text=db_field.help_text,
                widget=forms.NumberInput(attrs={"style": "width: 5em"}),
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request) -> dict:
        initial = super().get_changeform_initial_data(request)
        shops = list(shops_for(request.user).values_list("pk", flat=True)[:2])
        if len(shops) == 1:  # an owner of one shop should not have to pick it every time
            initial.setdefault("shop", shops[0])
        return initial

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            # Wordings the entry has since gained another way (e.g. from the unanswered page)
            # need no decision.
            known = obj.wording_keys()
            context["customer_wordings"] = [
                wording
                for wording in obj.customer_wordings.filter(status=CustomerWording.NEW)
                if wording.key not in known
            ]
            context["can_decide"] = self.has_change_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def wording_view(self, request, object_id: str, wording_id: int):
        """Accept a customer wording as an alternative phrasing of the entry, or dismiss it."""
        if request.method != "POST":
            return HttpResponseBadRequest("Use the buttons on the entry's page.")
        entry = self.get_object(request, object_id)  # another shop's entry: 404
        if not self.has_change_permission(request, entry):
            raise PermissionDenied
        wording = entry.customer_wordings.filter(pk=wording_id).first()
        if wording is None:
            raise Http404("No such customer wording for this entry.")
        decision = request.POST.get("decision")
        if decision == "accept":
            wording.accept()
            self.message_user(
                request,
                f"Added “{wording.text}” as a phrasing; the bot answers it with this entry now.",
                messages.SUCCESS,
            )
        elif decision == "dismiss":
            wording.dismiss()
            self.message_user(request, f"Dismissed “{wording.text}”.")
        else:
            return HttpResponseBadRequest("Accept or dismiss.")
        return HttpResponseRedirect(
            reverse("admin:faq_faqentry_change", args=[entry.pk]) + "#customer-wordings"
        )

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        # One query for the vectors of the whole page; the column reads what is set here.
        page = list(cl.result_list)
        for entry, state in zip(page, _states_in_order(page), strict=True):
            entry._embedding_state = state
        return cl

    @admin.display(description="embedding")
    def embedding_state(self, obj: FAQEntry) -> str:
        if not obj.pk:
            return "-"
        state = getattr(obj, "_embedding_state", None) or indexing.states([obj])[obj.pk]
        colour = {indexing.FRESH: "#2f6f4f", indexing.STALE: "#a36a00"}.get(state, "#b00020")
        return format_html('<span style="color: {}">{}</span>', colour, state)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            queue_notices(request, shops_for(request.user).values_list("pk", flat=True))
        # List editing saves many entries: re-embed them in one batch after the commit.
        with indexing.batched():
            return super().changelist_view(request, extra_context)

    # --- Actions ------------------------------------------------------------------------------

    @admin.action(description="Publish selected entries", permissions=["change"])
    def publish(self, request, queryset) -> None:
        # No text changes, so the vectors stay as they are; update() is enough (and the shops'
        # search indexes are rebuilt: they hold published entries only).
        shop_ids = set(queryset.values_list("shop_id", flat=True))
        count = queryset.update(published=True, updated=timezone.now())
        indexing.reindex_later(shop_ids)
        self.message_user(request, f"Published {count} entries.", messages.SUCCESS)

    @admin.action(description="Unpublish selected entries", permissions=["change"])
    def unpublish(self, request, queryset) -> None:
        shop_ids = set(queryset.values_list("shop_id", flat=True))
        count = queryset.update(published=False, updated=timezone.now())
        indexing.reindex_later(shop_ids)
        self.message_user(request, f"Unpublished {count} entries; the bot no longer uses them.")

    @admin.action(
        description="Re-embed selected entries (stale or missing)", permissions=["change"]
    )
    def reembed_selected(self, request, queryset) -> None:
        ids = indexing.stale_entry_ids(queryset)
        if ids:
            indexing.refresh_later(ids)
        fresh = queryset.count() - len(ids)
        self.message_user(
            request,
            f"Queued {len(ids)} entries for re-embedding; {fresh} were already fresh.",
            messages.SUCCESS,
        )

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset) -> HttpResponse:
        return self._export(queryset, "csv")

    @admin.action(description="Export selected entries as JSON", permissions=["view"])
    def export_json(self, request, queryset) -> HttpResponse:
        return self._export(queryset, "json")

    @admin.action(
        description="Export selected published entries as HTML (for your site)",
        permissions=["view"],
    )
    def export_html(self, request, queryset) -> HttpResponse:
        return self._export(queryset, "html")

    def _export(self, queryset, fmt: str) -> HttpResponse:
        entries = queryset.order_by("category", "question")
        names = sorted({e.shop.name for e in entries.select_related("shop")})
        stem = slugify(names[0]) if len(names) == 1 else "faq"
        content_type = {"csv": "text/csv", "json": "application/json", "html": "text/html"}[fmt]
        if fmt == "html":
            text = faqpage.export_html(queryset, names[0] if len(names) == 1 else "FAQ")
        else:
            text = importing.export(entries, fmt)
        response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{stem or "faq"}-faq.{fmt}"'
        return response

    # --- Import -------------------------------------------------------------------------------

    def get_urls(self):
        urls = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="faq_faqentry_import",
            ),
            path(
                "import-page/",
                self.admin_site.admin_view(self.import_page_view),
                name="faq_faqentry_import_page",
            ),
            path(
                "<path:object_id>/wordings/<int:wording_id>/",
                self.admin_site.admin_view(self.wording_view),
                name="faq_faqentry_wording",
            ),
        ]
        return urls + super().get_urls()

    def import_page_view(self, request):
        """From the FAQ list to a shop's "Import from your website" page: straight there for
        the shop in the list's filter or an owner's only shop, else a choice of shops."""
        if not can_import(request):
            raise PermissionDenied
        shops = shops_for(request.user).order_by("name")
        wanted = request.GET.get("shop__id__exact", "")
        if wanted.isdigit():
            shops = shops.filter(pk=wanted)
            if not shops.exists():
                raise Http404("No shop with that id.")
        if len(shops[:2]) == 1:
            return HttpResponseRedirect(reverse("admin:faq_shop_import_page", args=[shops[0].pk]))
        context = page_context(
            request, self, "Import from your website", model_crumbs=True, shops=shops
        )
        return TemplateResponse(request, "owner/import_choose_shop.html", context)

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        shops = shops_for(request.user)
        form = ImportForm(request.POST or None, request.FILES or None, shops=shops)
        errors: list[importing.RowError] = []
        if request.method == "POST" and form.is_valid():
            shop, fmt = form.cleaned_data["shop"], form.cleaned_data["format"]
            replace = form.cleaned_data["replace"]
            if replace and not self.has_delete_permission(request):
                raise PermissionDenied
            upload = form.cleaned_data["file"]
            try:
                result = importing.import_file(shop, upload.read(), fmt, replace=replace)
            except importing.ImportFailed as exc:
                errors = exc.errors
            else:
                self.message_user(
                    request, f"Imported {upload.name} into {shop}: {result}.", messages.SUCCESS
                )
                # Back to the shop's set-up checklist: what is left to do after an import.
                return HttpResponseRedirect(reverse("admin:faq_shop_change", args=[shop.pk]))
        context = page_context(
            request,
            self,
            "Import FAQ entries",
            model_crumbs=True,
            form=form,
            errors=errors,
            columns=importing.COLUMNS,
        )
        return TemplateResponse(request, "owner/import_file.html", context)


def queue_notices(request, shop_ids) -> None:
    """Say on the page what the worker has not done yet for these shops: the changes waiting
    (the bot answers from the entries as they were until then), and the entries whose
    re-embedding failed every try."""
    shop_ids = list(shop_ids)
    waiting = indexing.waiting_changes(shop_ids)
    if waiting:
        messages.info(
            request,
            f"{waiting} change{'s' if waiting != 1 else ''} waiting: the bot knows "
            f"{'them' if waiting != 1 else 'it'} once the background worker has run "
            f"{'them' if waiting != 1 else 'it'} (usually within seconds; nothing is lost "
            "while the worker is stopped).",
        )
    failed = indexing.failed_entry_ids(shop_ids)
    if failed:
        messages.warning(
            request,
            f"{len(failed)} entr{'ies' if len(failed) != 1 else 'y'} could not be re-embedded, "
            "even after retries: select the entries shown stale or missing and use "
            '"Re-embed selected entries".',
        )


def _states_in_order(entries: list[FAQEntry]) -> list[str]:
    states = indexing.states(entries)
    return [states[e.pk] for e in entries]
