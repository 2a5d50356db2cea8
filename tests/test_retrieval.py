"""faq.search.search on the real model and real pgvector: ranking, confidence, isolation."""

from __future__ import annotations

import numpy as np
import pytest

from faq import search_index
from faq.models import FAQEntry, FAQVector, split_sentences
from faq.search import MARGINS, SUGGESTIONS, search
from faq.search_index import Lexicon, build_index, fit_classifier, score_entries
from tests.support import make_demo_shop, vectors_remembered


def top(shop, text):
    result = search(shop, text)
    return result.best.entry.question if result.best else None, result.confident


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Do you deliver to Princeton?",
            "Which towns do you deliver to, and how much is delivery?",
        ),
        ("Do you have special holiday hours?", "Do you have special holiday hours?"),
        ("Are you open on Sundays?", "What are your opening hours?"),
    ],
)
def test_customer_wording_finds_the_entry_confidently(demo_shop, text, expected):
    assert top(demo_shop, text) == (expected, True)


@pytest.mark.django_db
def test_a_paraphrase_far_from_every_phrasing_is_offered_not_guessed(demo_shop):
    """The demo shop's bar sits above 95 % of its own texts' near misses: this paraphrase ranks
    its entry first but below the bar, so it is a one-click suggestion."""
    result = search(demo_shop, "my cat might eat the bouquet, is that ok?")
    assert result.best.entry.question == "Which flowers are safe for pets?"
    assert not result.confident
    assert result.suggestions[0].entry.question == "Which flowers are safe for pets?"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    ["Can you fix my car's brakes?", "what is the meaning of life", "Do you sell concert tickets?"],
)
def test_off_topic_questions_are_not_confident(demo_shop, text):
    assert top(demo_shop, text)[1] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text", ["can you fix my bike", "what's the weather like tomorrow?", "who won the game?"]
)
def test_an_off_topic_question_gets_no_did_you_mean(demo_shop, text):
    """Issue 29: off-topic text is declined honestly, with no unrelated entries offered."""
    result = search(demo_shop, text)
    assert not result.confident and result.suggestions == []


@pytest.mark.django_db
def test_a_typo_still_finds_its_entry(demo_shop):
    question, _ = top(demo_shop, "do u delivr to princton")
    assert question == "Which towns do you deliver to, and how much is delivery?"


@pytest.mark.django_db
def test_hits_are_ranked_with_scores_and_limited(demo_shop):
    result = search(demo_shop, "wedding flowers", limit=3)
    assert len(result.hits) == 3
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert result.threshold is not None
    assert search(demo_shop, "   ").hits == []


@pytest.mark.django_db
def test_unpublished_entries_and_other_shops_never_show_up(demo_texts_embedded):
    florist = make_demo_shop(demo_texts_embedded)
    other = make_demo_shop(demo_texts_embedded, name="Other florist")
    delivery = florist.entries.get(question__startswith="Which towns do you deliver")
    delivery.published = False
    delivery.save(update_fields=["published"])

    for hit in search(florist, "Do you deliver to Princeton?", limit=10).hits:
        assert hit.entry.shop_id == florist.pk
        assert hit.entry.pk != delivery.pk
    for hit in search(other, "Do you deliver to Princeton?", limit=10).hits:
        assert hit.entry.shop_id == other.pk
    assert search(other, "Do you deliver to Princeton?").confident


@pytest.mark.django_db
def test_the_threshold_follows_the_shops_published_vectors(demo_shop):
    before = search(demo_shop, "flowers")
    assert before.threshold >= search_index.THRESHOLD_FLOOR
    # Without its phrasings the shop has fewer probes, and nothing to set a wording bar with.
    FAQVector.objects.filter(entry__shop=demo_shop, kind=FAQVector.ALTERNATIVE).delete()
    after = search(demo_shop, "flowers").threshold
    assert after != before.threshold
    assert after >= search_index.THRESHOLD_FLOOR
    signature = search_index.published_signature(demo_shop.pk)
    assert search_index.cache.get(demo_shop.pk, signature).wording_bar == float("inf")


