"""
Conversations in the admin, read-only: the list with its filters and CSV export, and the
transcript page (owner/views.py). The per-shop owner pages (dashboard, unanswered questions) hang
off the shop's admin, owner/shops.py's ShopAdmin.

Everything is scoped by shop (faq/owners.py): an owner sees only their shops' conversations, and
another shop's conversation is a 404. Nobody edits a transcript; only a superuser may delete one
(retention is `manage.py purge_conversations`).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import HttpResponse
from django.urls import path
from django.utils.html import format_html

from faq.owners import ShopScopedAdmin, shops_for
from lib import csvcells
from owner import handoffs
from owner import views as owner_views
from widget.models import Conversation, Message


def _has_message(**filters) -> Exists:
    return Exists(Message.objects.filter(conversation=OuterRef("pk"), **filters))


class AnsweredByFilter(admin.SimpleListFilter):
    title = "answered by"
    parameter_name = "mode"

    def lookups(self, request, model_admin):
        return Message.Mode.choices

    def queryset(self, request, queryset):
        if self.value() in Message.Mode.values:
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
    change_list_template = "owner/conversation_change_list.html"
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
        labels = dict(Message.Mode.choices)
        return ", ".join(labels.get(m, m) for m in sorted(obj.modes)) or "-"

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
        action = request.POST.get("action")
        if request.method == "POST" and action in ("takeover", "handback"):
            # Whoever may read a shop's conversations may talk with its customers (as on a
            # customer request's page): any live conversation, request or not.
            return handoffs.take_over_or_hand_back(request, conversation, action)
        return owner_views.transcript(request, self, conversation)

    def get_urls(self):
        live = self.admin_site.admin_view(self.live_view)
        return [path("<uuid:object_id>/live/", live, name="widget_conversation_live")] + (
            super().get_urls()
        )

    def live_view(self, request, object_id):
        conversation = self.get_object(request, str(object_id))  # another shop's: 404
        if conversation is None or not self.has_view_permission(request, conversation):
            raise PermissionDenied
        return handoffs.live_panel(request, conversation, may_send=True)
