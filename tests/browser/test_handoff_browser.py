"""
Hand-off to a person in real browsers: a customer's page with the widget and the owner's admin,
side by side in two Chromium contexts, against one real daphne server on the pytest test database
(no LLM key; the server's emails go to a real SMTP server on loopback, aiosmtpd, in this process).

1. The customer leaves a question from the widget after a fallback answer; the owner replies in
   the admin; the reply appears in the open widget without a reload, and again after one.
2. Live take-over, both ways: the owner takes the chat over, the widget says a person joined,
   the customer's message appears on the owner's page without a reload, the owner's answer in
   the widget.
3. The same hand-off in Spanish, on another website: the form, its error and its confirmation in
   Spanish, the owner's reply in the widget, and the email to the customer in Spanish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from faq.models import Shop
from faq.owners import owners_group
from harness.daphne_process import free_port
from tests.browser.conftest import (
    ANSWER_TIMEOUT,
    LISTED_HOST,
    ask,
    open_widget,
    signed_in,
    w,
    wait_answers,
)
from tests.support import Inbox, make_demo_shop
from widget.models import Conversation, Handoff

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

PASSWORD = "owner password for the browser test"
OFF_TOPIC = "Can you fix my car's brakes?"


@pytest.fixture(scope="module")
def site(request, django_db_blocker, start_server, other_sites) -> Iterator[dict[str, Any]]:
    """The demo shop with an owner who can sign in; one server (storefront at /) sending its
    emails to `inbox`; a Spanish shop of the same owner on another website
    (tests/browser/pages/spanish.html)."""
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    server = start_server(
        wait=False, EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(port), EMAIL_USE_TLS="0"
    )
    values: dict[str, str] = {"SERVER": server.url}
    website = other_sites(LISTED_HOST, values)
    demo_texts_embedded = request.getfixturevalue("demo_texts_embedded")
    with django_db_blocker.unblock():
        shop = make_demo_shop(demo_texts_embedded, is_demo=True)
        # Without hours, the hand-off says the usual reply time whatever the hour (the promise
        # while closed: tests/test_hours_chat.py).
        shop.opening_hours.delete()
        # No entries: every question gets the fallback, and with it "Talk to a person".
        spanish = Shop.objects.create(
            name="Bicis Ana",
            language="es",
            allowed_origins=website,
            contact_email="hola@bicis.example",
        )
        owner = User.objects.create_user("florence", "florence@petal.example", PASSWORD)
        owner.is_staff = True
        owner.save()
        owner.groups.add(owners_group())
        shop.owners.add(owner)
        spanish.owners.add(owner)
    values["SHOP_ES"] = spanish.public_key
    server.wait_ready()
    yield {"shop": shop, "server": server, "website": website, "inbox": inbox}
    with django_db_blocker.unblock():
        Shop.objects.filter(pk__in=[shop.pk, spanish.pk]).delete()
        User.objects.filter(username="florence").delete()
    smtp.stop()


@pytest.fixture
def admin(browser, site) -> Iterator[Page]:
    """The owner, signed in to the admin in a context of their own."""
    page = signed_in(browser, site["server"].url, "florence", PASSWORD, width=1200)
    expect(page.locator("#user-tools")).to_contain_text("florence")
    yield page
    page.context.close()


def leave_question(page: Page, email: str) -> int:
    """After a fallback answer, the customer leaves the question; returns the stored request."""
    ask(page, OFF_TOPIC)
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_attribute("data-mode", "fallback")
    w(page, "sb-contact").get_by_role("button", name="Talk to a person").click()
    expect(w(page, "sb-handoff-note")).to_have_value(OFF_TOPIC)  # pre-filled
    w(page, "sb-handoff-email").fill(email)
    w(page, "sb-handoff-name").fill("Ann")
    w(page, "sb-handoff-send").click()
    expect(w(page, "sb-handoff-saved")).to_contain_text(email, timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-handoff-saved")).to_contain_text("usually within one business day")
    return Handoff.objects.get(email=email).pk


def test_a_question_left_in_the_widget_gets_the_owners_reply_live_and_after_a_reload(
    page, admin, site
):
    open_widget(page, site["server"].url)
    handoff = leave_question(page, "ann@example.com")

    admin.goto(site["server"].url + "/admin/widget/handoff/")
    admin.get_by_role("link", name=OFF_TOPIC).click()
    expect(admin.locator("#content-main")).to_contain_text("ann@example.com")
    admin.fill("#id_text", "We don't, but Joe's Garage on Main Street does.")
    admin.get_by_role("button", name="Send reply").click()
    expect(admin.locator(".messagelist")).to_contain_text(
        "Reply saved and shown in the chat; it is being emailed to ann@example.com"
    )

    # No reload: the reply arrives through the conversation's group.
    shop_message = w(page, "sb-shop")
    expect(shop_message).to_contain_text("Joe's Garage", timeout=ANSWER_TIMEOUT)
    assert Handoff.objects.get(pk=handoff).status == Handoff.ANSWERED

    page.reload()
    w(page, "sb-launcher").click()
    expect(w(page, "sb-shop")).to_contain_text("Joe's Garage", timeout=ANSWER_TIMEOUT)


def take_over_talk_and_hand_back(page: Page, admin: Page, question: str, reply: str) -> None:
    """On the owner's open page (a request's or a conversation's): take the chat over, see the
    customer's `question` arrive, answer it, check the bot kept silent, hand back."""
    admin.get_by_role("button", name="Take over the chat").click()
    expect(w(page, "sb-person")).to_be_visible(timeout=ANSWER_TIMEOUT)
    ask(page, question)
    expect(admin.locator("#live-log")).to_contain_text(question, timeout=ANSWER_TIMEOUT)
    admin.fill("#live-form input[name=text]", reply)
    admin.locator("#live-form button").click()
    expect(w(page, "sb-shop").last).to_contain_text(reply, timeout=ANSWER_TIMEOUT)
    # The bot stayed silent: still only the one answer from before.
    expect(page.locator("[data-testid=sb-bot][data-state=final]")).to_have_count(1)
    admin.get_by_role("button", name="Hand back to the bot").click()
    expect(w(page, "sb-person")).to_be_hidden(timeout=ANSWER_TIMEOUT)


