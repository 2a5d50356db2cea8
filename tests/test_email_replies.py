"""Replies by email (issue 31), end to end: the owner's email about a request carries
Reply-To: reply+TOKEN@INBOUND_EMAIL_DOMAIN; a reply piped into `manage.py receive_email` (in
process, and as a real subprocess) or sent to `manage.py mail_gateway` over SMTP reaches the
customer's open socket through the channel layer, the stored history and the customer's mailbox,
without the quoted message. Every refusal: forged, unknown, expired and closed tokens, another
shop's owner, a stranger (held for the owner), auto-replies and bounces, a 20 MB message, broken
MIME and bad encodings, a database outage. Real SMTP server on loopback (aiosmtpd), real
PostgreSQL, real channel layer (in memory in process; Redis across processes), no mocks."""

from __future__ import annotations

import email
import email.policy
import io
import logging
import re
import signal
import smtplib
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as db
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from faq.hours.models import ShopHours
from faq.models import Shop
from harness.daphne_process import ROOT, environment, free_port
from tests.support import (
    Chat,
    make_handoff,
    make_owner,
    require_redis,
    server_database_url,
    wait_for,
)
from widget import handoff_email
from widget.inbound_email import reply_of
from widget.models import Handoff, InboundEmail, Message
from widget.reply_text import html_to_text, strip_reply

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).parent / "email"
DOMAIN = "reply.example.com"
OWNER = "maria@petal.example"
REPLY = "Yes, we deliver to Princeton on Saturdays; delivery is $19.95.\n\nMaria"
QUESTION = "Do you deliver to Princeton on Saturdays?"


@pytest.fixture(autouse=True)
def replies_on(handoff_chat, settings):
    settings.INBOUND_EMAIL_DOMAIN = DOMAIN


def from_fixture(name: str, to: str, sender: str = OWNER) -> bytes:
    """A reply as a mail program writes it (tests/email/), sent to `to` from `sender`."""
    raw = (FIXTURES / name).read_bytes()
    return raw.replace(b"{{FROM}}", sender.encode()).replace(b"{{TO}}", to.encode())


def plain_reply(to: str, sender: str = OWNER, text: str = "Saturday is fine.", **headers) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, "Re: your question"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@petal.example>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(f"{text}\n\nOn Mon, Dec 7, 2026 at 11:02 AM ShopBot wrote:\n> Ann asked\n")
    return message.as_bytes()


def pipe(raw: bytes | io.BytesIO, *args: str) -> int:
    """`manage.py receive_email` in this process; its exit status."""
    stream = raw if isinstance(raw, io.BytesIO) else io.BytesIO(raw)
    try:
        call_command("receive_email", *args, stdin=stream, stdout=io.StringIO())
    except CommandError as error:
        return error.returncode
    return 0


def request(shop: Shop, **fields) -> Handoff:
    conversation = shop.conversations.create()
    return make_handoff(conversation, **{"email": "ann@example.com", "note": QUESTION, **fields})


async def leave(chat: Chat, **fields) -> dict:
    await chat.send({"type": "handoff", "id": uuid.uuid4().hex, **fields})
    return await chat.recv()


# --- What is taken from a reply ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.eml")))
def test_each_mail_programs_reply_loses_its_quote_and_signature(name):
    raw = from_fixture(name, f"reply+x@{DOMAIN}")
    text, dropped = reply_of(email.message_from_bytes(raw, policy=email.policy.default))
    assert text == REPLY
    assert dropped == (["delivery-zones.pdf"] if "attachment" in name else [])


