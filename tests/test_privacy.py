"""A customer's data: erased (`forget_customer`, the customer requests admin's action), exported
(`export_customer`), deleted after the retention (`purge_conversations`, per shop), and the
shop's privacy notice in the `ready` frame.

Real PostgreSQL and the real embedding model throughout. After an erasure the test reads every
text, JSON and binary column of every table in the database for the customer's words, so
nothing the models might forget can hide.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as db
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from faq import embedding
from faq.models import FAQEntry, FAQVector, SearchIndex, Shop
from lib import ratelimit
from tests.support import Chat, make_demo_shop, make_handoff, make_owner, stored_conversation
from widget.models import Conversation, CustomerWording, Handoff, Message

HOURS = "What are your opening hours?"


# --- Every column that could hold a customer's words --------------------------------------------


def columns_holding(*needles: str) -> list[str]:
    """Every "table.column" of the database whose text, JSON, array or binary value contains one
    of `needles` (any case; binary values as written, in UTF-8)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'bytea')"
        )
        found = []
        for table, column, kind in cursor.fetchall():
            for needle in needles:
                if kind == "bytea":  # the search index: its words in UTF-8
                    where, params = f"position(%s in {quote(column)}) > 0", [needle.encode()]
                else:
                    where, params = f"{quote(column)}::text ILIKE %s", [f"%{needle}%"]
                cursor.execute(f"SELECT count(*) FROM {quote(table)} WHERE {where}", params)
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column} ({needle})")
    return sorted(found)


# --- Two customers' data ------------------------------------------------------------------------


def conversation(shop: Shop, *turns, days_ago: float = 0, page: str = "https://shop.example/"):
    """A conversation of customer questions and bot answers: each turn is (question, answer
    mode, feedback); a fallback or a thumbs-down makes the question unanswered."""
    answers = [
        (question, {"mode": mode, "confident": mode != Message.FALLBACK, "feedback": feedback})
        for question, mode, feedback in turns
    ]
    return stored_conversation(shop, answers, page=page, days_ago=days_ago)


def click(talk: Conversation, question: Message, entry: FAQEntry) -> CustomerWording | None:
    """The customer clicks "did you mean" `entry` offered for `question` (as the pipeline's
    record_click stores it)."""
    Message.objects.create(
        conversation=talk,
        role="user",
        ask_id=f"click-{question.pk}",
        text=entry.question,
        entry=entry,
        suggested_for=question,
    )
    return CustomerWording.record(entry, question.text)


def embed_unanswered(shop: Shop) -> None:
    """Store the unanswered questions' embeddings, as the owner's "Unanswered questions" does
    when it groups them (the real model)."""
    questions = list(Message.objects.unanswered(shop).filter(embedding__isnull=True))
    for question, vector in zip(
        questions, embedding.embed([q.text for q in questions]), strict=True
    ):
        question.embedding = vector
        question.save(update_fields=["embedding"])


