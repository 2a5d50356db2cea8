"""
The owner's admin: shop settings (with the embed snippet and a "try a question" box) and the FAQ.

Every per-shop owner page hangs off ShopAdmin (admin/faq/shop/<id>/...: try a question, import
from your website, the dashboard, the unanswered questions) and finds its shop one way,
`shop_page`: the permission first (403), then the admin's scoped get_object (another owner's shop
is a 404). The dashboard and unanswered pages themselves are in widget/owner/views.py.

Every FAQ change made here leaves the entry's vectors fresh once the transaction commits: form
saves and list editing go through post_save (faq/signals.py), batched per request; publish
toggles change no text, so they skip it; deletes cascade to the vectors. Owners see only their
own shops (faq/owners.py).
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import slugify

from faq import checklist, faqpage, importing, indexing, search, webimport
from faq.models import FAQEntry, Shop, wording_key
from faq.owners import ShopScopedAdmin, shops_for
from widget.models import CustomerWording
from widget.owner import views as owner_views

TRY_LIMIT = 5


def site_url(request) -> str:
    if settings.SITE_URL:
        return settings.SITE_URL
    if request is None:
        return ""
    return request.build_absolute_uri("/").rstrip("/")


class TryQuestionForm(forms.Form):
    q = forms.CharField(label="Question", max_length=500, strip=True)


class PageImportForm(forms.Form):
    url = forms.URLField(
        label="Address of your FAQ page",
        required=False,
        assume_scheme="https",
        max_length=2000,
        widget=forms.URLInput(attrs={"size": 70, "placeholder": "https://yourshop.com/faq"}),
    )
    file = forms.FileField(
        label="or the page saved as HTML",
        required=False,
        help_text="In your browser: Save Page As, \u201cWeb page, HTML only\u201d (at most 2 MB).",
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("url")) == bool(data.get("file")) and not self.errors:
            raise forms.ValidationError(
                "Give the address of your FAQ page, or upload the saved page (one of the two)."
            )
        return data


# The found questions travel from the preview to the import inside the form, signed, so an
# uploaded page need not be kept and a fetched one is not fetched twice.
PREVIEW_SALT = "faq.webimport.preview"
PREVIEW_MAX_AGE = 3600


def can_import(request) -> bool:
    return request.user.has_perm("faq.add_faqentry") and request.user.has_perm(
        "faq.change_faqentry"
    )


@admin.register(Shop)
class ShopAdmin(ShopScopedAdmin):
    shop_field = None  # the model is Shop itself
    list_display = [
        "name",
        "bot_name",
        "entry_count",
        "use_claude",
        "monthly_token_budget",
        "public_key",
        "created",
    ]
    search_fields = ["name"]
    readonly_fields = ["public_key", "claude_usage", "created"]
    # The embed snippet and the FAQ page's address need the request's host name: change_view
    # passes them to the template (admin/faq/shop/change_form.html) as extra_context.
    fieldsets = [
        (None, {"fields": ["name", "public_key", "allowed_origins"]}),
        (
            "The chat window",
            {"fields": ["bot_name", "greeting", "suggestions", "accent_color", "position"]},
        ),
        (
            "Answers",
            {
                "fields": [
                    "use_claude",
                    "monthly_token_budget",
                    "claude_usage",
                    "language",
                    "fallback_message",
                ]
            },
        ),
        (
            "Handoff to a person",
            {
                "fields": [
                    "contact_email",
                    "contact_phone",
                    "contact_url",
                    "phone_callbacks",
                    "reply_time",
                ]
            },
        ),
        (
            "The FAQ page",
            {"fields": ["slug", "faq_location", "faq_page_url"]},
        ),
        ("Access", {"fields": ["owners", "created"]}),
    ]
    filter_horizontal = ["owners"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "language":  # a choice of the languages the chat speaks
            return forms.ChoiceField(
                choices=settings.LANGUAGES,
                initial=db_field.default,
                help_text="The chat window's language: its buttons and notices, the error "
                "messages, and the greeting and fallback while they are the defaults. A website "
                'can override it with data-lang="…" on the script tag (e.g. data-lang="es").',
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).annotate(n_entries=Count("entries"))

    @admin.display(description="FAQ entries", ordering="n_entries")
    def entry_count(self, obj: Shop) -> int:
        return obj.n_entries

    @admin.display(description="Claude tokens this month")
    def claude_usage(self, obj: Shop) -> str:
        used = obj.tokens_used() if obj.pk else 0
        budget = obj.monthly_token_budget
        if not budget:
            return f"{used:,} (no limit)"
        return f"{used:,} of {budget:,} ({min(100, round(100 * used / budget))}%)"

    def get_fieldsets(self, request, obj=None):
        # A setting added to Shop later still shows up, even before someone places it above.
        fieldsets = list(super().get_fieldsets(request, obj))
        listed = {name for _, options in fieldsets for name in options["fields"]}
        extra = [
            f.name
            for f in Shop._meta.get_fields()
            if getattr(f, "editable", False)
            and not f.auto_created
            and f.concrete
            and f.name not in listed
        ]
        return fieldsets + ([("Other settings", {"fields": extra})] if extra else [])

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Owners cannot hand their shop to someone else, nor raise the Claude budget that
            # whoever runs the installation pays for.
            fields += ["owners", "monthly_token_budget"]
        return fields

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        shop = self.get_object(request, unquote(object_id))  # another owner's shop: 404
        site = site_url(request)
        extra_context = {
            **(extra_context or {}),
            "checklist": checklist.for_shop(shop),
            # escaped in the template: shown as text to copy, not run.
            "embed_snippet": shop.embed_snippet(site),
            "faq_page_url": site + shop.get_absolute_url(),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- The per-shop owner pages ---------------------------------------------------------------

    def shop_page(self, view: Callable, permission: Callable) -> Callable:
        """`view(request, model_admin, shop)` behind the admin's login, for a user who has
        `permission(request)` and can see the shop: the one way every per-shop page scopes."""

        def page(request, object_id: str):
            if not permission(request):
                raise PermissionDenied
            shop = self.get_object(request, unquote(object_id))  # another owner's shop: 404
            return view(request, self, shop)

        return self.admin_site.admin_view(page)

    def get_urls(self) -> list[URLPattern]:
        def sees_shop(request) -> bool:
            return self.has_view_or_change_permission(request)

        def sees_conversations(request) -> bool:
            return request.user.has_perm("widget.view_conversation")

        pages = [
            ("try/", try_question, sees_shop, "faq_shop_try"),
            ("import-page/", import_page, can_import, "faq_shop_import_page"),
            ("dashboard/", owner_views.dashboard, sees_conversations, "widget_dashboard"),
            ("unanswered/", owner_views.unanswered_list, sees_conversations, "widget_unanswered"),
            (
                "unanswered/new-entry/",
                owner_views.unanswered_entry,
                sees_conversations,
                "widget_unanswered_entry",
            ),
        ]
        urls = [
            path(f"<path:object_id>/{suffix}", self.shop_page(view, permission), name=name)
            for suffix, view, permission, name in pages
        ]
        # Which shop's dashboard? (straight to it for an owner of one shop)
        dashboards = self.admin_site.admin_view(self.dashboards_view)
        urls.append(path("dashboards/", dashboards, name="widget_owner_shops"))
        return urls + super().get_urls()

    def dashboards_view(self, request):
        if not request.user.has_perm("widget.view_conversation"):
            raise PermissionDenied
        return owner_views.shops(request, self)


def import_page(request, model_admin: ShopAdmin, shop: Shop) -> HttpResponse:
    """Import from your website: fetch the FAQ page (or read the saved file), preview what was
    found against the shop's FAQ, and import the ticked rows."""
    form = PageImportForm()
    error = ""
    found: list[webimport.Found] = []
    source = ""
    if request.method == "POST" and "payload" in request.POST:
        try:
            data = signing.loads(
                request.POST["payload"], salt=PREVIEW_SALT, max_age=PREVIEW_MAX_AGE
            )
        except signing.SignatureExpired:
            error = "This preview is more than an hour old; fetch the page again."
        except signing.BadSignature:
            return HttpResponseBadRequest("The preview was altered; fetch the page again.")
        else:
            if data["shop"] != shop.pk:
                return HttpResponseBadRequest("This preview belongs to another shop.")
            found, source = webimport.from_data(data["faqs"]), data["source"]
            ticked = set(request.POST.getlist("row"))
            chosen = [f for n, f in enumerate(found) if str(n) in ticked]
            if chosen:
                result = webimport.import_found(shop, chosen)
                model_admin.message_user(
                    request,
                    f"Imported {len(chosen)} questions from {source} into {shop}: "
                    f"{result.created} new, {result.updated} updated, "
                    f"{result.unchanged} unchanged.",
                    messages.SUCCESS,
                )
                url = reverse("admin:faq_faqentry_changelist")
                return HttpResponseRedirect(f"{url}?shop__id__exact={shop.pk}")
            error = "Tick at least one question to import."
    elif request.method == "POST":
        form = PageImportForm(request.POST, request.FILES)
        if form.is_valid():
            url, upload = form.cleaned_data["url"], form.cleaned_data["file"]
            try:
                if url:
                    page = webimport.fetch(url)
                else:
                    page = webimport.read_file(upload.read(), upload.name)
                found = webimport.find_faqs(page)
                source = page.url
            except webimport.PageImportError as exc:
                error = str(exc)
    candidates = webimport.compare(shop, found) if found else []
    payload = ""
    if found:
        payload = signing.dumps(
            {"shop": shop.pk, "source": source, "faqs": webimport.to_data(found)},
            salt=PREVIEW_SALT,
            compress=True,
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": shop,
        "shop": shop,
        "form": form,
        "error": error,
        "source": source,
        "candidates": candidates,
        "counts": {s: sum(c.status == s for c in candidates) for s in webimport.STATUSES},
        "payload": payload,
        "title": f"Import from your website: {shop.name}",
    }
    return TemplateResponse(request, "admin/faq/shop/import_page.html", context)


