""" "Did you mean" end to end: an unsure question gets suggestions, a click is answered from the
chosen entry and records the customer's wording, the owner accepts it in the admin and the same
question is then answered confidently; a thumbs-down takes the pairing off the owner's list.

Everything is real: the consumer on the ASGI application, the PostgreSQL test database, the
embedding model, the admin through Django's test client. No API key, so answers are FAQ or
fallback.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as db
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from faq.models import FAQEntry, FAQVector, Shop
from tests.fake_anthropic import Scenario
from tests.support import Chat, chat_from, make_demo_shop, make_owner
from widget.models import CustomerWording, Message

pytestmark = pytest.mark.django_db(transaction=True)

# Unsure on the demo shop (below its bar), yet plainly about the refunds entry.
UNSURE = "I want my money back"
REFUNDS = "What if I'm not happy with my order?"


@pytest.fixture(autouse=True)
def setup(chat_without_claude):
    yield
    connections.close_all()


@pytest.fixture
async def close_thread_connections():
    yield
    await sync_to_async(connections.close_all)()


def faq_page_link(shop: Shop, entry: FAQEntry) -> str:
    """The source link of an answer (relative: these tests send no Host header)."""
    return f"/faq/{shop.slug}/#faq-{entry.pk}"


async def click(chat: Chat, entry: int, text: str, ask_id: str | None = None) -> dict:
    """Send a "did you mean" click; return the answer or error frame (deltas skipped)."""
    ask_id = ask_id or uuid.uuid4().hex
    await chat.send({"type": "ask", "id": ask_id, "text": text, "entry": entry})
    while (frame := await chat.recv())["type"] == "delta":
        assert frame["id"] == ask_id, frame
    assert frame["id"] == ask_id and frame["type"] in ("answer", "error"), frame
    return frame


async def unsure_then_click(chat: Chat, refunds: FAQEntry) -> tuple[dict, dict]:
    """On a new chat, the unsure question, then a click on the refunds entry it suggests: the
    unsure question's answer frame and the click's."""
    await chat.ready()
    _, unsure = await chat.ask(UNSURE)
    return unsure, await click(chat, refunds.pk, REFUNDS)


def owner_client(shop: Shop) -> Client:
    client = Client()
    client.force_login(make_owner(shop))
    return client


async def test_unsure_question_gets_suggestions_and_a_click_answers_and_records_the_wording(
    demo_shop, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        _, unsure = await chat.ask(UNSURE, "q1")
        assert unsure["mode"] == "fallback"
        assert unsure["contact"] == demo_shop.contact()
        assert 1 <= len(unsure["suggestions"]) <= 3
        assert {"id": refunds.pk, "question": REFUNDS} in unsure["suggestions"]

        answer = await click(chat, refunds.pk, REFUNDS, "q2")
        # Re-sending the click (a reconnect) returns the stored answer and counts nothing twice.
        again = await click(chat, refunds.pk, REFUNDS, "q2")
        # An off-topic question gets no suggestions at all.
        _, off_topic = await chat.ask("Can you fix my car's brakes?")

    assert answer["type"] == "answer" and answer["mode"] == "faq"
    assert answer["text"] == refunds.answer
    assert answer["sources"] == [
        {"id": refunds.pk, "question": REFUNDS, "url": faq_page_link(demo_shop, refunds)}
    ]
    assert answer["suggestions"] == []
    assert again == answer
    assert off_topic["mode"] == "fallback" and off_topic["suggestions"] == []

    question, reply, click_question, click_reply = (
        await db(list)(Message.objects.filter(conversation_id=ready["conversation"]).order_by("id"))
    )[:4]
    assert reply.suggestions == unsure["suggestions"] and reply.mode == "fallback"
    assert (click_question.entry_id, click_question.suggested_for_id) == (refunds.pk, question.pk)
    assert (click_reply.mode, click_reply.confident, click_reply.score) == ("faq", True, None)
    wording = await CustomerWording.objects.aget(entry=refunds)
    assert (wording.text, wording.count, wording.status) == (UNSURE, 1, CustomerWording.NEW)

    # The owner's transcript shows what was offered and what was chosen for what.
    def transcript() -> str:
        client = owner_client(demo_shop)
        url = reverse("admin:widget_conversation_change", args=[ready["conversation"]])
        return client.get(url).content.decode().replace("&#x27;", "'")

    page = await sync_to_async(transcript)()
    assert f"Did you mean: {REFUNDS}" in page
    assert f"Chosen under “Did you mean” for “{UNSURE}”" in page

    # History keeps the suggestions, so a reload shows the buttons again.
    async with Chat(demo_shop.public_key, f"conversation={ready['conversation']}") as chat:
        history = (await chat.ready())["history"]
    assert history[1]["suggestions"] == unsure["suggestions"]


async def test_a_wording_counts_customers_not_clicks(demo_shop, close_thread_connections):
    """Issue 28: one client clicking the same suggestion again and again, in one conversation
    or in fresh ones, counted each click, so one person could make a wording look popular to
    the owner. Now a conversation counts it once, and so does a client address across its
    conversations; another customer counts."""
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    key = demo_shop.public_key

    async def count() -> int:
        return (await CustomerWording.objects.aget(entry=refunds)).count

    async with chat_from(key, "192.0.2.40") as chat:
        await unsure_then_click(chat, refunds)
        for _ in range(9):
            assert (await click(chat, refunds.pk, REFUNDS))["mode"] == "faq"
        _, again = await chat.ask(UNSURE)  # the same wording asked again, then clicked
        assert {"id": refunds.pk, "question": REFUNDS} in again["suggestions"]
        await click(chat, refunds.pk, REFUNDS)
    assert await count() == 1
    for _ in range(2):  # fresh conversations from the same address
        async with chat_from(key, "192.0.2.40") as chat:
            await unsure_then_click(chat, refunds)
    assert await count() == 1
    async with chat_from(key, "198.51.100.7") as chat:  # another customer
        await unsure_then_click(chat, refunds)
    async with chat_from(key, None) as chat:  # an unknown address: its conversation counts
        await unsure_then_click(chat, refunds)
    assert await count() == 3
    clicks = await Message.objects.filter(entry=refunds, suggested_for__isnull=False).acount()
    assert clicks == 15  # every click is still answered and kept in its transcript


async def test_click_on_another_shops_or_an_unpublished_entry_is_refused(
    demo_shop, demo_texts_embedded, close_thread_connections
):
    other = await db(make_demo_shop)(demo_texts_embedded, name="Other shop")
    theirs = await FAQEntry.objects.aget(shop=other, question=REFUNDS)
    hidden = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    hidden.published = False
    await hidden.asave(update_fields=["published"])

    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        refused = [
            await click(chat, theirs.pk, REFUNDS),
            await click(chat, hidden.pk, REFUNDS),
            await click(chat, 10**9, REFUNDS),
            await click(chat, 2**63, REFUNDS),  # past bigint: refused the same way, no 500
        ]
        await chat.send({"type": "ask", "id": "bad", "text": REFUNDS, "entry": "7"})
        bad = await chat.recv()

    for frame in refused:
        assert frame["type"] == "error" and frame["code"] == "unknown_entry", frame
        assert frame["message"].endswith(".")
    assert (bad["type"], bad["code"]) == ("error", "bad_request")
    # Nothing stored, nothing learned.
    assert await Message.objects.filter(conversation_id=ready["conversation"]).acount() == 0
    assert await CustomerWording.objects.acount() == 0


async def test_owner_accepts_the_wording_and_the_same_question_is_then_answered(
    demo_shop, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    async with Chat(demo_shop.public_key) as chat:
        unsure, _ = await unsure_then_click(chat, refunds)
    assert unsure["mode"] == "fallback"
    wording = await CustomerWording.objects.aget(entry=refunds)

    def owner_accepts() -> None:
        client = owner_client(demo_shop)
        page = client.get(reverse("admin:faq_faqentry_change", args=[refunds.pk]))
        assert page.status_code == 200
        assert UNSURE in page.content.decode()
        url = reverse("admin:faq_faqentry_wording", args=[refunds.pk, wording.pk])
        assert url in page.content.decode()
        response = client.post(url, {"decision": "accept"})
        assert response.status_code == 302
        # Accepted wordings leave the list.
        page = client.get(reverse("admin:faq_faqentry_change", args=[refunds.pk]))
        assert list(page.context["customer_wordings"]) == []

    await sync_to_async(owner_accepts)()

    await refunds.arefresh_from_db()
    assert UNSURE in refunds.alternative_list
    await wording.arefresh_from_db()
    assert wording.status == CustomerWording.ACCEPTED
    # Re-embedded like any other phrasing, after the commit.
    assert await FAQVector.objects.filter(entry=refunds, text=UNSURE).aexists()

    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask(UNSURE)
    assert answer["mode"] == "faq"
    assert answer["text"] == refunds.answer
    assert answer["sources"] == [
        {"id": refunds.pk, "question": REFUNDS, "url": faq_page_link(demo_shop, refunds)}
    ]


async def test_owner_of_another_shop_cannot_decide_and_dismiss_keeps_the_phrasings(
    demo_shop, demo_texts_embedded, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    wording = await db(CustomerWording.record)(refunds, UNSURE)
    other = await db(make_demo_shop)(demo_texts_embedded, name="Other shop")

    def decide() -> None:
        url = reverse("admin:faq_faqentry_wording", args=[refunds.pk, wording.pk])
        stranger = owner_client(other)
        assert stranger.post(url, {"decision": "accept"}).status_code == 404
        owner = owner_client(demo_shop)
        assert owner.get(url).status_code == 400
        assert owner.post(url, {"decision": "dismiss"}).status_code == 302

    await sync_to_async(decide)()
    await wording.arefresh_from_db()
    await refunds.arefresh_from_db()
    assert wording.status == CustomerWording.DISMISSED
    assert UNSURE not in refunds.alternative_list


async def test_thumbs_down_on_a_clicked_answer_removes_the_pairing(
    demo_shop, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    async with Chat(demo_shop.public_key) as chat:
        _, answer = await unsure_then_click(chat, refunds)
        await chat.send({"type": "feedback", "message": answer["message"], "value": "down"})
        saved = await chat.recv()
    assert saved == {"type": "feedback_saved", "message": answer["message"]}

    wording = await CustomerWording.objects.aget(entry=refunds)
    assert wording.status == CustomerWording.DISLIKED
    reply = await Message.objects.aget(pk=answer["message"])
    assert reply.feedback == "down"

    def listed() -> str:
        client = owner_client(demo_shop)
        return client.get(reverse("admin:faq_faqentry_change", args=[refunds.pk])).content.decode()

    assert UNSURE not in await sync_to_async(listed)()


def test_demo_answers_read_right_when_quoted_for_another_question():
    """An FAQ answer is given word for word to whatever question it matched: "Yes, we deliver to
    Princeton!" would be wrong for every other town, "We do!" for every other product."""
    from faq.demo import entry_fields

    openers = ("yes", "no", "we do", "of course", "absolutely", "sure", "we're sorry")
    for fields in entry_fields():
        first = fields["answer"].split(".")[0].split("!")[0].lower()
        assert not first.startswith(openers), fields["question"]