@pytest.fixture
def world(db, demo_texts_embedded, django_capture_on_commit_callbacks):
    """Ann and Bob, customers of the demo shop; Ann also of a second shop. Every kind of thing a
    customer leaves: requests (email, phone), conversations with feedback, unanswered questions
    with embeddings, "did you mean" wordings (new, shared with Bob, accepted by the owner), a
    phrasing the owner wrote from her unanswered question, an admin log line."""
    shop = make_demo_shop(demo_texts_embedded, name="Petal & Stem")
    other_shop = Shop.objects.create(name="Thorn & Twig")
    hours = shop.entries.get(question=HOURS)
    delivery = shop.entries.exclude(pk=hours.pk).first()
    root = User.objects.create_superuser("root", "root@example.com", None)

    # Ann: a request by email, with a question the FAQ did not answer and a thumbs-down.
    ann1 = conversation(
        shop,
        ("Do you ship quokka orchids to Lisbon?", Message.FALLBACK, ""),
        ("quokka opening times please", Message.FAQ, "down"),
        ("what time do you open", Message.FAQ, "up"),
    )
    asked = {m.text: m for m in ann1.messages.filter(role="user")}
    click(ann1, asked["quokka opening times please"], hours)  # a new wording: only hers
    click(ann1, asked["what time do you open"], delivery)  # Bob says it too
    ann_request = make_handoff(
        ann1,
        email="Ann.Q@Example.COM",
        name="Annabel Quokka",
        note="Please call about the wombat bouquet",
    )
    LogEntry.objects.create(
        user=root,
        content_type=ContentType.objects.get_for_model(Handoff),
        object_id=str(ann_request.pk),
        object_repr=str(ann_request),
        action_flag=CHANGE,
        change_message="Replied",
    )
    # A request of hers a superuser deleted in the admin before: only its log line is left.
    LogEntry.objects.create(
        user=root,
        content_type=ContentType.objects.get_for_model(Handoff),
        object_id="999999",
        object_repr="ann.q@example.com: an earlier wombat question",
        action_flag=DELETION,
    )
    # Ann again, another day: a phone request, a wording the owner accepted, and her question
    # that the owner answered with a new entry from "Unanswered questions".
    ann2 = conversation(
        shop,
        ("quokka wreath for a funeral?", Message.FALLBACK, ""),
        ("numbat delivery slots", Message.FALLBACK, ""),
        days_ago=2,
    )
    make_handoff(ann2, phone="+44 20 7946 0018", note="numbat call back")
    with django_capture_on_commit_callbacks(execute=True):
        accepted = click(ann2, ann2.messages.get(text="numbat delivery slots"), delivery)
        accepted.accept()
        written = FAQEntry.objects.create(
            shop=shop,
            question="Do you make funeral wreaths?",
            answer="Yes, order two days ahead.",
            alternatives="quokka wreath for a funeral?\nsympathy wreaths",
        )
        ann2.messages.filter(text="quokka wreath for a funeral?").update(resolved_by=written)
    # Ann's email in a message of a conversation where she left no request.
    ann3 = conversation(shop, ("it's ann.q@example.com, did my order ship?", Message.FAQ, ""))
    # Ann in another shop.
    ann_elsewhere = conversation(other_shop, ("quokka pruning shears?", Message.FALLBACK, ""))
    make_handoff(ann_elsewhere, email="ann.q@example.com", note="shears")

    # Bob: the same kinds of things, which must all stay.
    bob1 = conversation(
        shop,
        ("Do you ship capybara orchids to Porto?", Message.FALLBACK, "down"),
        ("what time do you open", Message.FAQ, "up"),
    )
    click(bob1, bob1.messages.get(text="what time do you open"), delivery)
    make_handoff(
        bob1, email="bob.capybara@example.com", phone="+1 555 0100 200", note="capybara bouquet"
    )
    # Bob wrote an address that contains Ann's: not hers.
    bob2 = conversation(shop, ("write to jo.ann.q@example.com.au please", Message.FAQ, ""))
    embed_unanswered(shop)
    embed_unanswered(other_shop)
    return type(
        "World",
        (),
        dict(
            shop=shop,
            other_shop=other_shop,
            hours=hours,
            delivery=delivery,
            written=written,
            root=root,
            ann=[ann1, ann2, ann3],
            ann_elsewhere=ann_elsewhere,
            bob=[bob1, bob2],
        ),
    )


# Her address is also inside Bob's "jo.ann.q@example.com.au", which is not hers: it is found
# as written in her message ("it's ann…") and checked in the requests' columns on its own.
ANN_WORDS = ("quokka", "numbat", "wombat", "it's ann.q@example.com", "Annabel", "7946")


def ann_requests_left() -> int:
    return Handoff.objects.filter(email__iexact="ann.q@example.com").count()


def bob_is_intact(world) -> None:
    bob1, bob2 = world.bob
    assert bob1.messages.count() == 5 and bob2.messages.count() == 2
    assert bob1.messages.filter(feedback="down").exists()
    assert bob1.messages.filter(embedding__isnull=False).count() == 1
    assert Handoff.objects.filter(email="bob.capybara@example.com").count() == 1
    shared = CustomerWording.objects.get(entry=world.delivery, key="what time do you open")
    assert shared.count == 1  # Ann's click taken off, Bob's kept
    for word in ("capybara", "bob.capybara@example.com"):
        assert columns_holding(word)


# --- Erasure ------------------------------------------------------------------------------------


def test_the_world_holds_ann_everywhere_before(world):
    """The test below is only as good as this: Ann's words are in every place it checks."""
    held = columns_holding(*ANN_WORDS)
    for place in (
        "widget_message.text (quokka)",
        "widget_message.text (it's ann.q@example.com)",
        "widget_handoff.name (Annabel)",
        "widget_handoff.note (wombat)",
        "widget_handoff.phone (7946)",
        "widget_customerwording.text (quokka)",
        "widget_customerwording.key (quokka)",
        "faq_faqentry.alternatives (numbat)",
        "faq_faqentry.alternatives (quokka)",
        "faq_faqvector.text (numbat)",
        "faq_searchindex.data (numbat)",
        "django_admin_log.object_repr (wombat)",
    ):
        assert place in held
    assert Message.objects.filter(conversation__in=world.ann, embedding__isnull=False).count() == 3
    assert ann_requests_left() == 2


