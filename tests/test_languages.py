"""The chat in the shop's language: the widget's texts in the `ready` frame, the server's sentences
(errors, the default greeting and fallback) through Django's translation framework, data-lang on
the script tag (?lang=) over the shop's setting, and right-to-left for Arabic and Hebrew. Through
the real consumer and database; the widget itself in these languages is in tests/browser/."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.utils.translation import override
from django.utils.translation.trans_real import translation

from faq import faqpage
from faq.models import DEFAULT_FALLBACK, DEFAULT_GREETING, FAQEntry, Shop
from tests.support import DELIVERY, Chat, make_demo_shop
from widget import handoff_email
from widget.chat.protocol import SENTENCES
from widget.chat.texts import WIDGET_TEXTS, chat_language, widget_texts
from widget.chat.views import WIDGET_JS
from widget.models import Conversation, Handoff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_claude(settings):
    settings.ANTHROPIC_API_KEY = ""


def shop(language: str, **fields) -> Shop:
    return Shop.objects.create(**{"name": f"Shop {language}", **fields}, language=language)


async def test_the_ready_frame_carries_spanish_texts_for_a_spanish_shop():
    spanish = await db(shop)("es")
    async with Chat(spanish.public_key) as chat:
        ready = await chat.ready()
    assert (ready["language"], ready["dir"]) == ("es", "ltr")
    assert ready["texts"]["placeholder"] == "Haz una pregunta…"
    assert ready["texts"]["didYouMean"] == "Quizás buscabas:"
    assert ready["texts"]["panel"] == "Chat de {name}"  # the widget fills in the bot's name
    assert ready["texts"].keys() == WIDGET_TEXTS.keys()
    # The default greeting is translated; one the owner wrote is shown as written.
    assert ready["bot"]["greeting"] == "¡Hola! Pregúntame lo que quieras sobre nuestra tienda."
    own = await db(shop)("es", greeting="Bienvenidos a Flores Ana")
    async with Chat(own.public_key) as chat:
        assert (await chat.ready())["bot"]["greeting"] == "Bienvenidos a Flores Ana"


async def test_data_lang_overrides_the_shop_and_is_checked():
    english = await db(shop)("en")
    async with Chat(english.public_key, "lang=es") as chat:
        ready = await chat.ready()
    assert ready["language"] == "es"
    assert ready["texts"]["send"] == "Enviar"

    for unsupported in ("xx", "../../etc", "es" * 40):
        async with Chat(english.public_key, f"lang={unsupported}") as chat:
            ready = await chat.ready()
        assert (ready["language"], ready["texts"]["send"]) == ("en", "Send"), unsupported

    async with Chat(english.public_key, "lang=pt-BR") as chat:  # a regional code: its language
        assert (await chat.ready())["language"] == "pt"


async def test_arabic_and_hebrew_are_right_to_left():
    for language in ("ar", "he"):
        rtl = await db(shop)(language)
        async with Chat(rtl.public_key) as chat:
            ready = await chat.ready()
        assert (ready["language"], ready["dir"]) == (language, "rtl")
        assert ready["texts"]["send"] != "Send"


async def test_an_error_sentence_in_french():
    french = await db(shop)("fr")
    async with Chat(french.public_key) as chat:
        await chat.ready()
        await chat.send({"type": "ask", "id": "a1", "text": "Une rose ?", "entry": 999999})
        error = await chat.recv()
    assert (error["type"], error["id"], error["code"]) == ("error", "a1", "unknown_entry")
    assert error["message"] == (
        "Désolé, cette réponse n'est plus disponible. Posez votre question avec vos propres mots."
    )
    async with Chat(french.public_key) as chat:  # a limit's sentence, with its number filled in
        await chat.ready()
        await chat.send({"type": "ask", "id": "a2", "text": "x" * 1001})
        error = await chat.recv()
    assert (error["code"], error["message"]) == (
        "too_long",
        "Veuillez écrire un message de moins de 1000 caractères.",
    )


async def test_the_off_topic_answer_in_spanish(demo_texts_embedded):
    spanish = await db(shop)("es")  # no entries: nothing to suggest, the honest sentence
    async with Chat(spanish.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("¿Venden tarjetas regalo?")
    assert (answer["mode"], answer["suggestions"]) == ("fallback", [])
    assert answer["text"] == "No puedo ayudarte con eso aquí, pero nuestro equipo sí."


async def test_server_sentences_in_spanish(settings):
    settings.CHAT_MAX_ASKS_PER_CONVERSATION = 1
    spanish = await db(shop)("es", contact_email="hola@flores.example", contact_phone="+34 910 000")
    async with Chat(spanish.public_key) as chat:
        await chat.ready()
        await chat.ws.send_to(text_data="{ask")
        assert (await chat.recv())["message"] == "Ese mensaje no es JSON válido."
        await chat.send({"type": "hola"})
        assert (await chat.recv())["message"] == (
            "Tipo de mensaje desconocido; se esperaba ask, feedback, handoff o ping."
        )
        await chat.send({"type": "ask", "id": "a1", "text": "x" * 1001})
        assert (await chat.recv())["message"] == "Escribe un mensaje de menos de 1000 caracteres."
        _, answer = await chat.ask("¿Hacen ramos de novia?", "a2")  # no entries: off-topic
        assert answer["text"] == "No puedo ayudarte con eso aquí, pero nuestro equipo sí."
        await chat.send({"type": "ask", "id": "a3", "text": "¿Y centros de mesa?"})
        error = await chat.recv()
    # The contact route as it is (an address, a number), with no English labels in it.
    assert (error["code"], error["message"]) == (
        "conversation_full",
        "Esta conversación ha alcanzado su límite de longitud. Empieza una conversación nueva o "
        "contáctanos (hola@flores.example, +34 910 000).",
    )


async def leave(chat: Chat, handoff_id: str, **fields) -> dict:
    await chat.send({"type": "handoff", "id": handoff_id, **fields})
    return await chat.recv()


async def test_the_hand_off_in_spanish_its_errors_and_its_confirmation():
    spanish = await db(shop)("es")
    async with Chat(spanish.public_key) as chat:
        ready = await chat.ready()
        # The defaults the owner kept, in the chat's language: the bot's name, the reply time.
        assert ready["bot"]["name"] == "Asistente"
        assert ready["bot"]["handoff"]["reply_time"] == "un día hábil"
        assert ready["texts"]["handoffIntro"] == (
            "Déjanos tu pregunta y te responderemos, normalmente en {time}."
        )
        note = "¿Hacen ramos de novia?"
        refusals = [
            ({"email": "ana@", "note": note}, "email", "no parece correcta; revísala, por favor."),
            ({"email": "ana@a.es, b@b.es", "note": note}, "email", "Escribe una sola dirección"),
            ({"phone": "+34 910 000 000", "note": note}, "phone", "Esta tienda responde por"),
            ({"note": note}, "email", "Indica tu correo electrónico para que podamos responderte."),
            ({"email": "ana@example.com", "name": "A\nB", "note": note}, "name", "Escribe tu"),
            ({"email": "ana@example.com", "note": " "}, "note", "Escribe tu pregunta."),
            ({"email": "ana@example.com", "note": "x" * 1001}, None, "menos de 1000 caracteres."),
        ]
        for number, (fields, field, sentence) in enumerate(refusals):
            error = await leave(chat, f"bad{number}", **fields)
            assert error.get("field") == field and sentence in error["message"], error
        saved = await leave(chat, "h1", email="ana@example.com", name="Ana", note=note)
    assert saved["message"] == (
        "¡Gracias! Una persona de nuestro equipo te escribirá a ana@example.com, normalmente en un "
        "día hábil. La respuesta también aparecerá aquí, en el chat."
    )
    assert saved["reply_time"] == "un día hábil"


@db
def reply_by_email(handoff_id: int, text: str) -> tuple[str, str]:
    """The owner's reply to the request, emailed (its job runs at commit here); (why not queued,
    the conversation's language)."""
    handoff = Handoff.objects.select_related("conversation__shop").get(pk=handoff_id)
    return handoff_email.answer(handoff, text)[1], handoff.conversation.language


