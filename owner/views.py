"""
The owner's pages inside the admin, so they inherit its login and look: a conversation's
transcript (ConversationAdmin.change_view), and the per-shop pages that hang off the shop's admin
(owner/shops.py, ShopAdmin.get_urls): the dashboard, the unanswered questions, and the form that
turns a group of unanswered questions into an FAQ entry. `page_context` is where every owner
page's context starts (they all extend owner/base.html).

ShopAdmin checks the permission and finds the shop before calling a view here, through its own
scoped get_object: a shop the user does not own is a 404, like one that does not exist.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.options import Options
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import ngettext

from faq.models import FAQEntry, Shop, split_lines
from faq.owners import shops_for
from owner import charts, unanswered
from owner.dashboard import DEFAULT_DAYS, shop_stats
from widget.models import Conversation, CustomerWording, Message

FAQ_COLOUR, LLM_COLOUR, FALLBACK_COLOUR = "#2f6f4f", "#6b5fb5", "#c9731d"
DASHBOARD_GROUPS = 5
# Phrasings pre-filled as alternatives: enough to teach the bot, few enough to read.
MAX_PREFILLED_PHRASINGS = 15


def page_context(
    request: HttpRequest,
    model_admin: ModelAdmin,
    title: str,
    *,
    opts: Options | None = None,
    model_crumbs: bool = False,
    **extra,
) -> dict:
    """The context of an owner page: the admin's own (site header, the user's apps), `opts` (the
    model the page belongs to, by default the model admin's) and the title; `model_crumbs` puts
    the model's app and list in the breadcrumbs (owner/base.html)."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": opts or model_admin.opts,
        "title": title,
        "model_crumbs": model_crumbs,
        **extra,
    }


def _context(request: HttpRequest, model_admin: ModelAdmin, title: str, **extra) -> dict:
    """An owner page about the shop's conversations."""
    return page_context(request, model_admin, title, opts=Conversation._meta, **extra)


def entry_url(entry_id: int) -> str | None:
    """The FAQ entry's admin page, if the FAQ admin is installed."""
    try:
        return reverse("admin:faq_faqentry_change", args=[entry_id])
    except NoReverseMatch:
        return None


# --- Previews: what an import found, carried by the page until the owner saves it -------------

PREVIEW_MAX_AGE = 3600  # seconds: PREVIEW_EXPIRED says an hour
PREVIEW_EXPIRED = "This preview is more than an hour old; fetch the page again."


class PreviewRefused(Exception):
    """A preview altered, or signed for another shop: ShopAdmin.shop_page answers 400 with this
    sentence."""


def sign_preview(shop: Shop, salt: str, **data) -> str:
    """`data` signed for this shop's page (its own `salt`), for the page to post back on saving."""
    return signing.dumps({"shop": shop.pk, **data}, salt=salt, compress=True)


def open_preview(payload: str, shop: Shop, salt: str) -> dict | None:
    """What `sign_preview` signed for this shop with `salt`; None when it is older than
    PREVIEW_MAX_AGE (the page says PREVIEW_EXPIRED). Raises PreviewRefused for a payload altered
    or signed for another shop."""
    try:
        data = signing.loads(payload, salt=salt, max_age=PREVIEW_MAX_AGE)
    except signing.SignatureExpired:
        return None
    except signing.BadSignature:
        raise PreviewRefused("The preview was altered; fetch the page again.") from None
    if data["shop"] != shop.pk:
        raise PreviewRefused("This preview belongs to another shop.")
    return data


# --- Shops, transcript ----------------------------------------------------------------------


def shops(request: HttpRequest, model_admin) -> HttpResponse:
    """Which shop's dashboard? Straight to it when the user has only one."""
    owned = list(shops_for(request.user))
    if len(owned) == 1:
        return HttpResponseRedirect(reverse("admin:widget_dashboard", args=[owned[0].pk]))
    context = _context(request, model_admin, title="Shop dashboards", shops=owned)
    return TemplateResponse(request, "owner/shops.html", context)


