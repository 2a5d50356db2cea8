"""Learning from accepted customer wordings, through the real model and database: the shop gets
more direct and no less safe, and keeps every answer its owner's texts gave on day one; a rare
word of an answer is evidence on day one; a wording that would pull another entry's questions is
flagged before it is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from faq import embedding, indexing
from faq.models import FAQEntry, FAQVector, Shop
from faq.search import _owners_answer, search
from faq.search_index import build_index, check_wording
from tests.support import embedded_texts
from widget.models import CustomerWording

BIKE_SHOP = [
    (
        "What are your opening hours?",
        "Monday to Friday 9am to 6pm, Saturday 10am to 4pm. We are closed on Sundays.",
    ),
    (
        "Which payment methods do you accept?",
        "We accept cash, Visa, Mastercard, Apple Pay and Google Pay. Gift cards can be used in "
        "the shop.",
    ),
    (
        "Do you repair bikes?",
        "Yes, our workshop services every kind of bicycle. A basic tune-up costs $60 and takes "
        "two days.",
    ),
    (
        "Can I rent a bike?",
        "We rent city bikes and e-bikes by the day. A city bike is $25 a day, an e-bike $45.",
    ),
    ("Do you ship orders?", "We ship parts and accessories anywhere in the country for $8."),
    (
        "What is your return policy?",
        "Unused items can be returned within 30 days with the receipt for a full refund.",
    ),
    ("Do you sell second-hand bikes?", "We sell inspected used bikes with a six-month warranty."),
    ("Where can I park?", "There is free parking behind the shop and racks at the front door."),
]

# What customers clicked through "did you mean" to each entry (by its position above), and the
# owner accepted: 30 wordings.
ACCEPTED = {
    0: ["when do you open", "are you open on saturday", "what time do you close", "opening times?"],
    1: ["can i pay by card", "do you take visa", "is cash ok", "can I use google pay"],
    2: [
        "can you fix my bike",
        "my brakes are squeaking can you help",
        "how much is a tune up",
        "do you service e-bikes",
    ],
    3: [
        "can i hire a bike for the day",
        "how much to rent an ebike",
        "bike rental prices",
        "do you rent bikes to tourists",
    ],
    4: ["do you deliver parts", "how much is shipping", "can you send me a chain", "do you ship"],
    5: [
        "can i return a helmet",
        "refund policy?",
        "i want my money back for these gloves",
        "how long do i have to return something",
    ],
    6: ["do you have used bikes", "any cheap second hand bikes", "do you sell refurbished bikes"],
    7: ["is there parking", "where do i leave my car", "can i park nearby"],
}


@pytest.fixture(scope="module")
def bike_vectors() -> list[list[tuple[str, str, str, list[float]]]]:
    """[(model, kind, text, vector)] for each entry of BIKE_SHOP, by the real models of an English
    shop: embedded once for the module's tests, whose shops have the same texts."""
    models = embedding.shop_models("en")
    return [embedded_texts(FAQEntry(question=q, answer=a), models) for q, a in BIKE_SHOP]


@pytest.fixture
def bike_shop(db, bike_vectors) -> tuple[Shop, list[FAQEntry]]:
    shop = Shop.objects.create(name="Spoke & Chain", language="en")
    entries = FAQEntry.objects.bulk_create(
        FAQEntry(shop=shop, question=q, answer=a) for q, a in BIKE_SHOP
    )
    FAQVector.objects.bulk_create(
        FAQVector.of(entry, kind, text, embedding.model_name(model), vector)
        for entry, rows in zip(entries, bike_vectors, strict=True)
        for model, kind, text, vector in rows
    )
    # Every vector is stored: the refresh embeds nothing, and builds the shop's search index.
    assert indexing.refresh([e.pk for e in entries]) == 0
    return shop, entries