def test_entry_scores_blend_best_and_best_two_plus_a_vote():
    sims = np.array([[0.9, 0.1, 0.8, 0.7]], dtype=np.float32)
    vec_entry = np.array([0, 0, 1, 1])
    scores = score_entries(sims, vec_entry, 2)[0]
    # Entry 0: 0.4*0.9 + 0.6*0.5; entry 1: 0.4*0.8 + 0.6*0.75; votes by positive similarity.
    votes = np.array([1.0, 1.5]) / 2.5
    expected = np.array([0.66, 0.77]) + search_index.VOTE_WEIGHT * votes
    assert np.allclose(scores, expected, atol=1e-5)


def test_calibration_leaves_each_probe_entry_out():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    vectors, entry_ids, kinds, words = [], [], [], []
    for e, centre in enumerate(centres):
        for n, kind in enumerate(["question", "alt", "alt"] * 4):
            v = centre + 0.05 * rng.normal(size=8)
            vectors.append(v / np.linalg.norm(v))
            entry_ids.append(100 + e)
            kinds.append(kind)
            words.append([f"topic{e}", f"word{n}"])
    index = build_index((36, 1), entry_ids, kinds, np.array(vectors, dtype=np.float32), words)
    assert index.classifier is not None
    assert list(index.entry_ids) == [100, 101, 102]
    # The probes' own entries are left out, so the threshold reflects the distant other entries
    # (the floor, here), not the same entry's phrasings.
    assert index.threshold == search_index.THRESHOLD_FLOOR
    # Each phrasing's nearest other text is of its own entry, far above any other entry's: the
    # wording bar is the loosest that keeps the leave-one-out asks right (24 right asks above
    # every wrong one, and 1 wrong in 25 is more than WORDING_WRONG_SHARE): the least similar
    # counted right ask, above the closest another entry ever comes.
    sims = np.array(vectors) @ np.array(vectors).T
    np.fill_diagonal(sims, -np.inf)
    entry = np.array(entry_ids)
    other_entry = entry[:, None] != entry[None, :]
    phrasings = np.array(kinds) == "alt"
    closest_other = sims[phrasings][other_entry[phrasings]].max()
    least_right = sims[phrasings].max(axis=1).min()
    # (An ask whose nearest text is its entry's question, not a phrasing, is not counted.)
    assert index.wording_bar >= least_right - 1e-5
    assert closest_other < index.wording_bar < 1.0
    # With no phrasings the owner's bar is the bar; with them, it leaves them out.
    assert index.owner_threshold == search_index.THRESHOLD_FLOOR


def test_the_wording_bar_needs_enough_asks_and_tolerates_a_rare_wrong_one():
    """The wording bar is a precision rule over the shop's own phrasings asked leave-one-out: at
    most WORDING_WRONG_SHARE wrong among the asks at or above it, and at least WORDING_MIN_ASKS
    of them; a shop with a handful of phrasings gets none."""
    rng = np.random.default_rng(2)

    def shop(per_entry: int, entries: int = 3):
        centres = rng.normal(size=(entries, 16))
        vectors, entry_ids, kinds = [], [], []
        for e, centre in enumerate(centres):
            for kind in ["question"] + ["alt"] * per_entry:
                v = centre + 0.15 * rng.normal(size=16)
                vectors.append(v / np.linalg.norm(v))
                entry_ids.append(e)
                kinds.append(kind)
        return np.array(vectors, dtype=np.float32), np.array(entry_ids), np.array(kinds)

    # 3 entries with one phrasing each: 6 asks, fewer than WORDING_MIN_ASKS.
    assert search_index._wording_bar(*shop(1)) == float("inf")
    vectors, entry_ids, kinds = shop(20)
    bar = search_index._wording_bar(vectors, entry_ids, kinds)
    assert np.isfinite(bar)
    # A phrasing filed under the wrong entry (one of 60) is one wrong ask among many: the bar
    # stays finite, no stricter than the closest wrong ask.
    misfiled = entry_ids.copy()
    misfiled[1] = 1
    assert bar <= search_index._wording_bar(vectors, misfiled, kinds) < float("inf")