def transcript_turns(conversation: Conversation) -> list[dict]:
    """The conversation's messages for widget/_turns.html, each with its sources' admin links."""
    shop_entries = set(
        FAQEntry.objects.filter(shop=conversation.shop_id).values_list("pk", flat=True)
    )
    turns = []
    for message in conversation.messages.select_related("resolved_by", "suggested_for"):
        sources = []
        for source in message.sources or []:
            if not isinstance(source, dict):
                continue
            try:
                entry_id = int(source.get("id"))
            except (TypeError, ValueError):
                entry_id = None
            url = entry_url(entry_id) if entry_id in shop_entries else None
            sources.append({"question": source.get("question", ""), "url": url})
        resolved = entry_url(message.resolved_by_id) if message.resolved_by_id else None
        turns.append({"message": message, "sources": sources, "resolved_url": resolved})
    return turns


def conversation_page(conversation: Conversation, live_url: str) -> dict:
    """What a page about one conversation (owner/conversation_base.html: its transcript, a
    customer request's page) needs of it: the conversation, its turns, and for the live panel
    (owner/_live.html) the panel's `live_url`, the last message (where its polling starts) and
    the take-over's idle minutes."""
    last_message = conversation.messages.order_by("-id").values_list("id", flat=True).first()
    return {
        "conversation": conversation,
        "turns": transcript_turns(conversation),
        "live_url": live_url,
        "last_message": last_message or 0,
        "idle_minutes": settings.HANDOFF_TAKEOVER_IDLE_MINUTES,
    }


def transcript(request: HttpRequest, model_admin, conversation: Conversation) -> HttpResponse:
    """Every question with its answer: how it was answered, from which entries, and feedback."""
    requests = list(conversation.handoffs.all())
    can_delete = model_admin.has_delete_permission(request, conversation)
    # The live panel: take over any conversation, request or not.
    live_url = reverse("admin:widget_conversation_live", args=[conversation.pk])
    context = _context(
        request,
        model_admin,
        title=f"Conversation of {conversation.started:%Y-%m-%d %H:%M}",
        model_crumbs=True,
        **conversation_page(conversation, live_url),
        requests=requests,
        can_delete=can_delete,
        show_shop=request.user.is_superuser,
    )
    return TemplateResponse(request, "owner/transcript.html", context)


# --- Dashboard --------------------------------------------------------------------------------


def dashboard(request: HttpRequest, model_admin, shop: Shop) -> HttpResponse:
    stats = shop_stats(shop, days=DEFAULT_DAYS)
    traffic = charts.bar_chart(
        [d.day.strftime("%b %d").replace(" 0", " ") for d in stats.days],
        [
            charts.Series(
                "Conversations", charts.CONVERSATIONS_COLOUR, [d.conversations for d in stats.days]
            ),
            charts.Series("Questions", charts.QUESTIONS_COLOUR, [d.questions for d in stats.days]),
        ],  # fmt: skip
        f"Conversations and questions per day, last {DEFAULT_DAYS} days",
    )
    answers = charts.share_bar(
        [
            charts.Segment("FAQ answer", stats.by_mode.get(Message.FAQ, 0), FAQ_COLOUR),
            charts.Segment("Claude", stats.by_mode.get(Message.LLM, 0), LLM_COLOUR),
            charts.Segment("Fallback", stats.by_mode.get(Message.FALLBACK, 0), FALLBACK_COLOUR),
        ],
        "How questions were answered",
    )
    groups = unanswered.groups(shop)
    cited = [{"item": c, "url": entry_url(c.entry_id) if c.exists else None} for c in stats.cited]
    context = _context(
        request,
        model_admin,
        title=f"Dashboard: {shop.name}",
        shop=shop,
        stats=stats,
        days=DEFAULT_DAYS,
        traffic_chart=traffic,
        answers_chart=answers,
        cited=cited,
        groups=groups[:DASHBOARD_GROUPS],
        group_count=len(groups),
        question_count=sum(g.count for g in groups),
        conversations_url=reverse("admin:widget_conversation_changelist")
        + f"?shop__id__exact={shop.pk}",
    )
    return TemplateResponse(request, "owner/dashboard.html", context)


# --- Unanswered questions ---------------------------------------------------------------------


