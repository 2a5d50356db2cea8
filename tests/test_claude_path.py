"""The Claude path of the chat: the real consumer and the real anthropic SDK, talking real HTTP and
SSE to the fake Messages API of tests/fake_anthropic.py on loopback."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.db import database_sync_to_async as db

from faq.models import FAQEntry
from tests.support import DELIVERY, Chat, message_fields, messages_of
from widget.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Do you deliver to Princeton?"


@database_sync_to_async
def entries_by_source(requests) -> dict[str, FAQEntry]:
    sources = [sr["source"] for sr in requests[-1].search_results]
    return {s: FAQEntry.objects.get(pk=int(s.removeprefix("faq:"))) for s in sources}


async def test_deltas_stream_in_order_and_sources_come_from_the_citations(demo_shop, fake):
    chunks = ["Yes, we deliver ", "to Princeton ", "for $19.95."]
    # Cite the second search result only: the sources must follow the citation, not the ranking.
    fake.script(text_chunks=chunks, cite=[(1, "anything")], input_tokens=321, output_tokens=12)
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        deltas, answer = await chat.ask(QUESTION, "c1")

    assert [d["text"] for d in deltas] == chunks
    assert answer["mode"] == "llm"
    assert answer["text"] == "".join(chunks)
    entries = await entries_by_source(fake.requests)
    cited = list(entries.values())[1]
    url = f"/faq/{demo_shop.slug}/#faq-{cited.pk}"
    assert answer["sources"] == [{"id": cited.pk, "question": cited.question, "url": url}]

    _, reply = await messages_of(conversation)
    stored = [{"id": cited.pk, "question": cited.question}]
    assert (reply.mode, reply.text, reply.sources) == ("llm", answer["text"], stored)
    assert (reply.input_tokens, reply.output_tokens) == (321, 12)
    assert reply.latency_ms is not None and reply.confident is True


async def test_the_request_holds_the_rules_the_entries_and_the_customer_only_in_user_turns(
    demo_shop, fake, settings
):
    settings.ANTHROPIC_MAX_TOKENS = 333
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        _, first = await chat.ask(QUESTION)
        _, second = await chat.ask("And on Sundays?")
    assert first["mode"] == second["mode"] == "llm"
    request = fake.requests[-1].json

    assert request["model"] == settings.ANTHROPIC_MODEL
    assert request["max_tokens"] == 333
    assert request["stream"] is True
    [system] = request["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "Petal & Stem" in system["text"]
    assert "Answer only from the FAQ entries" in system["text"]
    assert "(609) 555-0142" in system["text"]  # the contact route to offer
    assert "Never invent prices" in system["text"]
    assert "language the customer writes in" in system["text"]
    assert "Princeton" not in system["text"] and "Sundays" not in system["text"]

    earlier_user, earlier_bot, current = request["messages"]
    assert earlier_user == {"role": "user", "content": QUESTION}
    assert earlier_bot == {"role": "assistant", "content": first["text"]}
    assert current["role"] == "user"
    *results, text = current["content"]
    assert text == {"type": "text", "text": "And on Sundays?"}
    assert results and all(r["type"] == "search_result" for r in results)
    entries = await entries_by_source(fake.requests)
    for result in results:
        entry = entries[result["source"]]
        assert result["title"] == entry.question
        assert result["content"] == [{"type": "text", "text": entry.answer}]
        assert result["citations"] == {"enabled": True}
    # The customer's words never leave a user turn.
    for message in request["messages"]:
        if message["role"] != "user":
            assert "Princeton?" not in str(message["content"])
            assert "Sundays" not in str(message["content"])


@pytest.mark.parametrize(
    "failure",
    [
        {"error": "rate_limit"},
        {"error": "overloaded"},
        {"error": "api_error"},
        {"error": "stall", "stall_at": "message_start"},
        {"error": "stall", "stall_at": "delta", "after": 1},
        {"error": "cut", "after": 1},
        {"error": "sse_error", "after": 1, "error_type": "overloaded_error"},
    ],
    ids=["429", "529", "500", "stall", "stall-mid-answer", "cut", "sse-error"],
)
async def test_every_claude_failure_ends_in_an_faq_or_fallback_answer(
    demo_shop, fake, settings, failure
):
    settings.ANTHROPIC_TIMEOUT = 1.5
    fake.script(text_chunks=["We do ", "deliver ", "there."], **failure)
    fake.script(error=failure["error"] if failure["error"] != "stall" else "api_error")
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        deltas, answer = await chat.ask(QUESTION)
        _, off_topic = await chat.ask("Can you fix my car's brakes?")

    delivery = await db(FAQEntry.objects.get)(shop=demo_shop, question=DELIVERY)
    # Chunks sent before the failure are superseded by the answer frame's full text.
    assert len(deltas) == failure.get("after", 0)
    assert answer["mode"] == "faq"
    assert answer["text"] == delivery.answer
    url = f"/faq/{demo_shop.slug}/#faq-{delivery.pk}"
    assert answer["sources"] == [{"id": delivery.pk, "question": DELIVERY, "url": url}]
    assert off_topic["mode"] == "fallback"
    assert off_topic["text"] == "I can't help with that here, but our team can."
    assert off_topic["contact"] == demo_shop.contact()
    assert len(fake.requests) == 2  # no retries: the FAQ answer is ready at once

    assert await message_fields(conversation, "role", "mode") == [
        ("user", ""),
        ("bot", "faq"),
        ("user", ""),
        ("bot", "fallback"),
    ]


async def test_claude_switched_off_for_the_shop_answers_from_the_faq(demo_shop, fake):
    demo_shop.use_claude = False
    await db(demo_shop.save)()
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask(QUESTION)
    assert answer["mode"] == "faq"
    assert fake.requests == []


async def test_pings_are_answered_while_claude_is_still_streaming(demo_shop, fake):
    fake.script(text_chunks=["One ", "two ", "three."], delay=0.3)
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        await chat.send({"type": "ask", "id": "slow", "text": QUESTION})
        first = await chat.recv()
        assert first["type"] == "delta"
        await chat.send({"type": "ping"})
        frames = [await chat.recv()]
        while frames[-1]["type"] != "answer":
            frames.append(await chat.recv())
    # The pong arrived before the answer, not queued behind the stream.
    assert "pong" in [f["type"] for f in frames[:-1]]
    rows = await messages_of(conversation)
    assert [m.role for m in rows] == [Message.USER, Message.BOT]
