"""The chat in the shop's language: the widget's texts in the `ready` frame, the server's sentences
(errors, the default greeting and fallback) through Django's translation framework, data-lang on
the script tag (?lang=) over the shop's setting, and right-to-left for Arabic and Hebrew. Through
the real consumer and database; the widget itself in these languages is in tests/browser/."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async as db
from django.conf import settings
from django.utils.translation import override
from django.utils.translation.trans_real import translation

from faq.models import DEFAULT_FALLBACK, DEFAULT_GREETING, Shop
from tests.support import Chat
from widget.chat.protocol import SENTENCES
from widget.chat.texts import WIDGET_TEXTS, chat_language, widget_texts
from widget.chat.views import WIDGET_JS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_claude(settings):
    settings.ANTHROPIC_API_KEY = ""


def shop(language: str, **fields) -> Shop:
    return Shop.objects.create(name=f"Shop {language}", language=language, **fields)


async def test_the_ready_frame_carries_spanish_texts_for_a_spanish_shop():
    spanish = await db(shop)("es")
    async with Chat(spanish.public_key) as chat:
        ready = await chat.ready()
    assert (ready["language"], ready["dir"]) == ("es", "ltr")
    assert ready["texts"]["placeholder"] == "Haz una pregunta…"
    assert ready["texts"]["didYouMean"] == "¿Quisiste decir?:"
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


async def test_the_default_fallback_answer_in_spanish(demo_texts_embedded):
    spanish = await db(shop)("es")  # no entries: every question gets the fallback
    async with Chat(spanish.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("¿Venden tarjetas regalo?")
    assert answer["mode"] == "fallback"
    assert answer["text"].startswith("No estoy seguro de eso y prefiero no adivinar.")


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