def test_the_classifier_left_out_outputs_match_a_refit_without_the_entry():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(12, 5)).astype(np.float32)
    vec_entry = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    _, left_out = fit_classifier(vectors, vec_entry, 3)
    for e in range(3):
        others = vec_entry != e
        weights, _ = fit_classifier(vectors[others], vec_entry[others], 3)
        assert np.allclose(left_out[vec_entry == e], vectors[vec_entry == e] @ weights, atol=1e-4)


def test_bm25_weighs_words_rare_in_the_shop_and_keeps_question_words():
    lexicon = Lexicon(
        [
            "what is a coronavirus".split(),
            "where did covid 19 come from".split(),
            "what are the symptoms of covid 19".split(),
            "how does covid 19 spread".split(),
        ]
    )
    scores = lexicon.scores("where did the coronavirus come from".split())
    # "where", "did", "come" and "from" outweigh "coronavirus", which one other entry has.
    assert scores.argmax() == 1
    assert lexicon.scores(["tulips"]).tolist() == [0, 0, 0, 0]
    # "covid" is in three of four entries, "spread" in one: the rare word counts more.
    assert lexicon.word_weight("spread") > lexicon.word_weight("covid")


COVID_FAQ = [
    ("What is a coronavirus?", "Coronaviruses are a large family of viruses."),
    ("Where did COVID-19 come from?", "It was first found in Wuhan City, China."),
    ("What are the symptoms of COVID-19?", "Fever, cough and shortness of breath."),
    ("How does COVID-19 spread?", "Mainly from person to person, through droplets."),
    ("Is there a vaccine for COVID-19?", "Several vaccines are approved."),
]


@pytest.mark.django_db
def test_word_matches_rerank_a_shop_without_phrasings(db, monkeypatch):
    from faq import indexing
    from faq.models import Shop

    shop = Shop.objects.create(name="Health FAQ")
    entries = FAQEntry.objects.bulk_create(
        FAQEntry(shop=shop, question=q, answer=a) for q, a in COVID_FAQ
    )
    indexing.refresh([e.pk for e in entries])
    result = search(shop, "where did the coronavirus originate from")
    # Dense similarity alone prefers "What is a coronavirus?" (the shared word); the question
    # words "where ... from" decide it.
    assert result.best.entry.question == "Where did COVID-19 come from?"
    # Without phrasings the word bonus and the classifier order the hits, but confidence is
    # the dense score alone.
    confidence = {hit.entry.pk: hit.confidence for hit in result.hits}
    monkeypatch.setattr(search_index, "CLASSIFIER_WEIGHT", 0.0)
    monkeypatch.setattr(search_index, "QUESTION_WORDS_WEIGHT", 0.0)
    monkeypatch.setattr(search_index, "ALL_WORDS_WEIGHT", 0.0)
    dense = search(shop, "where did the coronavirus originate from", limit=10)
    for hit in dense.hits:
        assert hit.score == hit.confidence
        assert hit.confidence == pytest.approx(confidence.get(hit.entry.pk, hit.confidence))
    assert dense.best.entry.question == "What is a coronavirus?"
    assert not search(shop, "Where did you buy those shoes?").confident


@pytest.mark.django_db
def test_a_shop_with_one_entry_uses_the_floor(db):
    from faq.models import Shop

    shop = Shop.objects.create(name="Tiny")
    entry = FAQEntry.objects.create(shop=shop, question="Do you open on Sundays?", answer="No.")
    from faq import indexing

    indexing.refresh([entry.pk])
    result = search(shop, "Are you open on Sunday?")
    assert result.threshold == search_index.THRESHOLD_FLOOR
    assert result.confident


