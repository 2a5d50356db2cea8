"""manage.py eval_retrieval on a tiny generated dataset: real model, real pgvector, real search."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from faq import search
from faq.management.commands import eval_retrieval
from faq.models import FAQEntry, FAQVector, Shop

KEYS = {
    "recall_at_1",
    "recall_at_3",
    "mrr",
    "oos_accuracy",
    "direct",
    "accuracy",
    "wrong_rate",
    "one_click",
    "oos_no_suggestions",
    "p50_ms",
    "p95_ms",
}
CONVERSATION_KEYS = {
    "conv_turns",
    "conv_accuracy",
    "conv_wrong_rate",
    "conv_one_click",
    "conv_oos_after_topic",
    "conv_oos_no_suggestions",
    "conv_oos_borrowed",
}


@pytest.fixture
def dataset(tmp_path):
    data = {
        "meta": {"name": "tiny"},
        "faqs": [
            {
                "id": "hours",
                "question": "What are your opening hours?",
                "answer": "Monday to Saturday, 9am to 6pm.",
            },
            {
                "id": "returns",
                "question": "Can I return an item?",
                "answer": "Yes, within 30 days with the receipt.",
                "examples": ["how do refunds work", "I want my money back"],
            },
            {
                "id": "delivery",
                "question": "Do you deliver?",
                "answer": "We deliver within 20 miles for $9.95.",
            },
        ],
        "queries": [
            {"text": "when are you open", "gold": ["hours"]},
            {"text": "refund please", "gold": ["returns"]},
            {"text": "do u deliver to my town", "gold": ["delivery", "hours"]},
            {"text": "what is the capital of mongolia", "gold": []},
        ],
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    oos = tmp_path / "oos.json"
    oos.write_text(json.dumps({"faqs": [], "queries": [{"text": "book me a flight", "gold": []}]}))
    return path, oos


def test_eval_prints_the_json_keys_and_leaves_no_shop_behind(db, dataset, capsys, monkeypatch):
    path, oos = dataset
    keep = Shop.objects.create(name="A real shop")
    queried_shops = set()
    real_search = search.search

    def spy(shop, text, limit=5, context=None):  # the real search, noting which shop it ran on
        queried_shops.add(shop.pk)
        return real_search(shop, text, limit, context)

    monkeypatch.setattr("faq.management.commands.eval_retrieval.search", spy)
    call_command("eval_retrieval", str(path), "--json", "--append-oos", str(oos))
    report = json.loads(capsys.readouterr().out)
    assert KEYS | {"n_queries"} <= set(report)
    assert not CONVERSATION_KEYS & set(report)  # no conversations in this file
    assert 0 <= report["wrong_rate"] <= 1 - report["accuracy"]
    assert report["accuracy"] <= report["one_click"] <= 1
    assert 0 <= report["oos_no_suggestions"] <= report["oos_accuracy"]
    # In-scope direct answers and declined out-of-scope queries make up the accuracy.
    made_of = report["direct"] * 3 + report["oos_accuracy"] * 2
    assert report["accuracy"] * 5 == pytest.approx(made_of, abs=1e-3)
    assert report["n_queries"] == 5 and report["n_out_of_scope"] == 2
    assert report["recall_at_3"] == 1.0  # three FAQs: every gold is in the top 3
    assert 0 < report["mrr"] <= 1 and 0 <= report["accuracy"] <= 1
    assert report["p95_ms"] >= report["p50_ms"] > 0
    assert len(queried_shops) == 1 and keep.pk not in queried_shops
    assert list(Shop.objects.all()) == [keep]
    assert not FAQEntry.objects.exists() and not FAQVector.objects.exists()

    call_command("eval_retrieval", str(path), "--limit", "2")
    out = capsys.readouterr().out
    assert "tiny: 3 FAQs, 2 queries" in out and "recall@1" in out and "p95 search latency" in out
    assert list(Shop.objects.all()) == [keep]


def test_eval_removes_its_shop_even_when_search_fails(db, dataset, monkeypatch):
    path, _ = dataset

    def broken(shop, text, limit=5, context=None):
        assert FAQVector.objects.filter(entry__shop=shop).exists()  # indexed for real
        raise KeyboardInterrupt  # as if Ctrl-C arrived mid-run

    monkeypatch.setattr("faq.management.commands.eval_retrieval.search", broken)
    with pytest.raises(KeyboardInterrupt):
        call_command("eval_retrieval", str(path), "--json")
    assert not Shop.objects.exists() and not FAQVector.objects.exists()


def test_eval_rejects_bad_datasets_clearly(db, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"faqs": [{"id": "a", "question": "Q"}], "queries": [{"text": "x", "gold": ["b"]}]}'
    )
    with pytest.raises(CommandError, match="unknown FAQ ids"):
        call_command("eval_retrieval", str(bad))
    bad.write_text('{"faqs": [{"id": "a", "question": "Q"}], "conversations": [{"turns": []}]}')
    with pytest.raises(CommandError, match="conversation #1 needs a list of turns"):
        call_command("eval_retrieval", str(bad))
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("eval_retrieval", str(bad))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("eval_retrieval", str(tmp_path / "missing.json"))
    assert not Shop.objects.exists()


def test_conversations_are_judged_turn_by_turn_in_context(db, tmp_path, capsys, monkeypatch):
    """A file of conversations only: each turn searched with the customer's earlier turns as
    context, null single-query keys, and the conversation keys."""
    data = {
        "faqs": [
            {"id": "hours", "question": "What are your opening hours?", "answer": "9 to 5."},
            {"id": "cakes", "question": "Do you make birthday cakes?", "answer": "Yes, $40."},
        ],
        "conversations": [
            {
                "turns": [
                    {"text": "when do you open", "gold": ["hours"]},
                    {"text": "and on sundays?", "gold": ["hours"]},
                    {"text": "who won the football last night?", "gold": []},
                ]
            },
            {"turns": [{"text": "hello there", "gold": []}]},
        ],
    }
    path = tmp_path / "talks.json"
    path.write_text(json.dumps(data))
    calls = []
    real_search = search.search

    def spy(shop, text, limit=5, context=None):
        calls.append((text, list(context or [])))
        return real_search(shop, text, limit, context)

    monkeypatch.setattr("faq.management.commands.eval_retrieval.search", spy)
    call_command("eval_retrieval", str(path), "--json")
    report = json.loads(capsys.readouterr().out)
    assert calls == [
        ("when do you open", []),
        ("and on sundays?", ["when do you open"]),
        ("who won the football last night?", ["when do you open", "and on sundays?"]),
        # An off-topic turn after a topic is searched alone too (conv_oos_borrowed).
        ("who won the football last night?", []),
        ("hello there", []),
    ]
    assert all(report[key] is None for key in KEYS - {"p50_ms", "p95_ms"})
    assert report["conv_turns"] == 4 and report["n_queries"] == 0
    # Only the football turn comes after an in-scope turn ("hello there" opens its conversation).
    assert report["conv_oos_after_topic"] in (0.0, 1.0)
    assert report["conv_oos_no_suggestions"] <= report["conv_oos_after_topic"]
    assert report["conv_oos_borrowed"] in (0.0, 1.0)
    assert 0 <= report["conv_wrong_rate"] <= 1 - report["conv_accuracy"]
    assert report["conv_accuracy"] <= report["conv_one_click"] <= 1
    assert not Shop.objects.exists()

    call_command("eval_retrieval", str(path))
    out = capsys.readouterr().out
    assert "2 conversations" in out and "off-topic declined" in out


def test_learning_curve_accepts_wordings_as_the_owner_does_and_reports_each_step(
    transactional_db, tmp_path, capsys, monkeypatch
):
    """--learning-curve: held-back queries asked with none, half and all of the rest accepted as
    phrasings of their first gold entry, stored and re-embedded through the real path (which
    runs once the saves commit: transactional_db, as in manage.py's autocommit)."""
    faqs = [
        {"id": "hours", "question": "What are your opening hours?", "answer": "9am to 6pm."},
        {"id": "returns", "question": "Can I return an item?", "answer": "Within 30 days."},
        {"id": "delivery", "question": "Do you deliver?", "answer": "Within 20 miles."},
    ]
    wordings = {
        "hours": ["when do you open", "what time do you close", "are you open late"],
        "returns": ["refund please", "i want my money back", "can i send it back"],
        "delivery": ["do u deliver", "can you bring it to my house", "shipping to my town?"],
    }
    queries = [{"text": t, "gold": [g]} for g, texts in wordings.items() for t in texts]
    queries += [{"text": "what is the capital of mongolia", "gold": []}]
    path = tmp_path / "learn.json"
    path.write_text(json.dumps({"faqs": faqs, "queries": queries}))

    accepted = []  # (entry question, its phrasings) after each accepting step
    real_accept = eval_retrieval.accept_wordings

    def spy(entries, batch):
        added = real_accept(entries, batch)
        for entry in entries.values():
            # The saves went through the real indexing path: each phrasing has its vector.
            stored = set(
                FAQVector.objects.filter(entry=entry, kind=FAQVector.ALTERNATIVE).values_list(
                    "text", flat=True
                )
            )
            assert stored == set(FAQEntry.objects.get(pk=entry.pk).alternative_list)
        accepted.append(sum(len(e.alternative_list) for e in entries.values()))
        return added

    monkeypatch.setattr(eval_retrieval, "accept_wordings", spy)
    call_command("eval_retrieval", str(path), "--json", "--learning-curve", "--seeds", "2")
    report = json.loads(capsys.readouterr().out)
    curve = report["learning"]
    assert curve["seeds"] == 2 and len(curve["per_seed"]) == 2
    assert [step["step"] for step in curve["steps"]] == ["none", "half", "all"]
    for seeded in curve["per_seed"]:
        # 9 in scope: 4 held back (40 %), asked with the out-of-scope one; 5 to accept.
        assert seeded["held_back"] == 4 and seeded["asked"] == 5
        assert [s["wordings"] for s in seeded["steps"]] == [0, 2, 5]
        for step in seeded["steps"]:
            assert 0 <= step["wrong_rate"] <= 1 and 0 <= step["direct"] <= step["one_click"] + 1
    # Per seed: nothing, then 2, then all 5 wordings stored as phrasings; then put back.
    assert accepted == [0, 2, 5, 0, 2, 5]
    for n, step in enumerate(curve["steps"]):
        for key in ("direct", "wrong_rate", "one_click"):
            values = [s["steps"][n][key] for s in curve["per_seed"]]
            assert step[key] == pytest.approx(sum(values) / 2, abs=1e-4)
    assert not Shop.objects.exists() and not FAQVector.objects.exists()

    call_command("eval_retrieval", str(path), "--learning-curve", "--seeds", "1")
    out = capsys.readouterr().out
    assert "learning curve (mean of 1 seeds" in out and "all (5)" in out


def test_accepting_a_wording_stores_it_once_as_a_phrasing(db):
    shop = Shop.objects.create(name="Phrasings")
    entry = FAQEntry.objects.create(shop=shop, question="Do you deliver?", answer="Yes.")
    added = entry.add_phrasings(["do  you DELIVER?", "can you bring it", "Can you bring it"])
    assert added == ["can you bring it"]
    assert entry.alternative_list == ["can you bring it"]
    assert entry.add_phrasings(["can you bring  it"]) == []