@pytest.mark.parametrize(
    "text, kept",
    [
        ("Yes.\n\n-----Original Message-----\nFrom: ShopBot\nAnn asked", "Yes."),
        (
            "Ja, gerne.\n\nAm 07.12.2026 um 11:02 schrieb ShopBot <bot@x.example>:\n> Ann",
            "Ja, gerne.",
        ),
        ("Oui.\n\nLe lun. 7 déc. 2026 à 11:02, ShopBot <bot@x.example> a écrit :\n> Ann", "Oui."),
        ("Yes.\n\nFrom: ShopBot <bot@x.example>\nSent: Monday\nTo: Maria\n\nAnn asked", "Yes."),
        ("Yes.\n-- \nMaria Lopez\nPetal & Stem", "Yes."),
        (
            "See below.\n> Do you deliver?\nYes, $19.95.\n> Saturdays?\nYes.",
            "See below.\nYes, $19.95.\nYes.",
        ),
        ("Yes.\n\nSent from my iPhone", "Yes."),
        # Outlook 2003's HTML, turned to text: "From:" alone, the sender on the next line.
        ("Yes.\n\nFrom:\nShopBot [mailto:bot@x.example]\n\nSent: Monday\nTo: Maria", "Yes."),
        ("> Ann asked\n> more", ""),
    ],
)
def test_plain_text_rules(text, kept):
    assert strip_reply(text) == kept


def test_outlook_com_html_reply_loses_the_quote_after_its_rule():
    # As Outlook.com (Hotmail) writes a reply: the quoted message after <hr id="stopSpelling">.
    html = (
        "<html><body class='hmmessage'><div dir='ltr'>Yes, Saturday is fine.<div><br></div>"
        '<div>Maria<br><br><div><hr id="stopSpelling">Date: Mon, 7 Dec 2026 11:02:00<br>'
        "Subject: Customer question<br>From: bot@shopbot.example<br><br><div>Ann asked Petal "
        "&amp; Stem's chat for a person</div></div></div></div></body></html>"
    )
    assert html_to_text(html) == "Yes, Saturday is fine.\n\nMaria"


# --- The owner's email and the feature switch -------------------------------------------------


def test_feature_off_no_reply_to_the_email_says_answer_in_the_admin(demo_shop, settings):
    settings.INBOUND_EMAIL_DOMAIN = ""
    handoff = request(demo_shop)
    mail = handoff_email.owner_email(handoff, [OWNER])
    assert mail.reply_to == [] and handoff.reply_address == ""
    assert "Answer it in the admin" in mail.body and "Reply to this email" not in mail.body
    assert pipe(plain_reply(f"reply+{handoff.reply_token}@{DOMAIN}")) == 67
    assert not Message.objects.exists()


def test_tokens_are_per_request_and_shop_and_unguessable(demo_shop):
    first, second = request(demo_shop), request(demo_shop)
    assert first.reply_token != second.reply_token
    assert Handoff.objects.by_reply_token(first.reply_token) == first
    assert Handoff.objects.by_reply_token(first.reply_token.upper()) == first  # case folded
    assert re.fullmatch(r"[0-9a-z]+-[0-9a-z]+-[a-z2-7]{24}", first.reply_token)


# --- A reply reaching the customer ------------------------------------------------------------


async def test_reply_piped_in_reaches_the_open_chat_the_history_and_the_customers_mailbox(
    demo_shop, inbox
):
    await db(make_owner)(demo_shop, "maria", OWNER)
    async with Chat(demo_shop.public_key) as chat:
        ready = await chat.ready()
        saved = await leave(chat, email="ann@example.com", name="Ann", note=QUESTION)
        ((_, owner_mail),) = await sync_to_async(inbox.wait)(1)
        reply_to = str(owner_mail["Reply-To"])
        assert re.fullmatch(rf"reply\+[0-9a-z]+-[0-9a-z]+-[a-z2-7]{{24}}@{DOMAIN}", reply_to)
        assert "Reply to this email to answer" in owner_mail.get_body().get_content()

        assert await sync_to_async(pipe)(from_fixture("gmail.eml", reply_to)) == 0
        live = await chat.recv()  # pushed through the conversation's channel-layer group
    assert live == {"type": "shop_message", "message": live["message"], "text": REPLY}

    async with Chat(demo_shop.public_key, f"conversation={ready['conversation']}") as chat:
        history = (await chat.ready())["history"]
    assert (history[-1]["role"], history[-1]["text"]) == ("shop", REPLY)
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert handoff.status == Handoff.ANSWERED and handoff.answered is not None
    row = await db(InboundEmail.objects.get)(handoff=handoff)
    assert (row.status, row.posted_id, row.sender) == (InboundEmail.POSTED, live["message"], OWNER)

    recipients, customer_mail = (await sync_to_async(inbox.wait)(2))[1]
    assert recipients == ["ann@example.com"]
    body = customer_mail.get_body().get_content().replace("\r\n", "\n")
    assert REPLY in body and "Ann asked" not in body

    # The MTA delivers the same message again: posted once.
    assert await sync_to_async(pipe)(from_fixture("gmail.eml", reply_to)) == 0
    assert await db(Message.objects.filter(role=Message.SHOP).count)() == 1