def try_question(request, model_admin: ShopAdmin, shop: Shop) -> HttpResponse:
    """What the bot would retrieve for a question: entries, scores, confident or not."""
    form = TryQuestionForm(request.GET or None)
    result = None
    if form.is_valid():
        result = search.search(shop, form.cleaned_data["q"], limit=TRY_LIMIT)
        # For the set-up checklist: the owner has seen what the bot would answer.
        Shop.objects.filter(pk=shop.pk).update(question_tried=timezone.now())
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "shop": shop,
        "form": form,
        "result": result,
        # What "confident" meant for this search: the bar search() compared with.
        "threshold": result.threshold if result else None,
        "title": f"Try a question: {shop.name}",
        "entry_admin_url": "admin:faq_faqentry_change",
    }
    return TemplateResponse(request, "admin/faq/shop/try_question.html", context)


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


@admin.register(FAQEntry)
class FAQEntryAdmin(ShopScopedAdmin):
    list_display = ["question", "category", "published", "shop", "embedding_state", "updated"]
    list_display_links = ["question"]
    list_editable = ["category", "published"]
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
            known = {wording_key(t) for t in [obj.question, *obj.alternative_list]}
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
        texts = indexing.refresh(ids) if ids else 0
        fresh = queryset.count() - len(ids)
        self.message_user(
            request,
            f"Re-embedded {len(ids)} entries ({texts} texts); {fresh} were already fresh.",
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
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "shops": shops,
            "title": "Import from your website",
        }
        return TemplateResponse(request, "admin/faq/faqentry/import_page_choose.html", context)

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
                url = reverse("admin:faq_faqentry_changelist") + f"?shop__id__exact={shop.pk}"
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "errors": errors,
            "title": "Import FAQ entries",
            "columns": importing.COLUMNS,
        }
        return TemplateResponse(request, "admin/faq/faqentry/import.html", context)


def _states_in_order(entries: list[FAQEntry]) -> list[str]:
    states = indexing.states(entries)
    return [states[e.pk] for e in entries]
