"""Unanswered questions end to end: customers ask about something the FAQ does not cover, the owner
finds their questions as one group, turns it into an FAQ entry in one go, and the next customer
gets the answer.

Everything is real: the websocket consumer on the ASGI application (channels'
WebsocketCommunicator), the PostgreSQL test database, the embedding model, the admin views through
Django's test client logged in as the shop's owner. No API key, so answers are FAQ or fallback.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client
from django.urls import reverse

from faq import embedding
from faq.models import FAQEntry, FAQVector, Shop
from owner import unanswered
from tests.support import Chat, make_owner
from widget.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

# Bounds a hang on a busy machine, not a speed target.

# One missing topic (the demo florist's FAQ says nothing about jobs), three wordings.
JOB_QUESTIONS = [
    "Are you hiring?",
    "Do you have any job openings?",
    "Can I apply to work at your shop?",
]
ANSWER = (
    "We hire seasonal florists before Valentine's Day and Mother's Day: email jobs@example.com."
)


async def ask(shop: Shop, text: str) -> dict:
    """One customer, one new conversation, one question: the answer frame."""
    # This site's own page, as a browser sends it: the Origin and the Host it came in on.
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    async with Chat(shop.public_key, headers=headers) as chat:
        await chat.ready()
        _, answer = await chat.ask(text)
        return answer


def owner_creates_entry_from_the_group(shop: Shop, message_id: int) -> tuple[int, int]:
    """The owner's clicks: unanswered page, "Create FAQ entry", save. Returns (status, entry)."""
    client = Client()
    client.force_login(make_owner(shop, "owner-of-demo"))

    unanswered_url = reverse("admin:widget_unanswered", args=[shop.pk])
    page = client.get(unanswered_url)
    assert page.status_code == 200
    [group] = [g for g in page.context["groups"] if message_id in g.message_ids]
    for pk in group.message_ids:  # each question has its tick box
        assert f'name="use" value="{pk}"' in page.content.decode()
    # The owner ticks the three and presses "Create FAQ entry from the ticked".
    ticked = [str(pk) for pk in group.message_ids]
    chosen = client.post(unanswered_url, {"action": "create", "use": ticked})
    assert chosen.status_code == 302
    link = chosen["Location"]

    form_page = client.get(link)
    assert form_page.status_code == 200
    initial = form_page.context["new_form"].initial
    # Pre-filled: the most typical wording as the question, the other two as alternatives.
    alternatives = initial["alternatives"].splitlines()
    assert sorted([initial["question"], *alternatives]) == sorted(JOB_QUESTIONS)

    response = client.post(
        link,
        {
            "action": "create",
            "messages": form_page.context["message_ids"],
            "new-question": initial["question"],
            "new-answer": ANSWER,
            "new-alternatives": initial["alternatives"],
            "new-category": "Jobs",
            "new-published": "on",
        },
    )
    entry = FAQEntry.objects.get(shop=shop, answer=ANSWER)
    assert response.status_code == 302
    assert response["Location"] == unanswered_url  # back to the list, where the next group is
    return response.status_code, entry.pk


@pytest.fixture
async def close_thread_connections():
    yield
    # The consumer's and this test's ORM calls ran on asgiref's sync thread; close its connection
    # so the test database can be dropped at the end of the run.
    await sync_to_async(connections.close_all)()


async def test_three_unanswered_wordings_become_one_group_then_an_faq_that_answers(
    demo_shop, settings, close_thread_connections
):
    settings.ANTHROPIC_API_KEY = ""

    for text in JOB_QUESTIONS:
        answer = await ask(demo_shop, text)
        assert answer["mode"] == "fallback", (text, answer)
        assert answer["sources"] == []

    groups = await sync_to_async(unanswered.groups)(demo_shop)
    assert len(groups) == 1
    group = groups[0]
    assert group.count == 3
    assert sorted(q.text for q in group.questions) == sorted(JOB_QUESTIONS)

    _, entry_id = await sync_to_async(owner_creates_entry_from_the_group)(
        demo_shop, group.typical.pk
    )

    # Embedded like any other entry (post_save after the commit), the group resolved and gone.
    entry = await FAQEntry.objects.aget(pk=entry_id)
    own = FAQVector.objects.filter(entry=entry, model_name=embedding.model_name())
    assert await own.acount() == len(entry.embedding_texts())
    resolved = Message.objects.filter(resolved_by=entry).values_list("text", flat=True)
    assert sorted([t async for t in resolved]) == sorted(JOB_QUESTIONS)
    assert await sync_to_async(unanswered.groups)(demo_shop) == []

    # The next customer asks the question again and gets the new entry, with it as the source.
    answer = await ask(demo_shop, JOB_QUESTIONS[0])
    assert answer["mode"] in ("faq", "llm"), answer
    source = answer["sources"][0]
    assert (source["id"], source["question"]) == (entry.pk, entry.question)
    assert source["url"].endswith(f"/faq/{demo_shop.slug}/#faq-{entry.pk}")
    assert answer["text"] == ANSWER
    assert await sync_to_async(unanswered.groups)(demo_shop) == []