def test_attachments_are_dropped_and_the_owner_told(demo_shop, inbox):
    make_owner(demo_shop, "maria", OWNER)
    handoff = request(demo_shop)
    assert pipe(from_fixture("gmail_with_attachment.eml", handoff.reply_address)) == 0
    assert Message.objects.get(role=Message.SHOP).text == REPLY
    row = InboundEmail.objects.get()
    assert row.dropped_attachments == ["delivery-zones.pdf"]
    mails = inbox.wait(2)  # the customer's copy, and the note to the owner
    note = next(mail for rcpt, mail in mails if rcpt == [OWNER])
    assert "delivery-zones.pdf" in note.get_body().get_content()
    assert note["Auto-Submitted"] == "auto-replied"
    page = owner_page(demo_shop, handoff)
    assert "delivery-zones.pdf" in page and "Posted to the customer" in page


def owner_page(shop: Shop, handoff: Handoff) -> str:
    client = Client()
    client.force_login(shop.owners.first())
    return client.get(reverse("admin:widget_handoff_change", args=[handoff.pk])).content.decode()


# --- Refused, held, ignored -------------------------------------------------------------------


def notices(inbox, before: int = 0) -> list:
    return inbox.received[before:]


@pytest.mark.parametrize("case", ["forged", "unknown", "expired", "closed"])
def test_bad_tokens_post_nothing_and_the_sender_is_told_why(demo_shop, inbox, case, caplog):
    caplog.set_level(logging.INFO, "widget.inbound_email")
    make_owner(demo_shop, "maria", OWNER)
    handoff = request(demo_shop)
    token = handoff.reply_token
    if case == "forged":
        token = token[:-6] + ("aaaaaa" if not token.endswith("aaaaaa") else "bbbbbb")
    elif case == "unknown":
        token = "nonsense"
    elif case == "expired":
        handoff.conversation.delete()
    else:
        handoff.close()
    assert pipe(plain_reply(f"reply+{token}@{DOMAIN}")) == 0
    assert not Message.objects.exists() and not InboundEmail.objects.exists()
    ((recipients, notice),) = notices(inbox)
    assert recipients == [OWNER] and notice["Auto-Submitted"] == "auto-replied"
    assert "not posted" in notice.get_body().get_content()
    expected = {"forged": "unknown", "unknown": "unknown"}.get(case, case)
    assert f"refused: {expected} token" in caplog.text


def test_explanations_are_capped_per_address_no_backscatter(demo_shop, inbox, settings):
    settings.INBOUND_EMAIL_NOTICES_PER_HOUR = 2
    for n in range(4):
        raw = plain_reply(f"reply+forged-{n}-aaaa@{DOMAIN}", sender="victim@forged.example")
        assert pipe(raw) == 0
    assert [recipients for recipients, _ in inbox.received] == [["victim@forged.example"]] * 2
    assert pipe(plain_reply(f"reply+forged-9-aaaa@{DOMAIN}")) == 0  # another address: told
    assert inbox.received[-1][0] == [OWNER]


