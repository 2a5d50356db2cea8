"""
The hand-offs in the admin, which calls them "Customer requests" (HandoffAdmin), and a hand-off's
page: the request, the owner's email's state, the conversation, the live panel (take-over, hand
back, messages) and the reply form.

The reply is saved as a `shop` message of the conversation first (Handoff.reply); then it reaches
the customer's open chat (the conversation's channel-layer group, any server process) and its
email to the customer is queued for the worker. The page says of each reply's email whether it is
queued, sent, retrying or failed (with the mail server's words), and a failed one can be queued
again: the reply is in the chat either way. "Email the owners again" queues the owners' email
too: no owner's click waits on a mail server.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import BigIntegerField, Case, Exists, OuterRef, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext

from faq.owners import ShopScopedAdmin
from lib import jobs
from owner import erasure
from owner.views import conversation_page, page_context
from widget import handoff_email
from widget.models import Conversation, Handoff, InboundEmail, Message


class ReplyForm(forms.Form):
    text = forms.CharField(
        label="Your reply",
        max_length=handoff_email.MAX_REPLY_CHARS,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        strip=True,
    )


def answer(handoff: Handoff, text: str) -> tuple[str, str]:
    """Save and deliver the owner's reply; returns (level, sentence) for the owner."""
    _, error = handoff_email.answer(handoff, text)  # the same path as a reply by email
    return delivered(handoff, error)


def post_held(handoff: Handoff, held: InboundEmail) -> tuple[str, str]:
    """Post an email reply that was held (its sender is not an owner), as the owner decided."""
    message, error = handoff_email.answer(handoff, held.text)
    held.status, held.posted = InboundEmail.POSTED, message
    held.save(update_fields=["status", "posted"])
    return delivered(handoff, error)


def delivered(handoff: Handoff, error: str) -> tuple[str, str]:
    """What the owner is told once a reply is posted: where it goes (the worker sends its email
    within seconds; "Your replies by email" on the page says when it has gone)."""
    if not handoff.email:
        return "warning", gettext("Reply saved and shown in the chat. %(why)s") % {"why": error}
    return (
        "success",
        gettext(
            "Reply saved and shown in the chat; it is being emailed to %(email)s (below, this "
            "page says when it has gone)."
        )
        % {"email": handoff.email},
    )


def reply_emails(handoff: Handoff) -> list[tuple[Message, str]]:
    """The owner's replies to this request that were to be emailed, each with its email's state
    (handoff_email.reply_email_state), oldest first."""
    replies = handoff.conversation.messages.filter(
        role=Message.SHOP, email_queued__isnull=False
    ).order_by("id")
    return [(reply, handoff_email.reply_email_state(reply)) for reply in replies]


def request_page(request: HttpRequest, model_admin, handoff: Handoff) -> HttpResponse:
    can_change = model_admin.has_change_permission(request, handoff)
    form = ReplyForm()
    if request.method == "POST" and can_change:
        action = request.POST.get("action")
        if action == "reply":
            form = ReplyForm(request.POST)
            if form.is_valid():
                level, sentence = answer(handoff, form.cleaned_data["text"])
                getattr(messages, level)(request, sentence)
                return HttpResponseRedirect(request.path)
        elif action == "close":
            handoff.close()
            messages.success(request, gettext("Request closed."))
            return HttpResponseRedirect(request.path)
        elif action == "reopen":
            handoff.reopen()
            return HttpResponseRedirect(request.path)
        elif action in ("takeover", "handback"):
            return take_over_or_hand_back(request, handoff.conversation, action)
        elif action in ("post_held", "dismiss_held"):
            held = handoff.inbound_emails.filter(
                pk=request.POST.get("inbound"), status=InboundEmail.HELD
            ).first()
            if held is None:
                messages.warning(request, gettext("That email is no longer held."))
            elif action == "dismiss_held":
                held.status = InboundEmail.DISMISSED
                held.save(update_fields=["status"])
                messages.success(
                    request,
                    gettext("The email from %(sender)s was dismissed.") % {"sender": held.sender},
                )
            else:
                level, sentence = post_held(handoff, held)
                getattr(messages, level)(request, sentence)
            return HttpResponseRedirect(request.path)
        elif action == "notify":
            if handoff.notified is None:
                handoff_email.notify_owner_later(handoff.pk, force=True)
                messages.success(
                    request,
                    gettext("The email to the owners is on its way."),
                )
            return HttpResponseRedirect(request.path)
        elif action == "email_reply" and handoff.email:
            reply = handoff.conversation.messages.filter(
                pk=request.POST.get("message"), role=Message.SHOP, emailed__isnull=True
            ).first()
            if reply is not None:
                with transaction.atomic():
                    handoff_email.email_customer_later(handoff, reply)
                messages.success(
                    request,
                    gettext(
                        "The reply is being emailed to %(email)s again (below, this page says "
                        "when it has gone)."
                    )
                    % {"email": handoff.email},
                )
            return HttpResponseRedirect(request.path)
    emails = reply_emails(handoff)
    live_url = reverse("admin:widget_handoff_live", args=[handoff.pk])
    context = page_context(
        request,
        model_admin,
        f"Customer request: {handoff_email.one_line(handoff.note, 60)}",
        model_crumbs=True,
        handoff=handoff,
        **conversation_page(handoff.conversation, live_url),
        form=form,
        notify_queued=handoff.notified is None and handoff_email.notify_queued(handoff.pk),
        reply_emails=emails,
        # An email on its way: owner/request.js refreshes its state in place until it has gone.
        emails_pending=any(
            state in (handoff_email.QUEUED, handoff_email.RETRYING) for _, state in emails
        ),
        inbound_emails=handoff.inbound_emails.all(),
        can_change=can_change,
        show_shop=request.user.is_superuser,
    )
    return TemplateResponse(request, "owner/handoff.html", context)