@pytest.mark.django_db
def test_a_rare_word_of_one_answer_answers_directly_on_day_one(bike_shop):
    shop, entries = bike_shop
    result = search(shop, "Do you take apple pay?")
    assert result.confident
    assert result.best.entry == entries[1]
    # Below the shop's bar on meaning alone: the word is what made it direct.
    assert result.best.confidence < result.threshold
    # The same word about something the shop does not answer is no evidence.
    assert not search(shop, "Do you sell Apple watches?").confident


# Customers' questions none of which is among the accepted wordings below.
ASKED = [
    "Do you take apple pay?",
    "What are your opening hours?",
    "what is your return policy",
    "where can i park my car",
    "do you sell used bikes",
    "can i rent an e-bike",
    "do you ship accessories",
    "how much does a tune-up cost",
]


@pytest.mark.django_db
def test_accepted_wordings_make_the_shop_direct_and_keep_it_safe(
    bike_shop, django_capture_on_commit_callbacks
):
    shop, entries = bike_shop
    held_back = "could you fix my bike's brakes"
    off_topic = ["can you recommend a good pizza place", "who won the world cup", "sell me a car"]
    assert not search(shop, held_back).confident  # day one: a "did you mean"
    day_one = {text: search(shop, text) for text in ASKED}
    answered = {text: r.best.entry for text, r in day_one.items() if r.confident}
    assert len(answered) >= 2, answered

    with django_capture_on_commit_callbacks(execute=True):
        for position, texts in ACCEPTED.items():
            for text in texts:
                CustomerWording.record(entries[position], text).accept()  # the owner's accept
    assert sum(len(e.alternative_list) for e in FAQEntry.objects.filter(shop=shop)) == 30

    result = search(shop, held_back)
    assert result.confident and result.best.entry == entries[2]
    for text in off_topic:
        assert not search(shop, text).confident, text
    # Learning never takes an answer away: what the owner's texts answered directly on day one
    # is still answered directly, with the same entry.
    for text, entry in answered.items():
        result = search(shop, text)
        assert result.confident and result.best.entry == entry, text


def test_the_owners_texts_keep_an_answer_a_neighbours_wordings_crowd():
    """The owner's texts alone lead clearly and clear their own bar: the answer stands even when
    the full dense score (with a neighbouring entry's wordings) leads by less than the gap, as
    long as the entry is still the best there; not when another entry is now the best."""
    index = build_index(
        (4, 1),
        [1, 1, 2, 2],
        ["question", "qa", "question", "qa"],
        np.eye(4, dtype=np.float32),
        [["a"], ["a"], ["b"], ["b"]],
    )
    owner = np.array([index.owner_threshold + 0.05, 0.2], dtype=np.float32)
    assert _owners_answer(index, np.array([0.80, 0.79]), owner) == 0
    assert _owners_answer(index, np.array([0.79, 0.80]), owner) is None
    # Not clear on the owner's texts: no answer.
    close = np.array([index.owner_threshold + 0.05, index.owner_threshold + 0.04])
    assert _owners_answer(index, np.array([0.80, 0.79]), close) is None
    below = np.array([index.owner_threshold - 0.01, 0.2])
    assert _owners_answer(index, np.array([0.80, 0.79]), below) is None


@pytest.mark.django_db
def test_a_wording_closer_to_another_entry_is_flagged_before_it_is_accepted(bike_shop):
    shop, entries = bike_shop
    hours, repairs = entries[0], entries[2]

    fitting = check_wording(hours, "when do you open")
    assert fitting.pulls is None
    assert fitting.own_similarity > fitting.other_similarity
    assert "What are your opening hours?" in fitting.effect and "directly" in fitting.effect

    conflict = check_wording(hours, "how much is a tune-up")
    assert conflict.pulls == repairs
    assert conflict.other_similarity > conflict.own_similarity
    assert "Do you repair bikes?" in conflict.effect and "pull" in conflict.effect
    # Nothing was stored: checking is not accepting.
    assert FAQEntry.objects.get(pk=hours.pk).alternative_list == []
