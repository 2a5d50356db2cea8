"""The opening hours in the chat (issue 30), through the real consumer and database with the clock
frozen (time-machine): questions about opening times answered from the hours (mode `hours`) in
English, Spanish and German while every other question, the delivery ones included, stays its FAQ
entry's; the `ready` frame's status and `get_hours`; the hand-off's promise while the shop is
closed; with Claude on, the computed hours sent to Claude as a source."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from channels.db import database_sync_to_async as db
from django.urls import reverse
from websockets.sync.client import connect

from faq.models import Shop
from tests.support import (
    DELIVERY,
    Chat,
    daphne_server,
    make_demo_shop,
    make_owner,
    messages_of,
    server_environment,
)
from tests.test_hours_admin import form_data
from widget.chat import claude
from widget.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")
MONDAY_3PM = datetime(2026, 12, 7, 15, 0, tzinfo=NEW_YORK)  # open until 6 PM
SATURDAY_EVENING = datetime(2026, 12, 5, 18, 30, tzinfo=NEW_YORK)  # closed until Sunday 10 AM
SERVER_TIMEOUT = 120  # a daphne process's start (the model loaded) on a busy machine: a bound


@pytest.fixture
def shop(demo_texts_embedded, chat_without_claude) -> Shop:
    return make_demo_shop(demo_texts_embedded)


async def test_an_hours_question_is_answered_from_the_hours_in_english(shop):
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            ready = await chat.ready()
            _, christmas = await chat.ask("Are you open on Christmas?")
            _, now = await chat.ask("Are you open now?")
    assert christmas["mode"] == "hours"
    assert christmas["text"] == (
        "We're closed on Christmas Day (Friday, December 25). We open again on Saturday, "
        "December 26 at 9:00 AM."
    )
    [source] = christmas["sources"]
    assert source == {
        "hours": True,
        "question": "Opening hours",
        "url": f"/faq/{shop.slug}/#opening-hours",
    }
    assert (now["mode"], now["text"]) == ("hours", "We're open now, until 6:00 PM.")
    # Stored as answered, confidently: never one of the owner's unanswered questions.
    stored = [m for m in await messages_of(ready["conversation"]) if m.role == Message.BOT]
    assert [(m.mode, m.confident, m.score) for m in stored] == [("hours", True, None)] * 2
    assert await db(lambda: Message.objects.unanswered(shop).count())() == 0


async def test_hours_questions_in_spanish_and_german(shop):
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key, "lang=es") as chat:
            await chat.ready()
            _, spanish = await chat.ask("¿Abren en Navidad?")
        async with Chat(shop.public_key, "lang=de") as chat:
            await chat.ready()
            _, german = await chat.ask("Habt ihr Heiligabend offen?")
    assert spanish["mode"] == "hours"
    assert spanish["text"] == (
        "Estamos cerrados el día de Navidad (viernes, 25 de diciembre). Volvemos a abrir el "
        "sábado, 26 de diciembre a las 09:00."
    )
    assert spanish["sources"][0]["question"] == "Horario"
    assert german["mode"] == "hours"
    assert german["text"] == (
        "Am Heiligabend (Donnerstag, 24. Dezember) haben wir von 09:00 bis 15:00 Uhr geöffnet."
    )
    assert german["sources"][0]["question"] == "Öffnungszeiten"


async def test_the_delivery_questions_stay_their_entries(shop):
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            await chat.ready()
            _, princeton = await chat.ask("Do you deliver to Princeton?")
            _, sundays = await chat.ask("do you deliver on sundays?")
    assert princeton["mode"] == "faq"
    assert [s["question"] for s in princeton["sources"]] == [DELIVERY]
    assert sundays["mode"] == "faq"
    [source] = sundays["sources"]
    assert "deliver" in source["question"].lower() and "hours" not in source


async def test_a_shop_without_hours_answers_hours_questions_from_its_faq(shop):
    await db(lambda: shop.opening_hours.delete())()
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            ready = await chat.ready()
            _, answer = await chat.ask("What are your opening hours?")
    assert ready["hours"] is None and ready["bot"]["handoff"]["closed"] is None
    assert answer["mode"] == "faq"
    assert answer["sources"][0]["question"] == "What are your opening hours?"


async def test_ready_carries_the_status_and_get_hours_says_it_again(shop):
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            ready = await chat.ready()
    assert ready["hours"] == {
        "open": True,
        "next_change": "2026-12-07T18:00:00-05:00",
        "text": "Open now · closes at 6:00 PM",
    }
    assert ready["bot"]["handoff"]["closed"] is None  # open: the usual reply time holds
    # The chat stays open past 6 PM: at next_change the widget asks again.
    with time_machine.travel(datetime(2026, 12, 7, 18, 0, 1, tzinfo=NEW_YORK), tick=False):
        async with Chat(shop.public_key, "lang=es") as chat:
            await chat.ready()
            await chat.send({"type": "get_hours"})
            frame = await chat.recv()
    assert frame == {
        "type": "hours",
        "hours": {
            "open": False,
            "next_change": "2026-12-08T09:00:00-05:00",
            "text": "Cerrado ahora · abre mañana a las 09:00",
        },
    }


async def test_the_handoff_promise_uses_the_hours_while_closed(shop):
    with time_machine.travel(SATURDAY_EVENING, tick=False):
        async with Chat(shop.public_key) as chat:
            ready = await chat.ready()
            await chat.send(
                {"type": "handoff", "id": "h1", "email": "ann@example.com", "note": "A wreath?"}
            )
            saved = await chat.recv()
    promise = "We're closed now; we'll reply after we open tomorrow at 10:00 AM."
    assert ready["hours"]["text"] == "Closed now · opens tomorrow at 10:00 AM"
    assert ready["bot"]["handoff"]["closed"] == promise
    assert saved["type"] == "handoff_saved"
    assert saved["message"] == (
        f"Thanks! A person from our team will reply to ann@example.com. {promise} "
        "The answer will also appear here in the chat."
    )
    # Open: the usual reply time, as before.
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            await chat.ready()
            await chat.send(
                {"type": "handoff", "id": "h2", "email": "bo@example.com", "note": "A wreath?"}
            )
            saved = await chat.recv()
    assert "usually within one business day" in saved["message"]


def test_claude_gets_the_computed_hours_as_one_more_source():
    messages = claude.build_messages([], [], "are you open on sunday?", "We're open now.")
    content = messages[-1]["content"]
    assert content[0]["source"] == "hours"
    assert content[0]["content"] == [{"type": "text", "text": "We're open now."}]
    assert content[-1] == {"type": "text", "text": "are you open on sunday?"}
    without = claude.build_messages([], [], "hi")[-1]["content"]
    assert json.dumps(without) and all(block.get("source") != "hours" for block in without)


async def test_with_claude_the_hours_go_to_claude_and_are_the_source(demo_texts_embedded, fake):
    shop = await db(make_demo_shop)(demo_texts_embedded)
    fake.script(text_chunks=["We're closed ", "on Christmas Day."])
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            await chat.ready()
            _, answer = await chat.ask("Are you open on Christmas?")
    hours_blocks = [sr for sr in fake.requests[-1].search_results if sr["source"] == "hours"]
    assert len(hours_blocks) == 1
    text = hours_blocks[0]["content"][0]["text"]
    assert "We're closed on Christmas Day (Friday, December 25)." in text  # not a guess
    assert text.startswith("We're closed on Christmas Day")  # the computed answer first
    assert "We're open now, until 6:00 PM." in text  # then the hours as a whole
    assert (answer["mode"], answer["text"]) == ("llm", "We're closed on Christmas Day.")
    assert answer["sources"][0]["hours"] is True
    # Claude failing: the computed answer, mode hours.
    fake.script(error="invalid_request")
    with time_machine.travel(MONDAY_3PM, tick=False):
        async with Chat(shop.public_key) as chat:
            await chat.ready()
            _, answer = await chat.ask("Are you open on Christmas Eve?")
    assert answer["mode"] == "hours"
    assert answer["text"] == (
        "On Christmas Eve (Thursday, December 24) we're open 9:00 AM to 3:00 PM."
    )


def test_an_owners_edit_of_the_hours_reaches_a_served_chat_at_once(
    transactional_db, demo_texts_embedded, chat_without_claude, client
):
    """Each server process caches a shop's hours by their version (faq/hours/models.py): an
    owner's edit in the admin (this process) is in the very next answer of a daphne process that
    had them cached, on the same socket, with no wait."""
    shop = make_demo_shop(demo_texts_embedded)
    client.force_login(make_owner(shop, "olive"))
    page = reverse("admin:faq_shop_hours", args=[shop.pk])
    with (
        daphne_server(server_environment(), SERVER_TIMEOUT) as server,
        connect(f"{server.ws_url}/ws/chat/{shop.public_key}/", open_timeout=SERVER_TIMEOUT) as ws,
    ):

        def ask(text: str) -> dict:
            ask_id = uuid.uuid4().hex
            ws.send(json.dumps({"type": "ask", "id": ask_id, "text": text}))
            while (frame := json.loads(ws.recv(SERVER_TIMEOUT)))["type"] != "answer":
                pass
            assert frame["id"] == ask_id
            return frame

        assert json.loads(ws.recv(SERVER_TIMEOUT))["type"] == "ready"
        before = ask("What are your opening hours?")
        assert before["mode"] == "hours" and "Saturday 9:00 AM to 5:00 PM" in before["text"]

        # The week's rows come Monday to Sunday: the sixth is Saturday's.
        data = form_data(client.get(page), **{"week-5-closes": "16:00"})
        assert client.post(page, data).status_code == 302

        after = ask("What are your opening hours?")
        assert after["mode"] == "hours" and "Saturday 9:00 AM to 4:00 PM" in after["text"]
        assert "Monday to Friday 9:00 AM to 6:00 PM" in after["text"]