def take_over_or_hand_back(
    request: HttpRequest, conversation: Conversation, action: str
) -> HttpResponse:
    """The live panel's two buttons (owner/_live.html), on a request's page and on any
    conversation's page."""
    if action == "takeover":
        conversation.take_over()
        messages.success(request, gettext("You have taken the chat over: the bot stays silent."))
    else:
        conversation.hand_back()
        messages.success(request, gettext("The bot answers this chat again."))
    return HttpResponseRedirect(request.path)


def live(request: HttpRequest, model_admin, handoff: Handoff) -> JsonResponse:
    """The live panel of the request page (live_panel); a message sent answers the request."""

    def answered() -> None:
        if handoff.status == Handoff.OPEN:
            handoff.status = Handoff.ANSWERED
            handoff.answered = handoff.answered or timezone.now()
            handoff.save(update_fields=["status", "answered"])

    may_send = model_admin.has_change_permission(request, handoff)
    return live_panel(request, handoff.conversation, may_send, answered)


def live_panel(
    request: HttpRequest,
    conversation: Conversation,
    may_send: bool,
    after_send: Callable[[], None] | None = None,
) -> JsonResponse:
    """The live panel (owner/_live.html), polled every 2 s: the conversation's messages after
    `?after=<message id>` and whether the owner has it taken over. A POST with `text` sends a
    message into the customer's chat at once (and keeps a take-over alive)."""
    if request.method == "POST":
        if not may_send:
            raise PermissionDenied
        text = request.POST.get("text", "").strip()
        most = handoff_email.MAX_REPLY_CHARS
        if not text or len(text) > most:
            return JsonResponse(
                {"error": f"Write a message of at most {most} characters."}, status=400
            )
        conversation.say(text)
        if after_send:
            after_send()
        conversation.refresh_from_db()
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    recent = conversation.messages.filter(pk__gt=after).order_by("id")[:100]
    return JsonResponse(
        {
            "messages": [
                {
                    "id": m.pk,
                    "role": m.role,
                    "who": m.get_role_display(),
                    "text": m.text,
                    "time": timezone.localtime(m.created).strftime("%H:%M:%S"),
                }
                for m in recent
            ],
            "person": conversation.person_present,
        }
    )


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
    actions = ["close_requests", "email_owners_again", erasure.forget_customers]

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
        return handoff_email.one_line(obj.note, 80)

    @admin.display(description="reply to")
    def contact(self, obj: Handoff) -> str:
        return obj.email or f"phone {obj.phone}"

    @admin.display(description="emailed")
    def owner_emailed(self, obj: Handoff) -> str:
        if obj.notified:
            return obj.notified.strftime("%Y-%m-%d %H:%M")
        if obj.notify_error:
            return format_html(
                '<strong title="{}">{}, {} attempt(s)</strong>',
                obj.notify_error,
                "retrying" if getattr(obj, "notify_queued", False) else "failed",
                obj.notify_attempts,
            )
        return "queued"

    def get_queryset(self, request):
        # Whether the owners' email is waiting for the worker (queued again, or between tries).
        handoff_id = Cast(KeyTextTransform("handoff_id", "args"), BigIntegerField())
        queued = (
            jobs.waiting("widget.notify_owner")
            .annotate(handoff_id=handoff_id)
            .filter(handoff_id=OuterRef("pk"))
        )
        return super().get_queryset(request).annotate(notify_queued=Exists(queued))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": "Customer requests"}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        handoff = self.get_object(request, unquote(object_id))  # another shop's: 404
        if not self.has_view_permission(request, handoff):
            raise PermissionDenied
        return request_page(request, self, handoff)

    def get_urls(self):
        live = self.admin_site.admin_view(self.live_view)
        return [path("<int:object_id>/live/", live, name="widget_handoff_live")] + (
            super().get_urls()
        )

    def live_view(self, request, object_id: int):
        handoff = self.get_object(request, str(object_id))  # another shop's: 404
        if not self.has_view_permission(request, handoff):
            raise PermissionDenied
        return live(request, self, handoff)

    @admin.action(description="Close the selected requests", permissions=["change"])
    def close_requests(self, request, queryset) -> None:
        closed = queryset.exclude(status=Handoff.CLOSED).update(status=Handoff.CLOSED)
        self.message_user(request, f"{closed} request(s) closed.")

    @admin.action(description="Email the owners again (unsent only)", permissions=["change"])
    def email_owners_again(self, request, queryset) -> None:
        ids = list(queryset.filter(notified__isnull=True).values_list("pk", flat=True))
        with transaction.atomic():
            for pk in ids:
                handoff_email.notify_owner_later(pk, force=True)
        self.message_user(
            request, f"{len(ids)} unsent email(s) queued: this list says when each is sent."
        )