async def test_the_owners_reply_is_emailed_in_the_language_the_customer_chats_in(mailoutbox):
    english = await db(shop)("en", name="Flores Ana", contact_email="hola@flores.example")
    async with Chat(english.public_key, "lang=es") as chat:  # data-lang="es" on the script tag
        conversation = (await chat.ready())["conversation"]
        saved = await leave(chat, "h1", email="ana@example.com", note="¿Hacen ramos de novia?")

    assert await reply_by_email(saved["handoff"], "Sí, desde 45 €.") == ("", "es")
    (mail,) = [m for m in mailoutbox if m.to == ["ana@example.com"]]
    assert mail.subject == "Flores Ana: respuesta a tu pregunta"
    assert mail.body == (
        "Sí, desde 45 €.\n\n---\nTambién puedes leer esta respuesta en el chat de nuestra web."
    )
    assert mail.reply_to == ["hola@flores.example"]

    # Back on a page without data-lang: the shop's language, English, from then on.
    async with Chat(english.public_key, f"conversation={conversation}") as chat:
        assert (await chat.ready())["language"] == "en"
    assert (await db(Conversation.objects.get)(pk=conversation)).language == "en"
    assert await reply_by_email(saved["handoff"], "Also in white.") == ("", "en")
    assert mailoutbox[-1].subject == "Flores Ana: a reply to your question"