def test_another_shops_owner_is_refused_and_told(demo_shop, inbox):
    make_owner(demo_shop, "maria", OWNER)
    other = Shop.objects.create(name="Thorn & Twig", contact_email="t@thorn.example")
    make_owner(other, "bob", "bob@thorn.example")
    handoff = request(demo_shop)
    assert pipe(plain_reply(handoff.reply_address, sender="bob@thorn.example")) == 0
    assert not Message.objects.exists() and not InboundEmail.objects.exists()
    ((recipients, notice),) = notices(inbox)
    assert recipients == ["bob@thorn.example"]
    assert "a shop you are not an owner of" in notice.get_body().get_content()


def test_a_strangers_reply_is_held_for_the_owner_never_posted(demo_shop, inbox):
    make_owner(demo_shop, "maria", OWNER)
    handoff = request(demo_shop)
    raw = plain_reply(handoff.reply_address, sender="someone@elsewhere.example")
    assert pipe(raw) == 0
    held = InboundEmail.objects.get()
    assert (held.status, held.sender, held.text) == (
        InboundEmail.HELD,
        "someone@elsewhere.example",
        "Saturday is fine.",
    )
    assert not Message.objects.exists()
    ((recipients, note),) = notices(inbox)  # to the owners, never to the stranger
    assert sorted(recipients) == ["hello@petalandstem.example", OWNER]
    assert "someone@elsewhere.example" in note.get_body().get_content()
    assert note["Auto-Submitted"] == "auto-generated"
    handoff.refresh_from_db()
    assert handoff.status == Handoff.OPEN
    page = owner_page(demo_shop, handoff)
    assert "Held: not from an owner of the shop" in page and "someone@elsewhere.example" in page

    # The owner decides to post it, from the request's page.
    client = Client()
    client.force_login(demo_shop.owners.first())
    url = reverse("admin:widget_handoff_change", args=[handoff.pk])
    client.post(url, {"action": "post_held", "inbound": held.pk})
    held.refresh_from_db()
    assert held.status == InboundEmail.POSTED
    assert Message.objects.get(role=Message.SHOP).text == "Saturday is fine."


def test_the_shops_contact_address_may_answer(demo_shop, inbox):
    handoff = request(demo_shop)
    assert pipe(plain_reply(handoff.reply_address, sender=demo_shop.contact_email.upper())) == 0
    assert Message.objects.get(role=Message.SHOP).text == "Saturday is fine."


@pytest.mark.parametrize(
    "headers, args",
    [
        ({"Auto_Submitted": "auto-replied"}, []),
        ({"Precedence": "bulk"}, []),
        ({"Precedence": "junk"}, []),
        ({"X_Autoreply": "yes"}, []),
        ({"Return_Path": "<>"}, []),
        ({}, ["--sender="]),  # the MTA's empty envelope sender: a bounce
    ],
)
def test_auto_replies_and_bounces_are_ignored_without_an_answer(demo_shop, inbox, headers, args):
    make_owner(demo_shop, "maria", OWNER)
    for token in (request(demo_shop).reply_token, "forged-1-aaaa"):
        raw = plain_reply(f"reply+{token}@{DOMAIN}", text="I am out of the office.", **headers)
        assert pipe(raw, *args) == 0
    assert not Message.objects.exists() and not InboundEmail.objects.exists()
    assert notices(inbox) == []  # an out-of-office never loops


def test_a_20_mb_message_is_refused_while_it_is_read(demo_shop, settings, caplog):
    settings.INBOUND_EMAIL_MAX_BYTES = 10 * 1024 * 1024
    handoff = request(demo_shop)
    head = plain_reply(handoff.reply_address)

    class Counted(io.BytesIO):
        taken = 0

        def read(self, size=-1):
            data = super().read(size)
            Counted.taken += len(data)
            return data

    stream = Counted(head + b"A" * (20 * 1024 * 1024))
    assert pipe(stream) == 65
    assert Counted.taken <= settings.INBOUND_EMAIL_MAX_BYTES + 64 * 1024  # stopped at the limit
    assert not Message.objects.exists()
    assert "too_large" in caplog.text