def unanswered_list(request: HttpRequest, model_admin, shop: Shop) -> HttpResponse:
    """The groups, each question with the entry the bot offered and a tick box. The owner
    dismisses noise (one question, or the ticked ones) or turns the ticked questions into an FAQ
    entry or phrasings of an existing one (unanswered_entry, with `use`)."""
    if request.method == "POST":
        ticked = [int(pk) for pk in request.POST.getlist("use") if pk.isdigit()]
        single = request.POST.get("dismiss", "")
        action = request.POST.get("action", "")
        if single.isdigit() or action == "dismiss":
            n = unanswered.dismiss(shop, [int(single)] if single.isdigit() else ticked)
            messages.success(
                request,
                ngettext(
                    "%(n)d question dismissed as noise.", "%(n)d questions dismissed as noise.", n
                )
                % {"n": n},
            )
            return HttpResponseRedirect(request.path)
        if action in ("create", "existing") and ticked:
            query = {"question": ticked[0], "use": ",".join(map(str, ticked))}
            entry = request.POST.get("entry", "")
            if action == "existing" and entry.isdigit():
                query["entry"] = entry
            url = reverse("admin:widget_unanswered_entry", args=[shop.pk])
            anchor = "#existing" if action == "existing" else ""
            return HttpResponseRedirect(f"{url}?{urlencode(query)}{anchor}")
        messages.warning(request, "Tick at least one question first.")
        return HttpResponseRedirect(request.path)
    groups = unanswered.groups(shop)
    unanswered.clicked_entries(groups)
    waiting = CustomerWording.objects.filter(entry__shop=shop, status=CustomerWording.NEW)
    context = _context(
        request,
        model_admin,
        title=f"Unanswered questions: {shop.name}",
        shop=shop,
        groups=groups,
        question_count=sum(g.count for g in groups),
        can_add=request.user.has_perm("faq.add_faqentry"),
        can_change=request.user.has_perm("faq.change_faqentry"),
        wordings_waiting=waiting.count(),
        wordings_url=reverse("admin:faq_faqentry_changelist")
        + f"?shop__id__exact={shop.pk}&wordings=waiting",
    )
    return TemplateResponse(request, "owner/unanswered.html", context)


class NewEntryForm(forms.ModelForm):
    class Meta:
        model = FAQEntry
        fields = ["question", "answer", "alternatives", "category", "published"]
        widgets = {
            "question": forms.TextInput(attrs={"size": 80}),
            "answer": forms.Textarea(attrs={"rows": 5, "cols": 80}),
            "alternatives": forms.Textarea(attrs={"rows": 6, "cols": 80}),
            "category": forms.TextInput(attrs={"list": "shop-categories"}),
        }


