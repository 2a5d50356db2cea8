"""
The shop in the admin: `ShopAdmin` (settings, with the embed snippet, the set-up checklist and the
month's Claude spend) and every per-shop owner page, which hangs off it
(admin/faq/shop/<id>/...: try a question, import from your website, the opening hours, the
dashboard, the unanswered questions) and finds its shop one way, `shop_page`: the permission first
(403), then the admin's scoped get_object (another owner's shop is a 404). Try a question and the
import from a website are here; the opening hours are owner/hours.py's; the dashboard and the
unanswered questions are owner/views.py's.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.http import urlencode
from django.utils.translation import gettext

from faq import checklist, indexing, search
from faq.markup import answer_html
from faq.models import FAQEntry, Shop
from faq.owners import ShopScopedAdmin
from faq.search_index import check_wording
from faq.text import wording_key
from lib.web import site_url
from owner import hours as owner_hours
from owner import views as owner_views
from widget.chat import pipeline, texts
from widget.models import Message

TRY_LIMIT = 5


class TryQuestionForm(forms.Form):
    q = forms.CharField(label="Question", max_length=500, strip=True)


class AddWordingForm(forms.Form):
    q = forms.CharField(max_length=500, strip=True)
    entry = forms.IntegerField()


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
# Shop fields the add form does not show: they exist only once the shop is saved.
MADE_ON_SAVE = ("public_key", "created")


def can_import(request) -> bool:
    return request.user.has_perm("faq.add_faqentry") and request.user.has_perm(
        "faq.change_faqentry"
    )


class ShopAdmin(ShopScopedAdmin):
    shop_field = None  # the model is Shop itself

    def response_add(self, request, obj, post_url_continue=None):
        """A new shop's Save lands on its own page, where the set-up checklist and the embed
        snippet are (the list of shops was a dead end on a first hour's walk)."""
        if "_addanother" in request.POST or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        super().response_add(request, obj, post_url_continue)  # its "was added" message
        return HttpResponseRedirect(reverse("admin:faq_shop_change", args=[obj.pk]))

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
        if db_field.name == "fallback_message":
            kwargs["help_text"] = (
                "What the bot says when it is not sure, above the “Did you mean” questions "
                "it offers. A question nothing in your FAQ is close to gets one honest sentence "
                "instead (“I can't help with that here, but our team can.”, in the "
                "customer's language), and your contact route."
            )
        if isinstance(db_field, models.URLField):
            # A text box with an example, and the server's sentence for a bad address instead of
            # the browser's bare "Please enter a URL."; www.example.com means https://.
            kwargs["widget"] = forms.TextInput(
                attrs={"size": 60, "placeholder": "https://www.example.com/…", "inputmode": "url"}
            )
            kwargs["assume_scheme"] = "https"
            field = super().formfield_for_dbfield(db_field, request, **kwargs)
            field.error_messages["invalid"] = (
                "Enter a whole web address, like https://www.example.com/faq."
            )
            return field
        if db_field.name == "monthly_token_budget":  # 2,000,000 shows whole
            kwargs["widget"] = forms.NumberInput(attrs={"style": "width: 12em"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).annotate(n_entries=Count("entries"))

    @admin.display(description="FAQ entries", ordering="n_entries")
    def entry_count(self, obj: Shop) -> int:
        return obj.n_entries

    @admin.display(description="Claude tokens this month")
    def claude_usage(self, obj: Shop) -> str:
        used = Message.objects.claude_tokens(obj) if obj.pk else 0
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
        fieldsets += [("Other settings", {"fields": extra})] if extra else []
        if obj is None:
            # The key and the date are made when the shop is saved: shown on the add form, they
            # would be the unsaved form's (an owner who copied that key got one that never works).
            fieldsets = [
                (
                    name,
                    {**options, "fields": [f for f in options["fields"] if f not in MADE_ON_SAVE]},
                )
                for name, options in fieldsets
            ]
        return fieldsets

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not form.instance.owners.exists():
            # A shop added with no owner chosen is its creator's: the checklist, the customer
            # requests' emails and the shop lists all go by its owners.
            form.instance.owners.add(request.user)

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
            try:
                return view(request, self, shop)
            except owner_views.PreviewRefused as refused:  # a preview altered, or another shop's
                return HttpResponseBadRequest(str(refused))

        return self.admin_site.admin_view(page)

    def get_urls(self) -> list[URLPattern]:
        def sees_shop(request) -> bool:
            return self.has_view_or_change_permission(request)

        def changes_shop(request) -> bool:
            return self.has_change_permission(request)

        def changes_entries(request) -> bool:
            return request.user.has_perm("faq.change_faqentry")

        def sees_conversations(request) -> bool:
            return request.user.has_perm("widget.view_conversation")

        pages = [
            ("try/", try_question, sees_shop, "faq_shop_try"),
            ("try/add-wording/", add_tried_wording, changes_entries, "faq_shop_try_add"),
            ("try/waiting/", try_waiting, sees_shop, "faq_shop_try_waiting"),
            ("import-page/", import_page, can_import, "faq_shop_import_page"),
            ("hours/", owner_hours.edit_hours, changes_shop, "faq_shop_hours"),
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
    # Imported here: its HTTP client and HTML parser (httpx, bs4) cost about 0.3 CPU s to import,
    # in every process that loads the app, for this page and the hours page.
    from faq import webimport

    form = PageImportForm()
    error = ""
    found: list[webimport.Found] = []
    source = ""
    if request.method == "POST" and "payload" in request.POST:
        data = owner_views.open_preview(request.POST["payload"], shop, PREVIEW_SALT)
        if data is None:
            error = owner_views.PREVIEW_EXPIRED
        else:
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
                # Back to the set-up checklist: what is left to do after an import.
                return HttpResponseRedirect(reverse("admin:faq_shop_change", args=[shop.pk]))
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
        payload = owner_views.sign_preview(
            shop, PREVIEW_SALT, source=source, faqs=webimport.to_data(found)
        )
    context = owner_views.page_context(
        request,
        model_admin,
        f"Import from your website: {shop.name}",
        model_crumbs=True,
        original=shop,
        shop=shop,
        form=form,
        error=error,
        source=source,
        candidates=candidates,
        counts={s: sum(c.status == s for c in candidates) for s in webimport.STATUSES},
        payload=payload,
    )
    return TemplateResponse(request, "owner/import_page.html", context)


def try_question(request, model_admin: ShopAdmin, shop: Shop) -> HttpResponse:
    """What the bot would retrieve for a question: entries, scores, confident or not."""
    form = TryQuestionForm(request.GET or None)
    result = None
    customer_sees = {}
    has_wording: set[int] = set()
    if form.is_valid():
        result = search.search(shop, form.cleaned_data["q"], limit=TRY_LIMIT)
        key = wording_key(form.cleaned_data["q"])
        has_wording = {hit.entry.pk for hit in result.hits if key in hit.entry.wording_keys()}
        # For the set-up checklist: the owner has seen what the bot would answer.
        Shop.objects.filter(pk=shop.pk).update(question_tried=timezone.now())
        # What the customer would see, in the chat's words and the shop's language.
        with translation.override(shop.language):
            customer_sees = {
                "texts": texts.widget_texts(shop.language),
                "fallback": pipeline.not_answered_text(shop, bool(result.suggestions)),
                "answer": answer_html(result.best.entry.answer) if result.confident else "",
                "contact": shop.contact(),
            }
    context = owner_views.page_context(
        request,
        model_admin,
        f"Try a question: {shop.name}",
        model_crumbs=True,
        shop=shop,
        form=form,
        result=result,
        # What "confident" meant for this search: the bar search() compared with.
        threshold=result.threshold if result else None,
        customer_sees=customer_sees,
        entry_admin_url="admin:faq_faqentry_change",
        # "Add this wording" on each entry found, unless the wording is one of its texts already.
        can_add_wording=request.user.has_perm("faq.change_faqentry"),
        has_wording=has_wording,
        # Changes the worker has not indexed yet (a wording just added): the verdict is from
        # before them, and owner/try.js tries the question again once they are in.
        waiting=indexing.waiting_changes([shop.pk]) if result is not None else 0,
    )
    return TemplateResponse(request, "owner/try_question.html", context)


def try_waiting(request, model_admin: ShopAdmin, shop: Shop) -> HttpResponse:
    """How many of the shop's changes the worker has not indexed yet (Try a question polls it)."""
    return JsonResponse({"waiting": indexing.waiting_changes([shop.pk])})


def add_tried_wording(request, model_admin: ShopAdmin, shop: Shop) -> HttpResponse:
    """Try a question's "Add this wording": the question tried becomes an alternative phrasing of
    the entry chosen, after the check that accepting a customer wording gets
    (faq.search_index.check_wording): a wording closer to another entry is not added. Back to
    Try a question with the same wording, to see what the bot says now."""
    if request.method != "POST":
        return HttpResponseBadRequest("Use the button on Try a question.")
    form = AddWordingForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("A wording and an entry, please.")
    wording = " ".join(form.cleaned_data["q"].split())
    entry = shop.entries.filter(pk=form.cleaned_data["entry"]).first()
    if entry is None:
        raise Http404("No such entry in this shop.")
    names = {"wording": wording, "entry": entry.question}
    check = check_wording(entry, wording)
    if check.pulls is not None:
        messages.error(
            request,
            gettext(
                "Not added: “%(wording)s” is closer to “%(other)s” than to “%(entry)s”; as a "
                "phrasing it would pull that entry's questions here and risk wrong answers."
            )
            % {**names, "other": check.pulls.question},
        )
    else:
        with transaction.atomic():
            added = FAQEntry.objects.select_for_update().get(pk=entry.pk).add_phrasings([wording])
        if added:
            messages.success(
                request,
                gettext(
                    "Added “%(wording)s” as a phrasing of “%(entry)s”. The bot uses it in a few "
                    "seconds, once it is indexed: this page tries the question again then."
                )
                % names,
            )
        else:
            messages.info(
                request, gettext("“%(wording)s” is already a phrasing of “%(entry)s”.") % names
            )
    back = reverse("admin:faq_shop_try", args=[shop.pk])
    return HttpResponseRedirect(f"{back}?{urlencode({'q': wording})}")