def test_live_take_over_both_ways(page, admin, site):
    open_widget(page, site["server"].url)
    handoff = leave_question(page, "bea@example.com")
    admin.goto(f"{site['server'].url}/admin/widget/handoff/{handoff}/change/")
    take_over_talk_and_hand_back(
        page, admin, "Could you look at my bike too?", "Sorry, no bikes either!"
    )


def test_any_live_conversation_is_taken_over_from_its_page(page, admin, site):
    """No request left: the owner opens the conversation's page and takes the chat over."""
    open_widget(page, site["server"].url)
    ask(page, "Do you deliver to Princeton?")
    wait_answers(page, 1)
    conversation = Conversation.objects.get(messages__text="Do you deliver to Princeton?")
    assert not conversation.handoffs.exists()
    admin.goto(f"{site['server'].url}/admin/widget/conversation/{conversation.pk}/change/")
    take_over_talk_and_hand_back(
        page, admin, "Is the shop dog friendly?", "Very! Bring them along."
    )


def test_a_thumbs_down_offers_a_person_and_the_question_can_be_left(page, site):
    open_widget(page, site["server"].url)
    ask(page, "What are your opening hours?")
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_attribute("data-mode", "faq")
    expect(w(page, "sb-contact")).to_have_count(0)  # a confident answer: no offer yet

    w(page, "sb-fb-down").click()
    offer = w(page, "sb-contact")
    expect(offer).to_have_count(1)
    w(page, "sb-fb-down").click()  # a second click does not offer twice
    expect(offer).to_have_count(1)
    offer.get_by_role("button", name="Talk to a person").click()
    expect(w(page, "sb-handoff-note")).to_have_value("What are your opening hours?")
    w(page, "sb-handoff-email").fill("cat@example.com")
    w(page, "sb-handoff-send").click()
    expect(w(page, "sb-handoff-saved")).to_contain_text("cat@example.com", timeout=ANSWER_TIMEOUT)
    handoff = Handoff.objects.get(email="cat@example.com")
    assert handoff.note == "What are your opening hours?"