def test_answers_are_split_into_sentences_each_embedded_with_its_question():
    assert split_sentences(
        "We open at 9 a.m. on Sundays. Yes! Orders by 1 PM ship the same day.\n- Roses and tulips"
    ) == ["We open at 9 a.m. on Sundays.", "Orders by 1 PM ship the same day.", "Roses and tulips"]
    entry = FAQEntry(
        question="When are you open?",
        answer="Tuesday to Sunday, 7 am to 3 pm. We are closed on Mondays.",
        alternatives="opening times",
    )
    assert entry.embedding_texts() == [
        ("question", "When are you open?"),
        ("qa", f"When are you open?\n{entry.answer}"),
        ("alt", "opening times"),
        ("qsentence", "When are you open?\nTuesday to Sunday, 7 am to 3 pm."),
        ("qsentence", "When are you open?\nWe are closed on Mondays."),
    ]
    # A one-sentence answer is the question + answer text already.
    assert [
        k for k, _ in FAQEntry(question="Q?", answer="Only one sentence here.").embedding_texts()
    ] == [
        "question",
        "qa",
    ]


# A small shop as an owner writes its FAQ page: no phrasings (the case of dev_bakery.json).
BAKERY_FAQ = [
    (
        "What are your hours?",
        "We're open Tuesday to Friday 7 am to 3 pm, Saturday 7 am to 4 pm, and Sunday 8 am to "
        "2 pm; we're closed every Monday. The kitchen stops taking food orders 30 minutes before "
        "closing.",
    ),
    (
        "Are you open on holidays?",
        "We're closed on Thanksgiving Day, Christmas Day and New Year's Day. On Christmas Eve we "
        "are open 7 am to noon.",
    ),
    (
        "Do you deliver?",
        "We deliver within 5 miles of the bakery for $6. Orders over $60 are delivered free.",
    ),
    (
        "Do you make custom cakes?",
        "Yes! Order custom cakes at least 72 hours ahead. We bake layer cakes, sheet cakes and "
        "cupcakes for birthdays and parties.",
    ),
    (
        "Do you have a seasonal menu?",
        "Our menu changes with the seasons. In the autumn we bake apple cider donuts and pumpkin "
        "bread; in summer, peach galettes.",
    ),
    (
        "Is there parking?",
        "There's free 2-hour street parking along Maple Street and a free public lot behind our "
        "building.",
    ),
]


@pytest.fixture
def bakery(db):
    from faq import indexing
    from faq.models import Shop

    shop = Shop.objects.create(name="Hearth & Crumb")
    entries = FAQEntry.objects.bulk_create(
        FAQEntry(shop=shop, question=q, answer=a) for q, a in BAKERY_FAQ
    )
    with vectors_remembered():  # the same texts for every test: embedded once per session
        indexing.refresh([e.pk for e in entries])
    assert FAQVector.objects.filter(entry__shop=shop, kind=FAQVector.QUESTION_SENTENCE).exists()
    return shop


@pytest.mark.django_db
def test_a_fact_inside_an_answer_finds_its_entry(bakery):
    # "donuts" appears only in the seasonal-menu answer, in one of its sentences.
    assert (
        search(bakery, "do you have donuts").best.entry.question == "Do you have a seasonal menu?"
    )
    assert search(bakery, "is the lot free").best.entry.question == "Is there parking?"


def test_a_shop_without_phrasings_gets_a_classifier_that_only_ranks():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 8))
    vectors, entry_ids, kinds, words = [], [], [], []
    for e, centre in enumerate(centres):
        for kind in ["question", "qa", "qsentence", "qsentence"]:
            v = centre + 0.05 * rng.normal(size=8)
            vectors.append(v / np.linalg.norm(v))
            entry_ids.append(100 + e)
            kinds.append(kind)
            words.append([f"topic{e}"])
    vectors = np.array(vectors, dtype=np.float32)
    index = build_index((12, 1), entry_ids, kinds, vectors, words)
    assert index.wording_bar == float("inf")  # no phrasings: no wording bar
    assert index.classifier is not None
    # Fitted on the questions and question + sentence vectors: each entry's own texts score it
    # highest.
    assert ((vectors @ index.classifier).argmax(axis=1) == np.repeat([0, 1, 2], 4)).all()
    # The bar is the dense calibration's, as without the classifier.
    assert index.threshold >= search_index.THRESHOLD_FLOOR


@pytest.mark.django_db
def test_a_shop_without_phrasings_has_the_floor_as_its_bar_at_least(bakery):
    result = search(bakery, "what time do you open on saturday")
    assert result.threshold >= search_index.THRESHOLD_FLOOR
    assert result.best.entry.question == "What are your hours?"