async def test_a_town_outside_the_area_never_hears_yes(demo_shop, close_thread_connections):
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("Do you deliver to New York City?")
    assert "Yes" not in answer["text"] and "Princeton!" not in answer["text"]


async def test_unanswered_page_offers_the_entry_a_group_mostly_clicked(
    demo_shop, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    for _ in range(2):  # two customers, the same unsure wording, both click the refunds entry
        async with Chat(demo_shop.public_key) as chat:
            unsure, _ = await unsure_then_click(chat, refunds)
        assert unsure["mode"] == "fallback"

    def owner_adds_the_wordings() -> None:
        client = owner_client(demo_shop)
        page = client.get(reverse("admin:widget_unanswered", args=[demo_shop.pk]))
        # The wordings waiting on entry pages are one click away too.
        assert page.context["wordings_waiting"] == 1
        waiting = client.get(page.context["wordings_url"])
        assert [e.pk for e in waiting.context["cl"].result_list] == [refunds.pk]
        [group] = [g for g in page.context["groups"] if g.typical.text == UNSURE]
        assert group.count == 2 and group.led_to == refunds
        html = page.content.decode()
        assert f"Add the ticked as wordings of “{REFUNDS}”".replace("'", "&#x27;") in html
        chosen = client.post(
            reverse("admin:widget_unanswered", args=[demo_shop.pk]),
            {"action": "existing", "entry": refunds.pk, "use": group.message_ids},
        )
        link = chosen["Location"]
        assert link.endswith(f"&entry={refunds.pk}#existing")

        form_page = client.get(link.split("#")[0])
        form = form_page.context["existing_form"]
        assert form.initial["entry"] == refunds
        response = client.post(
            form_page.request["PATH_INFO"],
            {
                "action": "existing",
                "messages": form_page.context["message_ids"],
                "old-entry": refunds.pk,
                "old-alternatives": form.initial["alternatives"],
            },
        )
        assert response.status_code == 302
        # The entry has the wording now: nothing left to decide on its page.
        entry_page = client.get(reverse("admin:faq_faqentry_change", args=[refunds.pk]))
        assert entry_page.context["customer_wordings"] == []

    await sync_to_async(owner_adds_the_wordings)()
    await refunds.arefresh_from_db()
    assert UNSURE in refunds.alternative_list
    resolved = Message.objects.filter(resolved_by=refunds).values_list("text", flat=True)
    assert [t async for t in resolved] == [UNSURE, UNSURE]


async def test_with_claude_the_candidates_go_to_claude_and_a_click_is_answered_citing_it(
    demo_shop, fake, close_thread_connections
):
    refunds = await FAQEntry.objects.aget(shop=demo_shop, question=REFUNDS)
    # Claude declines (cites nothing): the candidates are still offered as buttons.
    fake.script(
        Scenario(text_chunks=["I'm not sure; please contact us."], cite=[]),
        Scenario(text_chunks=["Send us a photo within 24 hours for a refund."], cite=[(0, "x")]),
    )
    async with Chat(demo_shop.public_key) as chat:
        unsure, answer = await unsure_then_click(chat, refunds)

    declined, clicked = fake.requests
    assert f"faq:{refunds.pk}" in [r["source"] for r in declined.search_results]
    assert unsure["mode"] == "llm" and unsure["sources"] == []
    assert {"id": refunds.pk, "question": REFUNDS} in unsure["suggestions"]

    # The click: Claude sees that entry only, and the answer cites it.
    assert [r["source"] for r in clicked.search_results] == [f"faq:{refunds.pk}"]
    assert answer["mode"] == "llm"
    assert answer["text"] == "Send us a photo within 24 hours for a refund."
    assert answer["sources"] == [
        {"id": refunds.pk, "question": REFUNDS, "url": faq_page_link(demo_shop, refunds)}
    ]
    assert await CustomerWording.objects.filter(entry=refunds, text=UNSURE).aexists()


def test_purge_deletes_customer_wordings_not_seen_since_the_cutoff_unless_accepted(demo_shop):
    entries = list(FAQEntry.objects.filter(shop=demo_shop)[:3])
    old, accepted, recent = (
        CustomerWording.record(entry, "give me my money back") for entry in entries
    )
    long_ago = timezone.now() - timedelta(days=200)
    CustomerWording.objects.filter(pk__in=[old.pk, accepted.pk]).update(last_seen=long_ago)
    accepted.accept()

    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    assert "and 1 customer wordings not clicked within them" in out.getvalue()
    assert set(CustomerWording.objects.values_list("pk", flat=True)) == {accepted.pk, recent.pk}
