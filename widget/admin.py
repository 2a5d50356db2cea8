"""
Conversations in the admin, read-only, plus the owner's pages that hang off them: the dashboard,
the unanswered questions and "create an FAQ entry from this group" (widget/owner/views.py).

Everything is scoped by shop (shopbot/owners.py): an owner sees only their shops' conversations,
and another shop's conversation or dashboard is a 404. Nobody edits a transcript; only a
superuser may delete one (retention is `manage.py purge_conversations`).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Value, When
from django.http import HttpResponse
from django.urls import path
from django.utils.html import format_html

from shopbot import csvcells
from shopbot.owners import ShopScopedAdmin, shops_for
from widget import notify
from widget.models import Conversation, Handoff, Message
from widget.owner import requests as owner_requests
from widget.owner import views as owner_views

# The admin index lists each shop's dashboard and unanswered questions above the apps, unless
# the project has chosen an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "widget/admin_index.html"


def _has_message(**filters) -> Exists:
    return Exists(Message.objects.filter(conversation=OuterRef("pk"), **filters))


class AnsweredByFilter(admin.SimpleListFilter):
    title = "answered by"
    parameter_name = "mode"

    def lookups(self, request, model_admin):
        return Message.MODES

    def queryset(self, request, queryset):
        if self.value() in dict(Message.MODES):
            return queryset.filter(_has_message(role=Message.BOT, mode=self.value()))
        return queryset


class YesNoFilter(admin.SimpleListFilter):
    """A yes/no filter on whether a conversation has a bot message matching `condition`."""

    condition: dict = {}

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        # Exists instead of a join: a join on messages would multiply the list's counts.
        has = _has_message(role=Message.BOT, **self.condition)
        if self.value() == "yes":
            return queryset.filter(has)
        if self.value() == "no":
            return queryset.filter(~has)
        return queryset


class ThumbsDownFilter(YesNoFilter):
    title = "has a thumbs-down"
    parameter_name = "down"
    condition = {"feedback": Message.DOWN}


class FellBackFilter(YesNoFilter):
    title = "fell back"
    parameter_name = "fallback"
    condition = {"mode": Message.FALLBACK}


@admin.register(Conversation)
class ConversationAdmin(ShopScopedAdmin):
    shop_field = "shop"
    list_display = [
        "started_at",
        "shop",
        "first_question",
        "page",
        "message_count",
        "modes_used",
        "thumbs_up",
        "thumbs_down",
    ]
    list_display_links = ["started_at"]
    list_filter = ["shop", "started", AnsweredByFilter, ThumbsDownFilter, FellBackFilter]
    search_fields = ["page_url"]
    list_select_related = ["shop"]
    list_per_page = 50
    change_list_template = "widget/conversation_change_list.html"
    actions = ["export_csv"]

    # --- Permissions: read-only for everyone; superusers may delete ---------------------------

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    # --- The list ----------------------------------------------------------------------------

    def get_queryset(self, request) -> QuerySet:
        # One query for the whole page: every column below reads these annotations.
        first_question = (
            Message.objects.filter(conversation=OuterRef("pk"), role=Message.USER)
            .order_by("created", "pk")
            .values("text")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                first_question=Subquery(first_question),
                n_messages=Count("messages"),
                n_up=Count("messages", filter=Q(messages__feedback=Message.UP)),
                n_down=Count("messages", filter=Q(messages__feedback=Message.DOWN)),
                modes=ArrayAgg(
                    "messages__mode",
                    distinct=True,
                    filter=Q(messages__role=Message.BOT) & ~Q(messages__mode=""),
                    default=[],
                ),
            )
        )

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        if not self._many_shops(request):
            fields.remove("shop")
        return fields

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not self._many_shops(request):
            filters = [f for f in filters if not (isinstance(f, tuple) and f[0] == "shop")]
        return filters

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # The page address or anything said, through Exists so the counts stay right.
        said = _has_message(text__icontains=term)
        return queryset.filter(Q(page_url__icontains=term) | said), False

    def _many_shops(self, request) -> bool:
        if not hasattr(request, "_shopbot_many_shops"):
            request._shopbot_many_shops = (
                request.user.is_superuser or shops_for(request.user).count() > 1
            )
        return request._shopbot_many_shops

    @admin.display(description="started", ordering="started")
    def started_at(self, obj: Conversation) -> str:
        return obj.started.strftime("%Y-%m-%d %H:%M")

    @admin.display(description="first question")
    def first_question(self, obj: Conversation) -> str:
        text = " ".join((obj.first_question or "").split())
        return text[:80] + ("…" if len(text) > 80 else "") or "-"

    @admin.display(description="page", ordering="page_url")
    def page(self, obj: Conversation) -> str:
        if not obj.page_url:
            return "-"
        shown = obj.page_url.split("://", 1)[-1]
        return format_html('<span title="{}">{}</span>', obj.page_url, shown[:60])

    @admin.display(description="messages", ordering="n_messages")
    def message_count(self, obj: Conversation) -> int:
        return obj.n_messages

    @admin.display(description="answered by")
    def modes_used(self, obj: Conversation) -> str:
        names = dict(Message.MODES)
        return ", ".join(names.get(m, m) for m in sorted(obj.modes)) or "-"

    @admin.display(description="thumbs up", ordering="n_up")
    def thumbs_up(self, obj: Conversation) -> int:
        return obj.n_up

    @admin.display(description="thumbs down", ordering="n_down")
    def thumbs_down(self, obj: Conversation) -> int:
        return obj.n_down

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "owner_shops": shops_for(request.user)}
        return super().changelist_view(request, extra_context)

    # --- Actions ------------------------------------------------------------------------------

    @admin.action(description="Download selected transcripts (CSV)", permissions=["view"])
    def export_csv(self, request, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="conversations.csv"'
        # Customer text and the page address are the customer's: no cell may run as a formula.
        writer = csvcells.writer(response)
        writer.writerow(
            [
                "conversation",
                "started",
                "page",
                "time",
                "role",
                "text",
                "mode",
                "score",
                "feedback",
                "sources",
            ]  # fmt: skip
        )
        messages = (
            Message.objects.filter(conversation__in=queryset.values("pk"))
            .select_related("conversation")
            .order_by("conversation__started", "conversation_id", "created", "pk")
        )
        for m in messages.iterator(chunk_size=500):
            writer.writerow(
                [
                    m.conversation_id,
                    m.conversation.started.isoformat(),
                    m.conversation.page_url,
                    m.created.isoformat(),
                    m.role,
                    m.text,
                    m.mode,
                    "" if m.score is None else f"{m.score:.3f}",
                    m.feedback,
                    "; ".join(str(s.get("question", "")) for s in m.sources or []),
                ]
            )
        return response

    # --- The transcript and the owner's pages --------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        conversation = self.get_object(request, unquote(object_id))  # another shop's: 404
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        return owner_views.transcript(request, self, conversation)

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path("shops/", view(self.shops_view), name="widget_owner_shops"),
            path("dashboard/<int:shop_id>/", view(self.dashboard_view), name="widget_dashboard"),
            path(
                "unanswered/<int:shop_id>/",
                view(self.unanswered_view),
                name="widget_unanswered",
            ),
            path(
                "unanswered/<int:shop_id>/new-entry/",
                view(self.gap_entry_view),
                name="widget_gap_entry",
            ),
        ]
        return urls + super().get_urls()

    def shops_view(self, request):
        return owner_views.shops(request, self)

    def dashboard_view(self, request, shop_id: int):
        return owner_views.dashboard(request, self, shop_id)

    def unanswered_view(self, request, shop_id: int):
        return owner_views.unanswered(request, self, shop_id)

    def gap_entry_view(self, request, shop_id: int):
        return owner_views.gap_entry(request, self, shop_id)


@admin.register(Handoff)
class HandoffAdmin(ShopScopedAdmin):
    """ "Customer requests": the questions customers left for a person, open ones first. Whoever
    may read a shop's conversations may answer its customers (the same permission, so existing
    owners need nothing new); another shop's request is a 404."""

    shop_field = "conversation__shop"
    list_display = ["left", "status_badge", "question", "contact", "name", "owner_emailed"]
    list_display_links = ["left", "question"]
    list_filter = ["status", "conversation__shop"]
    search_fields = ["email", "phone", "name", "note"]
    list_select_related = ["conversation__shop"]
    list_per_page = 50
    actions = ["close_requests", "email_owners_again"]

    def _may_read(self, request) -> bool:
        return request.user.has_perm("widget.view_conversation")

    def has_module_permission(self, request) -> bool:
        return self._may_read(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_read(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_read(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def get_ordering(self, request):
        # Open first, then answered, then closed; newest first within each.
        rank = Case(
            When(status=Handoff.OPEN, then=Value(0)),
            When(status=Handoff.ANSWERED, then=Value(1)),
            default=Value(2),
        )
        return [rank.asc(), "-created"]

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        if request.user.is_superuser:
            fields.insert(1, "shop")
        return fields

    @admin.display(description="left", ordering="created")
    def left(self, obj: Handoff) -> str:
        return obj.created.strftime("%Y-%m-%d %H:%M")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Handoff) -> str:
        return format_html(
            '<span class="status status-{}">{}</span>', obj.status, obj.get_status_display()
        )

    @admin.display(description="shop", ordering="conversation__shop__name")
    def shop(self, obj: Handoff) -> str:
        return obj.conversation.shop.name

    @admin.display(description="question")
    def question(self, obj: Handoff) -> str:
        return notify.one_line(obj.note, 80)

    @admin.display(description="reply to")
    def contact(self, obj: Handoff) -> str:
        return obj.email or f"phone {obj.phone}"

    @admin.display(description="you were emailed")
    def owner_emailed(self, obj: Handoff) -> str:
        if obj.notified:
            return obj.notified.strftime("%Y-%m-%d %H:%M")
        if obj.notify_error:
            return format_html(
                '<strong title="{}">failed, {} attempt(s)</strong>',
                obj.notify_error,
                obj.notify_attempts,
            )
        return "sending…"

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Customer requests"}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        handoff = self.get_object(request, unquote(object_id))  # another shop's: 404
        if not self.has_view_permission(request, handoff):
            raise PermissionDenied
        return owner_requests.request_page(request, self, handoff)

    def get_urls(self):
        live = self.admin_site.admin_view(self.live_view)
        return [path("<int:object_id>/live/", live, name="widget_handoff_live")] + (
            super().get_urls()
        )

    def live_view(self, request, object_id: int):
        handoff = self.get_object(request, str(object_id))  # another shop's: 404
        if not self.has_view_permission(request, handoff):
            raise PermissionDenied
        return owner_requests.live(request, self, handoff)

    @admin.action(description="Close the selected requests", permissions=["change"])
    def close_requests(self, request, queryset) -> None:
        closed = queryset.exclude(status=Handoff.CLOSED).update(status=Handoff.CLOSED)
        self.message_user(request, f"{closed} request(s) closed.")

    @admin.action(description="Email the owners again (unsent only)", permissions=["change"])
    def email_owners_again(self, request, queryset) -> None:
        ids = list(queryset.filter(notified__isnull=True).values_list("pk", flat=True))
        sent = sum(notify.notify_owner(pk, force=True) for pk in ids)
        self.message_user(request, f"{sent} of {len(ids)} unsent email(s) sent now.")