@pytest.mark.django_db
def test_a_follow_up_is_answered_from_the_previous_topic(demo_shop):
    result = search(demo_shop, "and on Sundays?", context=["when are you open"])
    assert result.confident
    assert result.best.entry.question == "What are your opening hours?"
    # Alone, the same words are not an hours question.
    assert not search(demo_shop, "and on Sundays?").confident


@pytest.mark.django_db
@pytest.mark.parametrize(
    "earlier",
    ["What are your hours?", "what time do you open tomorrow", "when are you open"],
)
@pytest.mark.parametrize("shop_name", ["demo_shop", "bakery"])
def test_a_follow_up_offers_the_previous_topic_at_least(request, shop_name, earlier):
    """The hours entry answers the follow-up, or is offered: the opening and holiday hours
    entries are close, and a terse follow-up does not always tell them apart."""
    shop = request.getfixturevalue(shop_name)
    hours = "What are your opening hours?" if shop_name == "demo_shop" else "What are your hours?"
    result = search(shop, "and on Sundays?", context=[earlier])
    if result.confident:
        assert result.best.entry.question == hours
    else:
        assert hours in [hit.entry.question for hit in result.suggestions]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "earlier, text",
    [
        ("Do you have special holiday hours?", "who is the president"),
        ("Do you deliver to Princeton?", "Can you recommend a good pizza place nearby?"),
        ("What are your opening hours?", "recommend a dentist"),
        ("Do you deliver to Princeton?", "who won the game last night"),
        ("Do you deliver to Princeton?", "thanks, bye"),
    ],
)
def test_an_off_topic_turn_never_borrows_the_previous_topic(demo_shop, earlier, text):
    assert search(demo_shop, earlier).confident  # the topic was answered
    result = search(demo_shop, text, context=[earlier])
    assert not result.confident
    # Plainly off-topic: no "did you mean" from the previous topic either.
    assert result.suggestions == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "earlier, text",
    [
        # The blend brought "did you mean" the previous topic's neighbours or the topic itself.
        ("can I order flowers for a wedding", "write me a poem about autumn"),
        ("Do you deliver to Princeton?", "do you have another location in columbus"),
        ("when do you open?", "do you sell pizza?"),
        ("when do you open?", "what's the weather like"),
        # Offered something alone, with "your" (a word of nearly every entry in an English shop,
        # whose words keep their stop words): never the earlier topic first (FOLLOW_UP_TOP_WORD).
        ("Do you deliver to Princeton?", "are you hiring? i'd love to work at your shop"),
    ],
)
def test_an_off_topic_turn_after_a_topic_gets_the_reply_it_gets_alone(demo_shop, earlier, text):
    alone = search(demo_shop, text)
    result = search(demo_shop, text, context=[earlier])
    assert not alone.confident and not result.confident
    assert [h.entry.question for h in result.suggestions] == [
        h.entry.question for h in alone.suggestions
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "earlier, text",
    [
        ("What are your hours?", "who is the president"),
        ("Do you deliver?", "can you recommend a dentist"),
        ("Do you make custom cakes?", "who won the football last night?"),
    ],
)
def test_an_off_topic_turn_is_not_confident_in_a_shop_without_phrasings(bakery, earlier, text):
    result = search(bakery, text, context=[earlier])
    assert not result.confident
    assert result.suggestions == []


@pytest.mark.django_db
def test_an_unsure_question_gets_suggestions_and_off_topic_text_none(bakery):
    unsure = search(bakery, "can I get a cake for my son's party on friday")
    assert not unsure.confident
    suggested = [hit.entry.question for hit in unsure.suggestions]
    assert "Do you make custom cakes?" in suggested and len(suggested) <= SUGGESTIONS
    # Suggestions are hits, best first, each within the (word-backed) margin of the bar.
    assert all(
        h.confidence >= unsure.threshold - MARGINS.suggestion_word for h in unsure.suggestions
    )
    off_topic = search(bakery, "what is the capital of mongolia")
    assert not off_topic.confident and off_topic.suggestions == []
