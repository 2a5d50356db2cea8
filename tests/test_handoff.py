"""Hand-off to a person, end to end: the `handoff` frame on the real consumer, the owner's email
through a real SMTP server on loopback (aiosmtpd), the admin's "Customer requests" inbox, and the
owner's reply reaching the customer's open socket through the channel layer, the stored history
and the customer's mailbox. Real PostgreSQL, real embedding model, no mocks."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as db
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from faq.models import Shop
from tests.support import (
    Chat,
    Inbox,
    chat_from,
    make_handoff,
    make_owner,
    stored_conversation,
    wait_for,
)
from widget import handoff_email
from widget.models import Conversation, Handoff, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("handoff_chat")]


async def leave(chat: Chat, **fields) -> dict:
    frame = {"type": "handoff", "id": fields.pop("id", uuid.uuid4().hex), **fields}
    await chat.send(frame)
    return await chat.recv()


async def owner_client(shop: Shop) -> Client:
    """A test client signed in as an owner of `shop` (with an email address, so emailed)."""
    owner = await db(make_owner)(shop, "owner", "owner@petal.example")
    client = Client()
    await db(client.force_login)(owner)
    return client


SAVED, LIMITED = "handoff_saved", "rate_limited"


async def leave_in_new_chats(shop: Shop, emails: list[str], ip: str | None = None) -> list[dict]:
    """One request for each of `emails`, each from a fresh conversation (from `ip`): the frame
    each got back."""
    frames = []
    for email in emails:
        async with chat_from(shop.public_key, ip) as chat:
            await chat.ready()
            frames.append(await leave(chat, email=email, note="q"))
    return frames


def outcomes(frames: list[dict]) -> list[str]:
    """SAVED, or the error's code, for each frame."""
    return [frame.get("code", frame["type"]) for frame in frames]


# --- The frame --------------------------------------------------------------------------------


async def test_fallback_then_handoff_is_saved_once_and_emails_the_owner_the_transcript(
    demo_shop, inbox, shop_open
):
    await db(make_owner)(demo_shop, "owner", "owner@petal.example")
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        _, answer = await chat.ask("Can you fix my car's brakes?")
        assert answer["mode"] == "fallback"
        fields = {"id": "h1", "email": "ann@example.com", "name": "Ann", "note": "Car brakes?"}
        saved = await leave(chat, **dict(fields))
        again = await leave(chat, **dict(fields))  # re-sent after a reconnect, say

    assert saved["type"] == "handoff_saved" and saved["id"] == "h1"
    assert again == saved
    assert "ann@example.com" in saved["message"] and "one business day" in saved["message"]
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert str(handoff.conversation_id) == ready["conversation"]
    assert (handoff.email, handoff.name, handoff.note) == ("ann@example.com", "Ann", "Car brakes?")
    assert await db(Handoff.objects.count)() == 1

    (recipients, mail), *rest = await sync_to_async(inbox.wait)(1)
    assert sorted(recipients) == ["hello@petalandstem.example", "owner@petal.example"]
    body = mail.get_body().get_content()
    assert "Car brakes?" in body and "ann@example.com" in body
    assert "Customer" in body and "Can you fix my car's brakes?" in body  # the transcript
    assert "I can't help with that here, but our team can." in body  # the off-topic answer
    assert f"https://bot.example.com/admin/widget/handoff/{handoff.pk}/change/" in body
    await asyncio.sleep(0.3)
    assert rest == [] and len(inbox.received) == 1  # the re-sent frame sent no second email
    await db(handoff.refresh_from_db)()
    assert handoff.notified is not None and handoff.notify_attempts == 1


