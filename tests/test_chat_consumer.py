"""The chat websocket end to end, without Claude: the real consumer on the real ASGI application,
the real PostgreSQL test database and the real embedding model."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.db import database_sync_to_async as db

from faq import search
from faq.models import FAQEntry, normalise_origin
from tests.support import (
    ANSWER_TIMEOUT,
    DELIVERY,
    Chat,
    make_demo_shop,
    message_fields,
    messages_of,
)
from widget.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def entry_id(shop, question: str) -> int:
    return FAQEntry.objects.get(shop=shop, question=question).pk


async def test_ready_frame_starts_a_conversation(demo_shop, shop_open):
    headers = [(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000")]
    headers.append((b"user-agent", b"Mozilla/5.0 (test)"))
    async with Chat(demo_shop.public_key, "page=http://localhost:8000/shop", headers) as chat:
        ready = await chat.ready()
    assert ready["resumed"] is False
    assert ready["history"] == []
    assert ready["bot"] == {
        "name": "Poppy",
        "greeting": demo_shop.greeting,
        "suggestions": demo_shop.suggestion_list,
        "accent": demo_shop.accent_color,
        "position": "right",
        "handoff": {"phone": False, "reply_time": "one business day", "closed": None},
        "privacy": None,
    }
    # Nothing is stored until the first ask: connect-and-close leaves no trace for the owner.
    assert not await db(Conversation.objects.filter(pk=ready["conversation"]).exists)()

    async with Chat(demo_shop.public_key, "page=http://localhost:8000/shop", headers) as chat:
        ready = await chat.ready()
        await chat.ask("Do you deliver to Princeton?")
    conversation = await db(Conversation.objects.get)(pk=ready["conversation"])
    assert conversation.shop_id == demo_shop.pk
    assert conversation.page_url == "http://localhost:8000/shop"
    assert conversation.user_agent == "Mozilla/5.0 (test)"


async def test_demo_question_is_answered_from_the_faq_with_its_source(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        deltas, answer = await chat.ask("Do you deliver to Princeton?", "ask-1")

    delivery = await db(FAQEntry.objects.get)(shop=demo_shop, question=DELIVERY)
    assert deltas == []
    assert answer["mode"] == "faq"
    assert answer["text"] == delivery.answer
    # With no Host header the link to the FAQ page is relative (tests/test_faq_page.py has more).
    url = f"/faq/{demo_shop.slug}/#faq-{delivery.pk}"
    assert answer["sources"] == [{"id": delivery.pk, "question": DELIVERY, "url": url}]
    assert answer["contact"] == demo_shop.contact()

    question, reply = await messages_of(ready["conversation"])
    assert (question.role, question.ask_id, question.text) == (
        "user",
        "ask-1",
        "Do you deliver to Princeton?",
    )
    assert (reply.role, reply.ask_id, reply.pk) == ("bot", "ask-1", answer["message"])
    assert reply.mode == "faq" and reply.confident is True and reply.score > 0.9
    assert reply.sources == [{"id": delivery.pk, "question": DELIVERY}]
    assert reply.latency_ms is not None
    assert (reply.input_tokens, reply.output_tokens) == (0, 0)


async def test_out_of_scope_question_gets_the_fallback_and_contact_route(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        _, answer = await chat.ask("Can you fix my car's brakes?")
        # Unsure but close to entries: the shop's own fallback above its "did you mean".
        _, unsure = await chat.ask("I want my money back")

    # Nothing to suggest: one honest sentence, not the fallback written for suggestions ("I'm
    # not quite sure which of these you mean...").
    assert answer["mode"] == "fallback"
    assert answer["suggestions"] == []
    assert answer["text"] == "I can't help with that here, but our team can."
    assert answer["sources"] == []
    assert unsure["mode"] == "fallback" and unsure["suggestions"]
    assert unsure["text"] == demo_shop.fallback_message
    assert answer["contact"] == {
        "email": "hello@petalandstem.example",
        "phone": "(609) 555-0142",
        "url": "https://petalandstem.example/contact",
    }
    _, reply, _, _ = await messages_of(ready["conversation"])
    assert reply.mode == "fallback" and reply.confident is False
    assert reply.text == answer["text"]


async def test_an_off_topic_question_is_declined_in_the_chats_language(demo_shop):
    async with Chat(demo_shop.public_key, "lang=de") as chat:
        await chat.ready()
        _, answer = await chat.ask("Können Sie die Bremsen meines Autos reparieren?")
        # Asked in English in the German chat: declined in English, the customer's language.
        _, english = await chat.ask("Can you fix my car's brakes?")
    assert (answer["mode"], answer["suggestions"]) == ("fallback", [])
    assert answer["text"] == "Dabei kann ich Ihnen hier nicht helfen, aber unser Team schon."
    assert english["text"] == "I can't help with that here, but our team can."
    assert answer["contact"] == demo_shop.contact()


async def test_resume_replays_the_history_and_ignores_foreign_ids(demo_shop, demo_texts_embedded):
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        _, first = await chat.ask("Do you deliver to Princeton?", "a1")
        await chat.send({"type": "feedback", "message": first["message"], "value": "up"})
        assert (await chat.recv())["type"] == "feedback_saved"
        _, second = await chat.ask("Can you fix my car's brakes?", "a2")

    async with Chat(demo_shop.public_key, f"conversation={conversation}") as chat:
        ready = await chat.ready()
    assert ready["conversation"] == conversation
    assert ready["resumed"] is True
    assert ready["history"] == [
        {"role": "user", "id": "a1", "text": "Do you deliver to Princeton?"},
        {
            "role": "bot",
            "id": "a1",
            "text": first["text"],
            "message": first["message"],
            "sources": first["sources"],
            "mode": "faq",
            "suggestions": [],
            "feedback": "up",
        },
        {"role": "user", "id": "a2", "text": "Can you fix my car's brakes?"},
        {
            "role": "bot",
            "id": "a2",
            "text": second["text"],
            "message": second["message"],
            "sources": [],
            "mode": "fallback",
            "suggestions": second["suggestions"],
            "feedback": None,
        },
    ]

    # Another shop's conversation, an unknown id and garbage all start afresh, quietly.
    other = await database_sync_to_async(make_demo_shop)(demo_texts_embedded, name="Other")
    for query in (f"conversation={conversation}", f"conversation={uuid.uuid4()}", "conversation=x"):
        async with Chat(other.public_key, query) as chat:
            ready = await chat.ready()
        assert ready["resumed"] is False and ready["history"] == []
        assert ready["conversation"] != conversation


async def test_a_resent_ask_id_gets_the_stored_answer_and_no_second_row(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        _, answer = await chat.ask("Do you deliver to Princeton?", "same")
        # Same id again on the same socket, even with other text: the stored answer, no deltas.
        deltas, again = await chat.ask("What are your opening hours?", "same")
        assert deltas == [] and again == answer

    # A client that reconnects and re-sends its ask.
    async with Chat(demo_shop.public_key, f"conversation={conversation}") as chat:
        await chat.ready()
        _, again = await chat.ask("Do you deliver to Princeton?", "same")
        assert again == answer

    # Two connections sending one new ask id at the same moment: one answer row, both get it.
    async with (
        Chat(demo_shop.public_key, f"conversation={conversation}") as one,
        Chat(demo_shop.public_key, f"conversation={conversation}") as two,
    ):
        await one.ready()
        await two.ready()
        (_, a), (_, b) = await asyncio.gather(
            one.ask("Where is your shop located?", "race"),
            two.ask("Where is your shop located?", "race"),
        )
    assert a == b

    assert await message_fields(conversation, "role", "ask_id") == [
        ("user", "same"),
        ("bot", "same"),
        ("user", "race"),
        ("bot", "race"),
    ]


async def test_a_duplicate_ask_in_flight_on_one_socket_is_answered_once(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        frame = {"type": "ask", "id": "twice", "text": "Do you deliver to Princeton?"}
        await chat.send(frame)
        await chat.send(frame)
        await chat.send({"type": "ping"})
        frames = [await chat.recv(), await chat.recv()]
        assert sorted(f["type"] for f in frames) == ["answer", "pong"]
        assert await chat.ws.receive_nothing(timeout=0.5)
    assert len(await messages_of(conversation)) == 2


async def test_an_origin_that_is_not_allowed_is_closed_with_4403(demo_shop, settings):
    settings.SITE_URL = "https://bot.example.com"
    demo_shop.allowed_origins = "https://www.petalandstem.example/\nhttp://localhost:3000"
    await db(demo_shop.save)()

    async def close_code(origin: str, host: str = "bot.example.com") -> int | None:
        headers = [(b"origin", origin.encode()), (b"host", host.encode())]
        async with Chat(demo_shop.public_key, headers=headers) as chat:
            frame = await chat.ws.receive_output(timeout=ANSWER_TIMEOUT)
        return frame["code"] if frame["type"] == "websocket.close" else None

    assert await close_code("https://evil.example") == 4403
    assert await close_code("null") == 4403
    assert await close_code("https://petalandstem.example") == 4403  # not the www host
    assert await close_code("http://www.petalandstem.example") == 4403  # wrong scheme
    assert await close_code("https://WWW.petalandstem.example:443") is None  # normalised
    assert await close_code("http://localhost:3000") is None
    assert await close_code("https://bot.example.com") is None  # SITE_URL: this site
    assert await close_code("http://bot.example.com") == 4403  # another scheme of it
    assert await close_code("https://bot.example.com:8443") == 4403  # another port of it
    assert await close_code("http://shop.test:8000", host="shop.test:8000") == 4403  # Host alone


async def test_this_site_without_site_url_needs_an_allowed_host_scheme_and_port(
    demo_shop, settings
):
    settings.SITE_URL = ""
    settings.ALLOWED_HOSTS = ["shop.test", "localhost", ".wild.example", "*"]

    async def close_code(origin: str, host: str) -> int | None:
        headers = [(b"origin", origin.encode()), (b"host", host.encode())]
        async with Chat(demo_shop.public_key, headers=headers) as chat:
            frame = await chat.ws.receive_output(timeout=ANSWER_TIMEOUT)
        return frame["code"] if frame["type"] == "websocket.close" else None

    # The communicator's scope is ws:// (plain): this site is http://<Host>.
    assert await close_code("http://shop.test:8000", "shop.test:8000") is None
    assert await close_code("http://localhost", "localhost") is None
    # The forged Host of the report: evil.example is not an allowed host, "*" notwithstanding.
    assert await close_code("http://evil.example", "evil.example") == 4403
    assert await close_code("http://a.wild.example", "a.wild.example") == 4403  # wildcard
    assert await close_code("https://shop.test:8000", "shop.test:8000") == 4403  # scheme
    assert await close_code("http://shop.test:9000", "shop.test:8000") == 4403  # port
    assert await close_code("http://shop.test", "shop.test:8000") == 4403  # port
    # Behind a TLS proxy that says so, this site is https.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [
        (b"origin", b"https://shop.test"),
        (b"host", b"shop.test"),
        (b"x-forwarded-proto", b"https"),
    ]
    async with Chat(demo_shop.public_key, headers=headers) as chat:
        assert (await chat.ready())["type"] == "ready"


def test_origins_are_normalised():
    assert normalise_origin("HTTPS://Shop.Example:443/") == "https://shop.example"
    assert normalise_origin("http://shop.example:8080") == "http://shop.example:8080"
    assert normalise_origin("http://[::1]:8000") == "http://[::1]:8000"
    assert normalise_origin("null") is None
    assert normalise_origin("ftp://shop.example") is None
    assert normalise_origin("http://shop.example:99999") is None


async def test_an_unknown_shop_key_is_closed_with_4404(demo_shop):
    async with Chat("pk_does-not-exist") as chat:
        frame = await chat.ws.receive_output(timeout=ANSWER_TIMEOUT)
    assert frame == {"type": "websocket.close", "code": 4404}
    assert await db(Conversation.objects.count)() == 0


async def test_feedback_is_stored_only_on_this_conversations_answers(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("Do you deliver to Princeton?")
        await chat.send({"type": "feedback", "message": answer["message"], "value": "down"})
        assert await chat.recv() == {"type": "feedback_saved", "message": answer["message"]}

    async with Chat(demo_shop.public_key) as other:
        await other.ready()
        await other.send({"type": "feedback", "message": answer["message"], "value": "up"})
        error = await other.recv()
        assert (error["type"], error["code"]) == ("error", "bad_request")
        # A question is not an answer either.
        _, own = await other.ask("Where is your shop located?")
        await other.send({"type": "feedback", "message": own["message"] - 1, "value": "up"})
        assert (await other.recv())["code"] == "bad_request"

    reply = await db(Message.objects.get)(pk=answer["message"])
    assert reply.feedback == "down"


async def test_bad_frames_get_bad_request_and_the_socket_stays_usable(demo_shop, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        bad = [
            "not json",
            json.dumps([1, 2]),
            json.dumps({"type": "shout"}),
            json.dumps({"text": "no type"}),
            json.dumps({"type": "ask", "text": "no id"}),
            json.dumps({"type": "ask", "id": "", "text": "empty id"}),
            json.dumps({"type": "ask", "id": "x" * 65, "text": "long id"}),
            json.dumps({"type": "ask", "id": 7, "text": "number id"}),
            json.dumps({"type": "ask", "id": "b1"}),
            json.dumps({"type": "ask", "id": "b2", "text": ["list"]}),
            json.dumps({"type": "ask", "id": "b3", "text": "   "}),
            json.dumps({"type": "feedback", "message": "1", "value": "up"}),
            json.dumps({"type": "feedback", "message": 1, "value": "meh"}),
        ]
        for text in bad:
            await chat.ws.send_to(text_data=text)
            error = await chat.recv()
            assert error["type"] == "error" and error["code"] == "bad_request", (text, error)
            assert error["message"].endswith("."), error
        await chat.ws.send_to(bytes_data=b"\x00\x01")
        assert (await chat.recv())["code"] == "bad_request"

        await chat.send({"type": "ask", "id": "long", "text": "x" * 51})
        assert await chat.recv() == {
            "type": "error",
            "id": "long",
            "code": "too_long",
            "message": "Please keep your message under 50 characters.",
        }

        await chat.send({"type": "ping"})
        assert await chat.recv() == {"type": "pong"}
        _, answer = await chat.ask("Do you deliver to Princeton?")
        assert answer["mode"] == "faq"
    # Nothing from the refused frames was stored.
    assert [m.ask_id for m in await messages_of(conversation)] == [answer["id"]] * 2


async def test_a_follow_up_question_is_understood_from_the_conversation(demo_shop):
    delivery_times = await entry_id(demo_shop, "Can I choose a delivery time?")
    opening_hours = await entry_id(demo_shop, "What are your opening hours?")
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        await chat.ask("What are your opening hours?")
        _, answer = await chat.ask("And on Sundays?")
    assert answer["mode"] == "faq"
    assert [s["id"] for s in answer["sources"]] == [opening_hours]

    # After a delivery question the same words are about delivery; the blend's dense score is
    # below the demo shop's bar (one policy for every shop: no full-score bar for shops with
    # phrasings any more), so the entry is offered first, one click away.
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        await chat.ask("Do you deliver to Princeton?")
        _, answer = await chat.ask("And on Sundays?")
        assert answer["mode"] == "fallback"
        assert answer["suggestions"][0]["id"] == delivery_times

    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        await chat.ask("Do you deliver to Princeton?")
        # "How much is it?" means nothing alone; after a delivery question it is delivery.
        _, answer = await chat.ask("How much is it?")
        assert answer["mode"] == "fallback"
        assert answer["suggestions"][0]["id"] == await entry_id(demo_shop, DELIVERY)


async def test_an_off_topic_turn_after_a_topic_is_declined_as_it_is_alone(demo_shop):
    """The follow-up search blends the turn with the previous question; an off-topic turn must
    not come back with "did you mean" the previous topic's entries (issue 29)."""
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        await chat.ask("can I order flowers for a wedding")
        _, answer = await chat.ask("write me a poem about autumn")
        # A real follow-up in the same conversation still follows the topic.
        await chat.ask("What are your opening hours?")
        _, follow_up = await chat.ask("And on Sundays?")
    assert (answer["mode"], answer["suggestions"]) == ("fallback", [])
    assert answer["text"] == "I can't help with that here, but our team can."
    assert answer["contact"] == demo_shop.contact()
    assert follow_up["mode"] == "faq"
    assert [s["question"] for s in follow_up["sources"]] == ["What are your opening hours?"]


def test_a_self_contained_question_keeps_its_own_best_entry(demo_shop):
    result = search.search(
        demo_shop, "Where is your shop located?", context=["Do you deliver to Princeton?"]
    )
    assert result.confident
    assert result.best.entry.question == "Where is your shop located?"
    off_topic = search.search(
        demo_shop, "Can you fix my car's brakes?", context=["Do you deliver to Princeton?"]
    )
    assert not off_topic.confident