def test_the_hand_off_in_spanish_from_the_form_to_the_customers_mailbox(page, admin, site):
    page.goto(site["website"] + "/spanish.html")
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
    expect(w(page, "sb-input")).to_have_attribute("placeholder", "Haz una pregunta…")
    question = "¿Arregláis bicicletas eléctricas?"
    ask(page, question)
    wait_answers(page, 1)
    expect(w(page, "sb-bot")).to_have_text(
        "No puedo ayudarte con eso aquí, pero nuestro equipo sí."
    )
    w(page, "sb-contact").get_by_role("button", name="Hablar con una persona").click()

    form = w(page, "sb-handoff-form")
    expect(form).to_contain_text(
        "Déjanos tu pregunta y te responderemos, normalmente en un día hábil."
    )
    expect(w(page, "sb-handoff-note")).to_have_value(question)
    expect(w(page, "sb-handoff-email")).to_have_attribute("placeholder", "Tu correo electrónico")
    # An address the browser lets through and the server does not: its sentence, in Spanish.
    w(page, "sb-handoff-email").fill("ana@bicis")
    w(page, "sb-handoff-send").click()
    expect(w(page, "sb-handoff-error")).to_have_text(
        "Esa dirección de correo no parece correcta; revísala, por favor.", timeout=ANSWER_TIMEOUT
    )
    w(page, "sb-handoff-email").fill("ana@example.com")
    w(page, "sb-handoff-name").fill("Ana")
    w(page, "sb-handoff-send").click()
    expect(w(page, "sb-handoff-saved")).to_have_text(
        "¡Gracias! Una persona de nuestro equipo te escribirá a ana@example.com, normalmente en "
        "un día hábil. La respuesta también aparecerá aquí, en el chat.",
        timeout=ANSWER_TIMEOUT,
    )
    handoff = Handoff.objects.get(email="ana@example.com")
    assert handoff.conversation.language == "es"

    # The owner answers from the admin (in English, the owner's side).
    admin.goto(f"{site['server'].url}/admin/widget/handoff/{handoff.pk}/change/")
    reply = "Sí, los sábados por la mañana. Tráela cuando quieras."
    admin.fill("#id_text", reply)
    admin.get_by_role("button", name="Send reply").click()
    expect(admin.locator(".messagelist")).to_contain_text("it is being emailed to ana@example.com")

    expect(w(page, "sb-shop")).to_have_text("De nuestro equipo" + reply, timeout=ANSWER_TIMEOUT)
    (mail,) = [m for to, m in site["inbox"].received if to == ["ana@example.com"]]
    assert mail["Subject"] == "Bicis Ana: respuesta a tu pregunta"
    assert mail["Reply-To"] == "hola@bicis.example"
    assert mail.get_body().get_content().splitlines() == [
        reply,
        "",
        "---",
        "También puedes leer esta respuesta en el chat de nuestra web.",
    ]  # the owner's words only: the customer's note is never quoted back (issue 28)


IN_VIEW = """(node) => { const log = node.getRootNode().querySelector('[data-testid=sb-log]');
    const r = node.getBoundingClientRect(), box = log.getBoundingClientRect();
    return r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5; }"""


def test_an_error_in_the_form_keeps_send_and_cancel_in_view(page, site):
    """The server's error goes in above Send and Cancel: a two-line one pushed them out of view."""
    open_widget(page, site["server"].url)
    ask(page, OFF_TOPIC)
    wait_answers(page, 1)
    w(page, "sb-contact").get_by_role("button", name="Talk to a person").click()
    send, cancel = w(page, "sb-handoff-send"), w(page, "sb-handoff-cancel")
    assert send.evaluate(IN_VIEW) and cancel.evaluate(IN_VIEW)
    w(page, "sb-handoff-name").fill("Dee")
    send.click()  # no email: the server refuses the request and names the field
    error = w(page, "sb-handoff-error")
    expect(error).to_have_text("Please give your email address so we can reply.")
    expect(w(page, "sb-handoff-email")).to_have_attribute("aria-invalid", "true")
    expect(w(page, "sb-handoff-email")).to_be_focused()
    for node in (w(page, "sb-handoff-email"), error, send, cancel):
        assert node.evaluate(IN_VIEW)
    assert not Handoff.objects.filter(name="Dee").exists()