def test_the_faq_page_of_a_spanish_shop_has_spanish_headings(client, demo_texts_embedded):
    spanish = make_demo_shop(demo_texts_embedded, language="es", contact_email="hola@flores.es")
    FAQEntry.objects.filter(shop=spanish, question=DELIVERY).update(category="")

    soup = BeautifulSoup(client.get(f"/faq/{spanish.slug}/").content, "lxml")
    assert soup.html["lang"] == "es"
    assert soup.title.get_text() == f"Preguntas frecuentes · {spanish.name}"
    assert soup.h1.get_text() == "Preguntas frecuentes"
    updated = soup.select_one(".faq-updated").get_text()
    assert re.fullmatch(r"Actualizado el \d{1,2} de [a-z]+ de \d{4}", updated), updated
    assert soup.select_one("label[for=faq-q]").get_text() == "Busca entre las preguntas"
    assert soup.select_one("#faq-q")["placeholder"] == "p. ej., ¿hacen envíos los domingos?"
    assert soup.select_one(".faq-search button").get_text() == "Buscar"
    assert soup.select_one("nav.faq-toc")["aria-label"] == "Categorías"
    assert soup.select(".faq-section h2")[-1].get_text() == "Otras preguntas"  # no category
    assert soup.select_one(".faq-foot").get_text(" ", strip=True) == (
        "Pregúntanos: hola@flores.es · (609) 555-0142 · página de contacto"
    )

    # A wording the search is sure of, then one it is not sure of.
    for query, heading in [
        ("do u deliver to princeton", "Mejores resultados para"),
        ("can you bring flowers to princeton", "Preguntas más parecidas a"),
    ]:
        soup = BeautifulSoup(client.get(f"/faq/{spanish.slug}/", {"q": query}).content, "lxml")
        results = soup.select_one("[data-testid=faq-results]")
        assert results.h2.get_text() == f"{heading} «{query}»"
        assert results.select("p a")[-1].get_text() == "Ver todas las preguntas"

    empty = Shop.objects.create(name="Flores Vacías", language="es")
    soup = BeautifulSoup(client.get(f"/faq/{empty.slug}/", {"q": "rosas"}).content, "lxml")
    assert soup.select_one("#results-title").get_text() == "No hay resultados para «rosas»"
    assert "Todavía no hay preguntas publicadas." in soup.main.get_text()
    assert soup.select_one(".faq-foot").get_text(strip=True) == (
        "Pregúntanos en el chat de la esquina."
    )

    # The HTML export an owner pastes into their own site: the same headings, in Spanish.
    exported = BeautifulSoup(faqpage.export_html(spanish.entries.all(), spanish.name), "lxml")
    assert exported.html["lang"] == "es" and exported.h1.get_text() == "Preguntas frecuentes"
    assert exported.select("h2")[-1].get_text() == "Otras preguntas"


def test_the_language_is_the_tags_then_the_shops_then_english():
    assert chat_language("es", "fr") == "es"
    assert chat_language("ES-mx", "fr") == "es"
    assert chat_language("", "fr") == "fr"
    assert chat_language("klingon", "he") == "he"
    assert chat_language(None, "en-us") == "en"
    assert chat_language(None, "zz") == "en"


@pytest.mark.parametrize("language", [code for code, _ in settings.LANGUAGES if code != "en"])
def test_every_text_is_translated_in_every_language(language):
    """Each widget text, error sentence, default greeting and fallback has a translation in the
    committed .mo file (so a new text without one fails here, not silently in English in front of
    a customer)."""
    catalog = translation(language)._catalog
    with override("en"):  # English is the msgid itself
        wanted = [str(text) for text in [*WIDGET_TEXTS.values(), *SENTENCES.values()]]
    wanted += [DEFAULT_GREETING, DEFAULT_FALLBACK]
    missing = [msgid for msgid in wanted if msgid not in catalog]
    assert missing == []
    with override(language):
        texts = widget_texts(language)
    # The {slots} the widget fills in survive translation.
    for key, text in WIDGET_TEXTS.items():
        assert set(re.findall(r"\{\w+\}", texts[key])) == set(re.findall(r"\{\w+\}", str(text)))


def test_the_scripts_own_english_texts_match_the_catalogue():
    """widget.js shows its own English texts before its first `ready`: they must be the same."""
    block = re.search(r"const TEXTS = \{(.*?)\n  \};", WIDGET_JS.read_text(), re.S).group(1)
    own = dict(re.findall(r"(\w+): '((?:[^'\\]|\\.)*)'", block))
    english = widget_texts("en")
    assert own and {key: english[key] for key in own} == own