def test_forget_customer_erases_everything_of_theirs_and_nothing_else(
    world, django_capture_on_commit_callbacks
):
    out = io.StringIO()
    call_command("forget_customer", "ann.q@example.com", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Would erase for ann.q@example.com:")
    assert Conversation.objects.filter(pk=world.ann[0].pk).exists()  # nothing went

    out = io.StringIO()
    # The email in another case; every shop.
    with django_capture_on_commit_callbacks(execute=True):
        call_command("forget_customer", "ANN.Q@example.com", stdout=out)
    printed = out.getvalue()
    assert printed.startswith("Erased for ANN.Q@example.com:\n")
    # ann1, ann3 and the other shop's (ann2 has her phone only).
    for line in (
        "conversations: 3",
        "messages: 12",
        "customer requests: 2",
        "feedback (thumbs): 2",
        "question embeddings: 3",
        "customer wordings: 1",
        "customer wordings (count lowered): 1",
        "admin log entries: 2",
    ):
        assert f"  {line}\n" in printed
    assert not columns_holding("wombat", "Annabel", "it's ann.q@example.com")
    assert ann_requests_left() == 0
    bob_is_intact(world)

    # The phone number, written otherwise than she gave it.
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("forget_customer", "+442079460018", stdout=out)
    printed = out.getvalue()
    assert "  conversations: 1\n" in printed and "  customer requests: 1\n" in printed
    assert "  FAQ phrasings: 2\n" in printed  # the accepted wording, the written phrasing
    assert "  question embeddings: 1\n" in printed

    # Nothing of Ann's anywhere, in any table; Bob's all there.
    assert columns_holding(*ANN_WORDS) == []
    assert not Conversation.objects.filter(pk__in=[c.pk for c in world.ann]).exists()
    assert not Handoff.objects.filter(note__icontains="numbat").exists()
    world.written.refresh_from_db()
    assert world.written.alternative_list == ["sympathy wreaths"]
    assert SearchIndex.objects.filter(shop=world.shop).exists()  # rebuilt, without her words
    assert not FAQVector.objects.filter(text__icontains="quokka").exists()
    assert not Message.objects.unanswered(world.shop).filter(text__icontains="quokka").exists()
    bob_is_intact(world)

    out = io.StringIO()
    call_command("forget_customer", "ann.q@example.com", stdout=out)
    assert out.getvalue() == "Nothing stored for ann.q@example.com.\n"


def test_forget_customer_in_one_shop_and_bad_input(world):
    out = io.StringIO()
    call_command("forget_customer", "ann.q@example.com", "--shop", world.other_shop.pk, stdout=out)
    assert "  conversations: 1\n" in out.getvalue()
    assert not Conversation.objects.filter(pk=world.ann_elsewhere.pk).exists()
    assert Conversation.objects.filter(pk=world.ann[0].pk).exists()  # the other shop's stays

    # A phone number written in a message, spaced otherwise: found; a longer number: not.
    written = conversation(world.shop, ("call me on +44 (20) 7946-0018 today", Message.FAQ, ""))
    longer = conversation(world.shop, ("or +44 20 7946 00189", Message.FAQ, ""))
    customer = Conversation.objects.of_customer("+442079460018")
    assert set(customer.values_list("pk", flat=True)) == {world.ann[1].pk, written.pk}
    assert not Conversation.objects.of_customer("+44 20 7946 0018").filter(pk=longer.pk).exists()

    with pytest.raises(CommandError, match="neither an email address nor a phone number"):
        call_command("forget_customer", "ann")
    with pytest.raises(CommandError, match="no shop with id 999999"):
        call_command("forget_customer", "ann@example.com", "--shop", "999999")
    assert Conversation.objects.filter(pk=world.ann[0].pk).exists()


def test_owner_forgets_a_customer_from_the_requests_admin_in_their_own_shops_only(client, world):
    alice = make_owner(world.shop, "alice")
    bob_owner = make_owner(world.other_shop, "bob")
    changelist = reverse("admin:widget_handoff_changelist")
    ann_request = Handoff.objects.get(conversation=world.ann[0])
    form = {"action": "forget_customers", "_selected_action": [str(ann_request.pk)]}

    # Another shop's owner: the request is not theirs, nothing happens.
    client.force_login(bob_owner)
    client.post(changelist, form)
    client.post(changelist, {**form, "post": "yes"})
    assert Conversation.objects.filter(pk=world.ann[0].pk).exists()

    client.force_login(alice)
    page = client.post(changelist, form)  # first: what would go, and a confirmation
    assert page.status_code == 200
    assert "Ann.Q@Example.COM" in page.text and "2 conversations" in page.text
    assert Conversation.objects.filter(pk=world.ann[0].pk).exists()
    response = client.post(changelist, {**form, "post": "yes"}, follow=True)
    assert "Forgot 1 customer address(es): erased 2 conversations" in response.text
    assert "quokka" not in response.text.lower()
    assert not Conversation.objects.filter(pk__in=[world.ann[0].pk, world.ann[2].pk]).exists()
    # Her conversation in the other shop is not Alice's to erase.
    assert Conversation.objects.filter(pk=world.ann_elsewhere.pk).exists()
    bob_is_intact(world)


# --- Export -------------------------------------------------------------------------------------


def test_export_customer_writes_their_requests_and_conversations_as_json(world, tmp_path):
    out = io.StringIO()
    call_command("export_customer", "ann.q@example.com", "--shop", world.shop.pk, stdout=out)
    data = json.loads(out.getvalue())
    assert set(data) == {"address", "shop", "exported", "requests", "conversations"}
    assert (data["address"], data["shop"]) == ("ann.q@example.com", world.shop.pk)
    ann1, _, ann3 = world.ann
    assert data["requests"] == [
        {
            "conversation": str(ann1.pk),
            "created": data["requests"][0]["created"],
            "email": "Ann.Q@Example.COM",
            "phone": "",
            "name": "Annabel Quokka",
            "question": "Please call about the wombat bouquet",
            "status": "open",
            "answered": None,
        }
    ]
    assert [c["id"] for c in data["conversations"]] == [str(ann1.pk), str(ann3.pk)]
    first = data["conversations"][0]
    assert set(first) == {"id", "shop", "started", "page_url", "user_agent", "messages"}
    assert first["shop"] == "Petal & Stem" and first["page_url"] == "https://shop.example/"
    assert first["messages"][:2] == [
        {
            "time": first["messages"][0]["time"],
            "from": "customer",
            "text": "Do you ship quokka orchids to Lisbon?",
            "feedback": None,
        },
        {
            "time": first["messages"][1]["time"],
            "from": "bot",
            "text": "An answer to Do you ship quokka orchids to Lisbon?",
            "feedback": None,
        },
    ]
    assert "capybara" not in out.getvalue()

    target = tmp_path / "ann.json"
    err = io.StringIO()
    call_command("export_customer", "+44 (20) 7946-0018", "-o", str(target), stderr=err)
    assert "Wrote 1 requests and 1 conversations" in err.getvalue()
    saved = json.loads(target.read_text())
    assert saved["requests"][0]["phone"] == "+44 20 7946 0018"
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_customer", "ann.q@example.com", "-o", str(tmp_path / "no/x"))


# --- Retention ----------------------------------------------------------------------------------


def test_purge_conversations_honours_a_shops_shorter_retention(world, settings):
    shop, other = world.shop, world.other_shop
    shop.retention_days = 10
    shop.save()
    old_here = conversation(shop, ("ten days is too long", Message.FAQ, ""), days_ago=15)
    request = make_handoff(old_here, email="x@example.com")
    old_there = conversation(other, ("fifteen days is fine", Message.FAQ, ""), days_ago=15)
    ancient = conversation(other, ("older than the site keeps", Message.FAQ, ""), days_ago=200)
    CustomerWording.objects.filter(entry=world.hours).update(
        last_seen=timezone.now() - timedelta(days=15)
    )
    theirs = FAQEntry.objects.create(shop=other, question="Sharpen?", answer="Yes.")
    CustomerWording.objects.create(
        entry=theirs, text="blades", key="blades", last_seen=timezone.now() - timedelta(days=15)
    )

    out = io.StringIO()
    call_command("purge_conversations", "--dry-run", stdout=out)
    assert out.getvalue().startswith(
        "Would delete 2 conversations (4 messages, 1 customer requests) (older than 180 days, "
        "10 days in Petal & Stem, at "
    )
    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    assert "Deleted 2 conversations (4 messages, 1 customer requests)" in out.getvalue()
    assert "and 1 customer wordings not clicked within them" in out.getvalue()
    assert not Conversation.objects.filter(pk__in=[old_here.pk, ancient.pk]).exists()
    assert not Handoff.objects.filter(pk=request.pk).exists()  # it follows its conversation
    assert Conversation.objects.filter(pk=old_there.pk).exists()
    assert CustomerWording.objects.filter(entry=theirs).exists()
    assert Conversation.objects.filter(pk=world.ann[1].pk).exists()  # 2 days old

    # The site keeps conversations forever: the shop's own retention still applies.
    settings.CONVERSATION_RETENTION_DAYS = 0
    again = conversation(shop, ("still too old", Message.FAQ, ""), days_ago=11)
    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    assert "Deleted 1 conversations" in out.getvalue()
    assert not Conversation.objects.filter(pk=again.pk).exists()
    shop.retention_days = None
    shop.save()
    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    assert "kept forever" in out.getvalue()


@pytest.mark.django_db
def test_shop_retention_and_notice_are_validated(settings):
    shop = Shop(name="Fern")
    shop.retention_days = 365
    shop.privacy_notice = "We keep chats\nfor a while"
    shop.privacy_url = "javascript:alert(1)"
    with pytest.raises(ValidationError) as error:
        shop.full_clean()
    assert set(error.value.message_dict) == {"retention_days", "privacy_notice", "privacy_url"}
    assert "At most 180 days" in error.value.message_dict["retention_days"][0]

    shop.privacy_notice, shop.privacy_url = "", "https://fern.example/privacy"
    with pytest.raises(ValidationError, match="Write the sentence"):
        shop.full_clean()

    shop.retention_days, shop.privacy_notice = 0, "We keep this chat for 30 days."
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        shop.full_clean()
    shop.retention_days = 30
    shop.full_clean()
    settings.CONVERSATION_RETENTION_DAYS = 0  # the site keeps them forever: any number of days
    shop.retention_days = 3650
    shop.full_clean()
    assert shop.privacy_notice_frame() == {
        "text": "We keep this chat for 30 days.",
        "url": "https://fern.example/privacy",
    }


# --- The notice in the widget's `ready` frame ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_ready_frame_carries_the_privacy_notice(demo_shop, settings):
    settings.ANTHROPIC_API_KEY, settings.REDIS_URL = "", ""
    ratelimit.reset_memory()
    async with Chat(demo_shop.public_key) as chat:
        assert (await chat.ready())["bot"]["privacy"] is None
    demo_shop.privacy_notice = "We keep this chat for 90 days."
    demo_shop.privacy_url = "https://petal.example/privacy"
    await db(demo_shop.save)()
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
    assert ready["bot"]["privacy"] == {
        "text": "We keep this chat for 90 days.",
        "url": "https://petal.example/privacy",
    }
    # Connecting stores nothing (the notice is shown before anything is sent).
    assert not await db(Conversation.objects.filter(shop=demo_shop).exists)()
    ratelimit.reset_memory()


# --- Through the real chat ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_customer_who_chatted_and_left_a_request_is_forgotten_entirely(demo_shop, settings):
    """What the real consumer and pipeline store (whatever that is, now or later) is gone."""
    settings.ANTHROPIC_API_KEY, settings.REDIS_URL = "", ""
    ratelimit.reset_memory()
    async with Chat(demo_shop.public_key, "page=https://petal.example/axolotl") as chat:
        await chat.ready()
        _, answer = await chat.ask("Can you repair my axolotl aquarium?")
        assert answer["mode"] == "fallback"
        await chat.send({"type": "feedback", "message": answer["message"], "value": "down"})
        assert (await chat.recv())["type"] == "feedback_saved"
        await chat.send(
            {
                "type": "handoff",
                "id": "h1",
                "email": "ax@example.com",
                "name": "Axel Otl",
                "note": "axolotl tank",
            }
        )
        assert (await chat.recv())["type"] == "handoff_saved"
    assert await db(columns_holding)("axolotl", "ax@example.com")
    out = io.StringIO()
    await db(call_command)("forget_customer", "AX@example.com", stdout=out)
    assert "  conversations: 1\n" in out.getvalue()
    assert await db(columns_holding)("axolotl", "ax@example.com", "Axel") == []
    ratelimit.reset_memory()
