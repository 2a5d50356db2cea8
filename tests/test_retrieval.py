"""faq.retrieval.search on the real model and real pgvector: ranking, confidence, isolation."""

from __future__ import annotations

import numpy as np
import pytest

from faq import retrieval
from faq.models import FAQEntry, FAQVector
from faq.retrieval import Lexicon, build_index, fit_classifier, score_entries, search
from tests.conftest import make_demo_shop


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
        ("my cat might eat the bouquet, is that ok?", "Which flowers are safe for pets?"),
        ("Are you open on Sundays?", "What are your opening hours?"),
    ],
)
def test_customer_wording_finds_the_entry_confidently(demo_shop, text, expected):
    assert top(demo_shop, text) == (expected, True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "text",
    ["Can you fix my car's brakes?", "what is the meaning of life", "Do you sell concert tickets?"],
)
def test_off_topic_questions_are_not_confident(demo_shop, text):
    assert top(demo_shop, text)[1] is False


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
    before = search(demo_shop, "flowers").threshold
    # Removing every alternative phrasing switches the shop to question-based calibration.
    FAQVector.objects.filter(entry__shop=demo_shop, kind=FAQVector.ALTERNATIVE).delete()
    after = search(demo_shop, "flowers").threshold
    assert after != before
    assert after >= retrieval.FAQ_ONLY_THRESHOLD_FLOOR


def test_entry_scores_blend_best_and_best_two_plus_a_vote():
    sims = np.array([[0.9, 0.1, 0.8, 0.7]], dtype=np.float32)
    vec_entry = np.array([0, 0, 1, 1])
    scores = score_entries(sims, vec_entry, 2)[0]
    # Entry 0: 0.4*0.9 + 0.6*0.5; entry 1: 0.4*0.8 + 0.6*0.75; votes by positive similarity.
    votes = np.array([1.0, 1.5]) / 2.5
    expected = np.array([0.66, 0.77]) + retrieval.VOTE_WEIGHT * votes
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
    assert index.phrasing_calibrated and index.classifier is not None
    assert list(index.entry_ids) == [100, 101, 102]
    # The probes' own entries are left out (of the vectors, the classifier and the word counts),
    # so the threshold reflects the distant other entries, not the same entry's phrasings.
    assert index.threshold < 0.9


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
def test_word_matches_rerank_a_shop_without_phrasings(db):
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
    # Without phrasings the word bonus orders the hits but does not raise confidence.
    assert all(hit.confidence <= hit.score for hit in result.hits)
    assert not search(shop, "Where did you buy those shoes?").confident


@pytest.mark.django_db
def test_a_shop_with_one_entry_uses_the_floor(db):
    from faq.models import Shop

    shop = Shop.objects.create(name="Tiny")
    entry = FAQEntry.objects.create(shop=shop, question="Do you open on Sundays?", answer="No.")
    from faq import indexing

    indexing.refresh([entry.pk])
    result = search(shop, "Are you open on Sunday?")
    assert result.threshold == retrieval.FAQ_ONLY_THRESHOLD_FLOOR
    assert result.confident