@pytest.mark.parametrize(
    "fields, code, field",
    [
        ({"email": "not an address", "note": "q"}, "invalid", "email"),
        ({"email": "ann@example.com\r\nBcc: victim@example.com", "note": "q"}, "invalid", "email"),
        ({"email": "ann@example.com, victim@example.com", "note": "q"}, "invalid", "email"),
        ({"email": '"a\\nb"@example.com', "note": "q"}, "invalid", "email"),
        (
            {"email": "ann@example.com", "name": "Ann\nBcc: victim@example.com", "note": "q"},
            "invalid",
            "name",
        ),  # fmt: skip
        ({"email": "ann@example.com", "name": "Ann\u2028X", "note": "q"}, "invalid", "name"),
        ({"phone": "609 555 0142", "note": "q"}, "invalid", "phone"),  # no call-backs here
        ({"note": "q"}, "invalid", "email"),
        ({"email": "ann@example.com", "note": "  "}, "invalid", "note"),
        ({"email": "ann@example.com", "note": "x" * 1001}, "too_long", None),
        ({"email": "ann@example.com", "note": ["q"]}, "bad_request", None),
    ],
)
async def test_bad_requests_are_refused_with_a_sentence_and_nothing_is_stored(
    demo_shop, fields, code, field
):
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        error = await leave(chat, id="h1", **fields)
        assert error["type"] == "error" and error["code"] == code and error["id"] == "h1"
        assert error["message"].endswith(".")
        assert error.get("field") == field
        await chat.send({"type": "ping"})  # the connection stays usable
        assert (await chat.recv())["type"] == "pong"
    assert await db(Handoff.objects.count)() == 0


async def test_phone_call_backs_when_the_shop_accepts_them(demo_shop, shop_open):
    await db(Shop.objects.filter(pk=demo_shop.pk).update)(
        phone_callbacks=True, reply_time="two hours"
    )
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        saved = await leave(chat, phone="+1 (609) 555-0142", note="Call me about a wedding")
        bad = await leave(chat, phone="call me maybe", note="q")
    assert saved["type"] == "handoff_saved"
    assert "+1 (609) 555-0142" in saved["message"] and "two hours" in saved["message"]
    assert bad["code"] == "invalid" and bad["field"] == "phone"


async def test_requests_are_rate_limited_per_conversation_and_per_address(demo_shop, settings):
    settings.HANDOFFS_PER_CONVERSATION_PER_HOUR = 2
    settings.HANDOFFS_PER_ADDRESS_PER_HOUR = 3
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        for n in range(2):
            assert (await leave(chat, email=f"a{n}@example.com", note="q"))["type"] == (
                "handoff_saved"
            )
        refused = await leave(chat, email="a9@example.com", note="q")
    assert refused["code"] == "rate_limited" and refused["message"]
    # The same address from fresh conversations: 2 more fit under 3 an hour, then refused.
    frames = await leave_in_new_chats(demo_shop, ["a0@example.com"] * 3)
    assert outcomes(frames) == [SAVED, SAVED, LIMITED]
    assert await db(Handoff.objects.count)() == 4


async def test_an_address_in_another_case_is_the_same_address(demo_shop, settings):
    settings.HANDOFFS_PER_ADDRESS_PER_HOUR = 2
    emails = ["Ann@Example.com", "ann@example.com", "ANN@example.COM"]
    assert outcomes(await leave_in_new_chats(demo_shop, emails)) == [SAVED, SAVED, LIMITED]
    assert await db(Handoff.objects.count)() == 2


async def test_hand_offs_count_against_the_addresss_rate_across_conversations(demo_shop, settings):
    """One client leaving requests from fresh conversations, each with a new email address (the
    attack that saved 558 requests in 15 s): the per-address rate of asks stops it."""
    settings.CHAT_ASKS_PER_IP_PER_MINUTE = 3
    emails = [f"x{n}@example.com" for n in range(4)]
    frames = await leave_in_new_chats(demo_shop, emails, "192.0.2.9")
    assert outcomes(frames) == [SAVED, SAVED, SAVED, LIMITED]
    assert frames[-1]["id"] and frames[-1]["message"] == (
        "Too many messages from your network right now; please wait a minute."
    )
    assert await db(Handoff.objects.count)() == 3