BROKEN = {
    "no boundary": b"Content-Type: multipart/mixed\n\n--abc\nContent-Type: text/plain\n\nx\n",
    "boundary never seen": b'Content-Type: multipart/mixed; boundary="abc"\n\nplain words\n',
    "unknown charset": b'Content-Type: text/plain; charset="x-no-such-charset"\n\nSaturday.\n',
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_mime_and_bad_encodings_exit_65_with_one_clear_line(demo_shop, case, caplog):
    make_owner(demo_shop, "maria", OWNER)
    handoff = request(demo_shop)
    head = f"From: {OWNER}\nTo: {handoff.reply_address}\nSubject: Re\nMIME-Version: 1.0\n"
    assert pipe(head.encode() + BROKEN[case]) == 65
    assert not Message.objects.exists()
    (line,) = [r for r in caplog.records if r.name == "widget.inbound_email"]
    assert "bad_data" in line.getMessage() and line.exc_info is None


def test_no_reply_address_among_the_recipients_is_an_unknown_user(demo_shop):
    assert pipe(plain_reply(f"orders@{DOMAIN}")) == 67
    assert pipe(plain_reply("reply+abc@another.example")) == 67


def test_no_header_injection_into_the_answer(demo_shop, inbox):
    injected = "=?utf-8?q?Hi=0D=0ABcc:_victim@evil.example?="
    raw = plain_reply(f"reply+forged-1-aaaa@{DOMAIN}")
    raw = raw.replace(b"Subject: Re: your question", f"Subject: {injected}".encode())
    assert pipe(raw) == 0
    ((recipients, notice),) = notices(inbox)
    assert recipients == [OWNER] and "Bcc" not in notice
    assert "\n" not in str(notice["Subject"]) and "victim" in str(notice["Subject"])
    # A From whose name decodes to two lines: the answer goes to its address, or nowhere.
    bad_from = plain_reply(f"reply+forged-1-aaaa@{DOMAIN}", sender="x@y.example")
    bad_from = bad_from.replace(b"From: x@y.example", f"From: {injected} <a@b.c>".encode())
    pipe(bad_from)
    for recipients, mail in inbox.received:
        assert "victim@evil.example" not in recipients and "Bcc" not in mail


# --- Reminders --------------------------------------------------------------------------------


def test_one_reminder_for_a_request_still_unanswered(demo_shop, inbox, settings):
    # A shop without opening hours: plain hours (with hours, the next test).
    ShopHours.objects.filter(shop=demo_shop).delete()
    settings.HANDOFF_REMINDER_HOURS = 24
    make_owner(demo_shop, "maria", OWNER)
    long_ago = timezone.now() - timedelta(hours=25)
    waiting = request(demo_shop, created=long_ago, notified=long_ago)
    request(demo_shop, created=timezone.now() - timedelta(hours=2), notified=timezone.now())
    answered = request(demo_shop, created=long_ago, notified=long_ago)
    answered.reply("Done.")

    call_command("send_handoff_emails", stdout=io.StringIO())
    ((recipients, reminder),) = inbox.received
    assert sorted(recipients) == ["hello@petalandstem.example", OWNER]
    assert reminder["Reply-To"] == waiting.reply_address
    assert "Still waiting" in reminder["Subject"] and QUESTION in reminder.get_body().get_content()
    call_command("send_handoff_emails", stdout=io.StringIO())
    assert len(inbox.received) == 1  # at most once per request
    waiting.refresh_from_db()
    assert waiting.reminded is not None


def test_the_reminder_waits_for_opening_hours_over_a_closed_night(demo_shop, inbox, settings):
    """Petal & Stem opens Saturday 9 to 5 and Sunday 10 to 2 (New York). With 3 hours to wait,
    a request left on Friday at 5:30 PM is not reminded that night nor on Saturday at 8 AM
    (14.5 hours later, half an hour of them open), but on Saturday at 11:30."""
    settings.HANDOFF_REMINDER_HOURS = 3
    make_owner(demo_shop, "maria", OWNER)
    new_york = ZoneInfo("America/New_York")
    friday = datetime(2026, 12, 4, 17, 30, tzinfo=new_york)
    waiting = request(demo_shop, created=friday, notified=friday)
    for moment, reminded in [
        (datetime(2026, 12, 4, 23, 0), False),  # the plain rule would remind here
        (datetime(2026, 12, 5, 8, 0), False),
        (datetime(2026, 12, 5, 11, 29), False),
        (datetime(2026, 12, 5, 11, 31), True),
    ]:
        with time_machine.travel(moment.replace(tzinfo=new_york), tick=False):
            call_command("send_handoff_emails", stdout=io.StringIO())
        assert len(inbox.received) == reminded, moment
    ((_, reminder),) = inbox.received
    body = reminder.get_body().get_content()
    assert "waited 18 hour(s), 3 of them while the shop was open," in body
    waiting.refresh_from_db()
    assert waiting.reminded is not None


def test_the_reminder_over_a_closed_weekend_and_at_the_latest(demo_shop, inbox, settings):
    """A week of opening hours never passes within the days a request is looked at: the
    reminder goes at the latest six days after the request. Sunday's 4 hours count, so a
    Saturday 4:30 PM request with 5 hours to wait is reminded on Monday at 9:30 AM."""
    settings.HANDOFF_REMINDER_HOURS = 5
    make_owner(demo_shop, "maria", OWNER)
    new_york = ZoneInfo("America/New_York")
    saturday = datetime(2026, 12, 5, 16, 30, tzinfo=new_york)
    request(demo_shop, created=saturday, notified=saturday)
    with time_machine.travel(datetime(2026, 12, 7, 9, 29, tzinfo=new_york), tick=False):
        call_command("send_handoff_emails", stdout=io.StringIO())
    assert not inbox.received
    with time_machine.travel(datetime(2026, 12, 7, 9, 31, tzinfo=new_york), tick=False):
        call_command("send_handoff_emails", stdout=io.StringIO())
    assert len(inbox.received) == 1

    settings.HANDOFF_REMINDER_HOURS = 24 * 7
    request(demo_shop, created=saturday, notified=saturday)
    with time_machine.travel(saturday + timedelta(days=5, hours=23), tick=False):
        call_command("send_handoff_emails", stdout=io.StringIO())
    assert len(inbox.received) == 1
    with time_machine.travel(saturday + timedelta(days=6, minutes=1), tick=False):
        call_command("send_handoff_emails", stdout=io.StringIO())
    assert len(inbox.received) == 2


# --- Other processes: a real pipe and the SMTP gateway ----------------------------------------


@pytest.fixture
def redis_layer(settings) -> str:
    """The channel layer on Redis (this run's own database), so a command in another process
    reaches the sockets of this one."""
    url = require_redis()
    redis.Redis.from_url(url).flushdb()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}]},
        }
    }
    return url