class ExistingEntryForm(forms.Form):
    entry = forms.ModelChoiceField(
        queryset=FAQEntry.objects.none(),
        label="Entry",
        help_text="An entry that already answers this.",
    )
    alternatives = forms.CharField(
        label="Phrasings to add",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="Added to the entry's alternative phrasings, one per line.",
    )

    def __init__(self, *args, shop: Shop, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entry"].queryset = shop.entries.order_by("category", "question")


def parse_ids(value: str) -> list[int]:
    ids = []
    for part in value.split(","):
        part = part.strip()
        if part.isdigit():
            ids.append(int(part))
    return ids[:5000]


def unanswered_entry(request: HttpRequest, model_admin, shop: Shop) -> HttpResponse:
    """A group of unanswered questions -> a new FAQ entry (or more phrasings for an existing one).

    GET ?question=<message id> finds the group holding that question now and pre-fills the
    form with its most typical wording and the others as alternative phrasings. The POST saves
    the entry through the ORM (so it is embedded like any other, faq/signals.py) and marks the
    group's questions as resolved by it, which takes the group off the open list.
    """
    back = reverse("admin:widget_unanswered", args=[shop.pk])
    can_add = request.user.has_perm("faq.add_faqentry")
    can_change = request.user.has_perm("faq.change_faqentry")
    if not (can_add or can_change):
        raise PermissionDenied
    led_to = None

    if request.method == "POST":
        group_ids = parse_ids(request.POST.get("messages", ""))
        questions = list(
            Message.objects.unanswered(shop).filter(pk__in=group_ids).order_by("-created")
        )
        new_form = NewEntryForm(request.POST, prefix="new")
        existing_form = ExistingEntryForm(request.POST, prefix="old", shop=shop)
        if request.POST.get("action") == "existing":
            if not can_change:
                raise PermissionDenied
            new_form = _new_form(questions)
            if existing_form.is_valid():
                entry = existing_form.cleaned_data["entry"]
                with transaction.atomic():
                    entry = FAQEntry.objects.select_for_update().get(pk=entry.pk)
                    wanted = split_lines(existing_form.cleaned_data["alternatives"])
                    added = entry.add_phrasings(wanted)
                    resolved = unanswered.resolve(shop, group_ids, entry)
                messages.success(
                    request,
                    ngettext(
                        "Added %(n)d phrasing to “%(entry)s”.",
                        "Added %(n)d phrasings to “%(entry)s”.",
                        len(added),
                    )
                    % {"n": len(added), "entry": entry.question}
                    + " "
                    + marked_answered(resolved),
                )
                return HttpResponseRedirect(back)
        else:
            if not can_add:
                raise PermissionDenied
            existing_form = _existing_form(questions, shop)
            if new_form.is_valid():
                with transaction.atomic():
                    entry = new_form.save(commit=False)
                    entry.shop = shop
                    entry.save()
                    resolved = unanswered.resolve(shop, group_ids, entry)
                messages.success(
                    request,
                    f"Created the FAQ entry “{entry.question}”; {marked_answered(resolved)} "
                    "The bot uses it from now on.",
                )
                # One rule for both buttons: back to the list, where the next group waits.
                return HttpResponseRedirect(back)
    else:
        try:
            wanted = int(request.GET.get("question", ""))
        except ValueError:
            wanted = None
        group = unanswered.find_group(shop, wanted) if wanted is not None else None
        if group is None:
            messages.info(request, "That question has already been answered or is not open.")
            return HttpResponseRedirect(back)
        # The questions the owner ticked on the list (`use`), else the whole group.
        use = set(parse_ids(request.GET.get("use", "")))
        if use and use & set(group.message_ids):
            chosen = [q for q in group.questions if q.pk in use]
            typical = group.typical if group.typical in chosen else chosen[0]
            group = unanswered.Group(questions=chosen, typical=typical)
        questions = group.questions
        new_form = _new_form(questions, group)
        # From "Add as wordings of entry X": that entry (of this shop) chosen already.
        wanted_entry = request.GET.get("entry", "")
        if wanted_entry.isdigit():
            led_to = shop.entries.filter(pk=int(wanted_entry)).first()
        existing_form = _existing_form(questions, shop, group, led_to)

    categories = shop.entries.exclude(category="").values_list("category", flat=True).distinct()
    context = _context(
        request,
        model_admin,
        title="New FAQ entry from unanswered questions",
        shop=shop,
        questions=questions,
        message_ids=",".join(str(q.pk) for q in questions),
        new_form=new_form,
        existing_form=existing_form,
        categories=sorted(set(categories)),
        can_add=can_add,
        can_change=can_change,
        back_url=back,
        led_to=led_to,
    )
    return TemplateResponse(request, "owner/unanswered_entry.html", context)


def marked_answered(n: int) -> str:
    return ngettext("%(n)d question marked answered.", "%(n)d questions marked answered.", n) % {
        "n": n
    }


def _phrasings(questions: list[Message], group: unanswered.Group | None) -> tuple[str, list[str]]:
    if group is not None:
        return _as_question(group.typical.text), group.phrasings[:MAX_PREFILLED_PHRASINGS]
    if not questions:
        return "", []
    rebuilt = unanswered.Group(questions=questions, typical=questions[0])
    return _as_question(questions[0].text), rebuilt.phrasings[:MAX_PREFILLED_PHRASINGS]


def _new_form(questions: list[Message], group: unanswered.Group | None = None) -> NewEntryForm:
    question, others = _phrasings(questions, group)
    return NewEntryForm(
        prefix="new",
        initial={
            "question": question,
            "alternatives": "\n".join(others),
            "published": True,
        },
    )


def _existing_form(
    questions: list[Message],
    shop: Shop,
    group: unanswered.Group | None = None,
    entry: FAQEntry | None = None,
) -> ExistingEntryForm:
    question, others = _phrasings(questions, group)
    lines = [question, *others] if question else others
    initial = {"alternatives": "\n".join(lines), "entry": entry}
    return ExistingEntryForm(prefix="old", shop=shop, initial=initial)


def _as_question(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] if text else text