async def test_talk_to_a_person_before_any_question_starts_the_conversation(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        saved = await leave(chat, email="ann@example.com", note="Do you do weddings?")
    handoff = await db(Handoff.objects.select_related("conversation").get)(pk=saved["handoff"])
    assert str(handoff.conversation.pk) == ready["conversation"]


# --- Email failures ---------------------------------------------------------------------------


async def test_mail_server_down_the_request_is_saved_retried_and_shown_to_the_owner(
    demo_shop, smtp_port
):
    client = await owner_client(demo_shop)
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        saved = await leave(chat, email="ann@example.com", note="Anyone there?")
    assert saved["type"] == "handoff_saved"  # the chat never waits on the mail server

    def attempts() -> Handoff:
        return Handoff.objects.get(pk=saved["handoff"])

    await sync_to_async(wait_for)(lambda: attempts().notify_attempts == 2)  # both tries failed
    handoff = await db(attempts)()
    assert handoff.notified is None and "Connection refused" in handoff.notify_error

    page = await db(client.get)(reverse("admin:widget_handoff_changelist"))
    assert b"failed, 2 attempt(s)" in page.content
    page = await db(client.get)(reverse("admin:widget_handoff_change", args=[handoff.pk]))
    assert b"The email about it failed" in page.content and b"Connection refused" in page.content

    # The mail server is back: the cron command sends it once its pause is over.
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        await sync_to_async(time.sleep)(0.5)
        await sync_to_async(call_command)("send_handoff_emails")
        received = await sync_to_async(handler.wait)(1)
    finally:
        controller.stop()
    assert "Anyone there?" in received[0][1].get_body().get_content()
    handoff = await db(attempts)()
    assert handoff.notified is not None and handoff.notify_error == ""
    assert handoff.notify_attempts == 3


# --- The owner answers ------------------------------------------------------------------------


async def test_owner_reply_reaches_the_open_socket_the_history_and_the_customers_mailbox(
    demo_shop, inbox
):
    client = await owner_client(demo_shop)
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        await chat.ask("Can you fix my car's brakes?", "a1")
        saved = await leave(chat, email="ann@example.com", note="Car brakes?")
        await sync_to_async(inbox.wait)(1)  # the owner's email
        url = reverse("admin:widget_handoff_change", args=[saved["handoff"]])
        page = await db(client.get)(url)
        assert b"Car brakes?" in page.content and b"Can you fix my car" in page.content
        response = await db(client.post)(
            url, {"action": "reply", "text": "No, but Joe's Garage on Main St can."}
        )
        assert response.status_code == 302
        live = await chat.recv()  # no reload: pushed through the conversation's group
    assert live["type"] == "shop_message" and live["text"] == "No, but Joe's Garage on Main St can."

    async with Chat(demo_shop.public_key, f"conversation={ready['conversation']}") as chat:
        history = (await chat.ready())["history"]
    assert history[-1] == {
        "role": "shop",
        "id": history[-1]["id"],
        "text": "No, but Joe's Garage on Main St can.",
        "message": live["message"],
    }
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert handoff.status == Handoff.ANSWERED and handoff.answered is not None

    received = await sync_to_async(inbox.wait)(2)
    recipients, mail = received[1]
    assert recipients == ["ann@example.com"]
    assert mail["Reply-To"] == "hello@petalandstem.example"
    assert "Joe's Garage" in mail.get_body().get_content()

    await db(client.post)(url, {"action": "close"})
    assert (await db(Handoff.objects.get)(pk=handoff.pk)).status == Handoff.CLOSED
    message = await db(Message.objects.get)(pk=live["message"])
    assert message.role == Message.SHOP


async def test_the_owners_reply_goes_to_the_requests_own_address_and_quotes_no_stranger(
    demo_shop, inbox
):
    """Issue 28: anyone can type someone else's address into the chat, and the reply email
    quoted the note: the shop's mail carried a stranger's words to that address. The reply goes
    to the address saved with the request answered (normalised: the domain in lower case), not
    to another address of the conversation, and carries the owner's words only."""
    client = await owner_client(demo_shop)
    lure = "You won a prize! Claim it at http://evil.example/claim before Friday."
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        saved = await leave(chat, email="  Victim@Mail.EXAMPLE ", note=lure)
        await leave(chat, email="someone@else.example", note="Do you deliver?")
        await sync_to_async(inbox.wait)(2)  # the owner's two emails
        url = reverse("admin:widget_handoff_change", args=[saved["handoff"]])
        response = await db(client.post)(
            url, {"action": "reply", "text": "We never sent that; please ignore it."}, follow=True
        )
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert handoff.email == "Victim@mail.example"
    assert "emailed to Victim@mail.example" in response.content.decode()
    recipients, mail = (await sync_to_async(inbox.wait)(3))[2]
    assert recipients == ["Victim@mail.example"]
    body = mail.get_body().get_content()
    assert "We never sent that; please ignore it." in body
    assert "evil.example" not in body and "prize" not in body


def test_the_reply_email_is_queued_a_down_mail_server_loses_nothing_and_the_owner_sees_its_state(
    demo_shop, smtp_port
):
    """The reply's email is a job queued with the reply (here it runs at commit, its retry on a
    thread after its pause): the owner's click never waits on the mail server. With the server
    down the reply is in the chat, the email is tried HANDOFF_EMAIL_TRIES (2) times and shown
    failed with the server's words; once the server is back, "Email it again" sends it."""
    owner = make_owner(demo_shop, "owner", "owner@petal.example")
    client = Client()
    client.force_login(owner)
    conversation = stored_conversation(demo_shop, [("Can you fix my car?", {"mode": "fallback"})])
    handoff = make_handoff(conversation, email="ann@example.com", note="Car brakes?")
    url = reverse("admin:widget_handoff_change", args=[handoff.pk])
    text = "No, but Joe's Garage on Main St can."
    page = client.post(url, {"action": "reply", "text": text}, follow=True).content.decode()
    assert "Reply saved and shown in the chat; it is being emailed to ann@example.com" in page
    reply = Message.objects.get(conversation=conversation, role=Message.SHOP)
    assert reply.text == text and reply.email_queued is not None

    wait_for(lambda: Message.objects.get(pk=reply.pk).email_attempts == 2)  # both tries failed
    reply.refresh_from_db()
    assert reply.emailed is None and "Connection refused" in reply.email_error
    handoff.refresh_from_db()
    assert handoff.status == Handoff.ANSWERED  # the reply stands: only its email failed
    page = client.get(url).content.decode()
    assert "the email to ann@example.com failed</strong> (attempts: 2)" in page
    assert "Connection refused" in page and "Email it again" in page

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        client.post(url, {"action": "email_reply", "message": reply.pk})
        ((recipients, mail),) = handler.wait(1)
    finally:
        controller.stop()
    assert recipients == ["ann@example.com"] and text in mail.get_body().get_content()
    reply.refresh_from_db()
    assert reply.emailed is not None and reply.email_error == "" and reply.email_attempts == 3
    page = client.get(url).content.decode()
    assert "emailed to ann@example.com on" in page and "Email it again" not in page


@pytest.fixture
def two_shops(db, demo_shop):
    other = Shop.objects.create(name="Thorn & Twig", contact_email="t@thorn.example")
    alice = make_owner(demo_shop, "alice")
    bob = make_owner(other, "bob")
    conv_a = demo_shop.conversations.create()
    conv_b = other.conversations.create()
    old = make_handoff(conv_a, email="x@example.com", note="answered one")
    old.reply("done")
    mine = make_handoff(conv_a, email="y@example.com", note="open one")
    theirs = make_handoff(conv_b, email="z@example.com", note="thorn question")
    return type("Shops", (), dict(alice=alice, bob=bob, mine=mine, theirs=theirs, old=old))


def test_inbox_lists_open_requests_first_and_another_shops_request_is_404(two_shops, client):
    client.force_login(two_shops.alice)
    page = client.get(reverse("admin:widget_handoff_changelist"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "open one" in text and "answered one" in text and "thorn question" not in text
    assert text.index("open one") < text.index("answered one")
    theirs = reverse("admin:widget_handoff_change", args=[two_shops.theirs.pk])
    assert client.get(theirs).status_code == 404
    assert client.post(theirs, {"action": "reply", "text": "hi"}).status_code == 404
    assert not Message.objects.filter(text="hi").exists()
    # The admin index links the inbox.
    assert reverse("admin:widget_handoff_changelist") in client.get(reverse("admin:index")).text


# --- Live take-over ---------------------------------------------------------------------------


async def test_live_take_over_both_ways_and_handing_back(demo_shop):
    client = await owner_client(demo_shop)
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        assert ready["person"] is False
        saved = await leave(chat, email="ann@example.com", note="Is anyone there?")
        page = reverse("admin:widget_handoff_change", args=[saved["handoff"]])
        live = reverse("admin:widget_handoff_live", args=[saved["handoff"]])

        await db(client.post)(page, {"action": "takeover"})
        assert await chat.recv() == {"type": "person", "present": True}
        # The customer writes: stored for the owner, not answered by the bot.
        await chat.send({"type": "ask", "id": "q1", "text": "Do you deliver to Princeton?"})
        assert await chat.recv() == {"type": "received", "id": "q1"}
        polled = (await db(client.get)(live, {"after": 0})).json()
        assert polled["person"] is True
        assert [m["text"] for m in polled["messages"]] == ["Do you deliver to Princeton?"]
        after = polled["messages"][-1]["id"]
        # The owner writes back from the live panel.
        sent = (await db(client.post)(f"{live}?after={after}", {"text": "Yes, $19.95."})).json()
        assert [(m["role"], m["text"]) for m in sent["messages"]] == [("shop", "Yes, $19.95.")]
        frame = await chat.recv()
        assert (frame["type"], frame["text"]) == ("shop_message", "Yes, $19.95.")
        assert not await db(Message.objects.filter(role=Message.BOT).exists)()
        assert (await db(Handoff.objects.get)(pk=saved["handoff"])).status == Handoff.ANSWERED

        await db(client.post)(page, {"action": "handback"})
        assert await chat.recv() == {"type": "person", "present": False}
        _, answer = await chat.ask("Do you deliver to Princeton?", "q2")
        assert answer["mode"] == "faq"
    # A reload while taken over says so in `ready`.
    await db(client.post)(page, {"action": "takeover"})
    async with Chat(demo_shop.public_key, f"conversation={ready['conversation']}") as chat:
        again = await chat.ready()
    assert again["person"] is True
    assert [h["role"] for h in again["history"]] == ["user", "shop", "user", "bot"]


async def test_any_live_conversation_is_taken_over_from_its_own_page(demo_shop):
    """No customer request: the owner takes the chat over from the conversation's page."""
    client = await owner_client(demo_shop)
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        await chat.ask("Do you deliver to Princeton?", "q1")
        page = reverse("admin:widget_conversation_change", args=[ready["conversation"]])
        live = reverse("admin:widget_conversation_live", args=[ready["conversation"]])
        html = (await db(client.get)(page)).content.decode()
        assert "Take over the chat" in html and f'data-url="{live}"' in html
        assert "appears in their open chat at once, and is not emailed" in html

        response = await db(client.post)(page, {"action": "takeover"})
        assert response.status_code == 302
        assert await chat.recv() == {"type": "person", "present": True}
        await chat.send({"type": "ask", "id": "q2", "text": "Can I pay on delivery?"})
        assert await chat.recv() == {"type": "received", "id": "q2"}
        polled = (await db(client.get)(live, {"after": 0})).json()
        assert polled["person"] is True
        assert [m["text"] for m in polled["messages"]][-1] == "Can I pay on delivery?"
        sent = (await db(client.post)(live, {"text": "Yes, cash or card."})).json()
        assert sent["messages"][-1]["text"] == "Yes, cash or card."
        frame = await chat.recv()
        assert (frame["type"], frame["text"]) == ("shop_message", "Yes, cash or card.")
        assert not await db(Handoff.objects.exists)()

        await db(client.post)(page, {"action": "handback"})
        assert await chat.recv() == {"type": "person", "present": False}
    # Another shop's owner reaches neither the page nor its live panel.
    other = await db(Shop.objects.create)(name="Other shop")
    stranger = await db(make_owner)(other, "stranger", "s@other.example")
    await db(client.force_login)(stranger)
    assert (await db(client.post)(page, {"action": "takeover"})).status_code in (302, 404)
    assert (await db(client.post)(live, {"text": "hi"})).status_code in (403, 404)


async def test_a_take_over_runs_out_after_the_idle_timeout(demo_shop):
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        await leave(chat, email="ann@example.com", note="hello?")
    conversation = await db(Conversation.objects.get)(pk=ready["conversation"])
    await db(conversation.take_over)()
    async with Chat(demo_shop.public_key, f"conversation={ready['conversation']}") as chat:
        assert (await chat.ready())["person"] is True
        assert await chat.recv() == {"type": "person", "present": True}
        await db(Conversation.objects.filter(pk=conversation.pk).update)(
            person_until=timezone.now() - timedelta(seconds=1)
        )
        await chat.send({"type": "ask", "id": "q1", "text": "Do you deliver to Princeton?"})
        assert await chat.recv() == {"type": "person", "present": False}
        frame = await chat.recv()
        assert frame["type"] == "answer" and frame["id"] == "q1"


@pytest.mark.django_db
def test_the_owners_transcript_says_it_starts_mid_conversation_and_shows_what_was_offered(
    demo_shop,
):
    conversation = Conversation.objects.create(shop=demo_shop)
    for n in range(handoff_email.TRANSCRIPT_MESSAGES + 3):
        Message.objects.create(conversation=conversation, role="user", ask_id=f"a{n}", text=f"q{n}")
    Message.objects.create(
        conversation=conversation,
        role="bot",
        ask_id="a44",
        text="I'm not sure about that one.",
        mode="fallback",
        suggestions=[{"id": 1, "question": "Do you deliver?"}, {"id": 2, "question": "Refunds?"}],
    )
    handoff = make_handoff(conversation, email="a@b.example", note="hi")
    text = handoff_email.transcript(handoff)
    assert text.startswith("(4 earlier messages not shown: the whole conversation is on")
    assert ": q3\n" not in text and ": q4\n" in text and ": q42\n" in text
    assert "Did you mean: Do you deliver? | Refunds?" in text


@pytest.mark.django_db
def test_a_shop_name_ending_in_s_gets_no_possessive_in_the_owners_texts():
    """ "Bikes's chat" read wrong: the owner's email and Claude's rules name the shop without
    a possessive."""
    from widget.chat import claude

    shop = Shop.objects.create(name="Bikes", contact_email="team@bikes.example")
    conversation = Conversation.objects.create(shop=shop)
    handoff = make_handoff(conversation, email="a@b.example", note="hi", name="Ann")
    body = handoff_email.owner_email(handoff, ["team@bikes.example"]).body
    rules = claude.system_prompt(shop)[0]["text"]
    for text in (body, rules):
        assert "Bikes's" not in text and "Bikes'" not in text
    assert body.startswith("Ann asked for a person in the chat of Bikes")
    assert "the FAQ entries of Bikes" in rules