def command_environment(redis_url: str, smtp_port: int, **overrides: str) -> dict[str, str]:
    return environment(
        DEBUG="0",
        SHOPBOT_ENV_FILE="",
        SECRET_KEY=django_settings.SECRET_KEY,  # the tokens' key
        DATABASE_URL=server_database_url(),
        REDIS_URL=redis_url,
        INBOUND_EMAIL_DOMAIN=DOMAIN,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        EMAIL_USE_TLS="0",
        DEFAULT_FROM_EMAIL="ShopBot <bot@shopbot.example>",
        LOG_LEVEL="INFO",
        **overrides,
    )


def run_manage(env: dict, raw: bytes, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "receive_email", *args]
    return subprocess.run(command, input=raw, env=env, cwd=ROOT, capture_output=True, timeout=120)


async def test_a_real_pipe_reaches_the_open_chat_and_exit_codes(
    demo_shop, inbox, smtp_port, redis_layer
):
    await db(make_owner)(demo_shop, "maria", OWNER)
    env = await db(command_environment)(redis_layer, smtp_port)
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        saved = await leave(chat, email="ann@example.com", note=QUESTION)
        reply_to = str((await sync_to_async(inbox.wait)(1))[0][1]["Reply-To"])
        done = await sync_to_async(run_manage)(
            env, from_fixture("outlook.eml", reply_to), f"--recipient={reply_to}"
        )
        assert done.returncode == 0, done.stderr
        live = await chat.recv()
    assert (live["type"], live["text"]) == ("shop_message", REPLY)
    assert (await db(Handoff.objects.get)(pk=saved["handoff"])).status == Handoff.ANSWERED
    customer = (await sync_to_async(inbox.wait)(2))[1]
    assert customer[0] == ["ann@example.com"]

    broken = b"From: maria@petal.example\nTo: " + reply_to.encode() + b"\n"
    broken += b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="z"\n\nno parts\n'
    done = await sync_to_async(run_manage)(env, broken)
    assert done.returncode == 65
    assert b"Traceback" not in done.stderr and b"malformed MIME" in done.stderr

    down = {**env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    done = await sync_to_async(run_manage)(down, from_fixture("gmail.eml", reply_to))
    assert done.returncode == 75  # EX_TEMPFAIL: the MTA keeps it and tries again
    assert b"Traceback" not in done.stderr and b"database is unreachable" in done.stderr


@pytest.fixture
def gateway(inbox, smtp_port, redis_layer, tmp_path):
    """`manage.py mail_gateway` as a real process on a loopback port."""
    port = free_port()
    env = command_environment(redis_layer, smtp_port)
    log = tmp_path / "gateway.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "mail_gateway", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        assert process.poll() is None, log.read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout=60)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


async def test_the_gateway_posts_a_reply_sent_by_smtp(demo_shop, inbox, gateway):
    await db(make_owner)(demo_shop, "maria", OWNER)
    async with Chat(demo_shop.public_key) as chat:
        await chat.ready()
        saved = await leave(chat, email="ann@example.com", note=QUESTION)
        reply_to = str((await sync_to_async(inbox.wait)(1))[0][1]["Reply-To"])

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", gateway, timeout=60) as smtp:
                refused = smtp.sendmail(OWNER, [reply_to], from_fixture("apple_mail.eml", reply_to))
                assert refused == {}

        await sync_to_async(send)()
        live = await chat.recv()
    assert (live["type"], live["text"]) == ("shop_message", REPLY)
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert handoff.status == Handoff.ANSWERED
    assert (await sync_to_async(inbox.wait)(2))[1][0] == ["ann@example.com"]


def test_the_gateway_refuses_unknown_recipients_and_a_20_mb_message(demo_shop, gateway, settings):
    handoff = request(demo_shop)
    with smtplib.SMTP("127.0.0.1", gateway, timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail(OWNER)
        code, _ = smtp.rcpt(f"orders@{DOMAIN}")
        assert code == 550
        assert smtp.rcpt(handoff.reply_address)[0] == 250
        big = plain_reply(handoff.reply_address) + b"A" * 76 + b"\r\n"
        big += (b"B" * 76 + b"\r\n") * (20 * 1024 * 1024 // 78)
        code, _ = smtp.data(big)  # no SIZE given: the gateway counts while reading
        assert code == 552
    assert not Message.objects.exists()
    # The broken one gets a permanent error, the gateway stays up.
    with smtplib.SMTP("127.0.0.1", gateway, timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail(OWNER)
        smtp.rcpt(handoff.reply_address)
        head = f"From: {OWNER}\r\nTo: {handoff.reply_address}\r\nMIME-Version: 1.0\r\n"
        code, _ = smtp.data(head.encode() + BROKEN["boundary never seen"].replace(b"\n", b"\r\n"))
        assert code == 554
