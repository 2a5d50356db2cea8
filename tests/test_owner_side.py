"""The owner's side: conversations, dashboard, unanswered questions and retention, scoped by shop.

Real PostgreSQL, real embedding model, the real admin through Django's test client. Two shops,
each with an owner made by `create_owner`, and a superuser.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid

import numpy as np
import pytest
from bs4 import BeautifulSoup
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from faq import embedding
from faq.models import FAQEntry, FAQVector, Shop
from owner import charts, unanswered
from owner.dashboard import shop_stats
from tests.support import make_demo_shop, make_owner, stored_conversation
from widget.models import Conversation, Message

pytestmark = pytest.mark.django_db


def talk(shop: Shop, *turns, page: str = "https://shop.example/", days_ago: float = 0):
    """A conversation: each turn is (question, mode, confident, feedback, source entries)."""
    answers = [
        (
            question,
            {
                "mode": mode,
                "confident": confident,
                "feedback": feedback,
                "score": 0.8 if confident else 0.3,
                "sources": [{"id": e.pk, "question": e.question} for e in entries],
            },
        )
        for question, mode, confident, feedback, entries in turns
    ]
    return stored_conversation(shop, answers, page=page, days_ago=days_ago)


@pytest.fixture
def world(db, demo_texts_embedded):
    shop_a = make_demo_shop(demo_texts_embedded, name="Petal & Stem")
    shop_b = Shop.objects.create(name="Thorn & Twig")
    entry_a = shop_a.entries.get(question="What are your opening hours?")
    entry_b = FAQEntry.objects.create(shop=shop_b, question="Do you sharpen tools?", answer="Yes.")
    alice, bob = make_owner(shop_a, "alice"), make_owner(shop_b, "bob")
    root = User.objects.create_superuser("root", "root@example.com", None)
    conv_a = talk(
        shop_a,
        ("when do you open?", "faq", True, "up", [entry_a]),
        ("do you sell chocolate?", "fallback", False, "", []),
        ("is the shop open sunday", "faq", True, "down", [entry_a]),
        page="https://petal.example/contact",
    )
    conv_a2 = talk(shop_a, ("chocolates with flowers?", "fallback", False, "", []), days_ago=3)
    conv_b = talk(
        shop_b,
        ("do you sharpen shears?", "faq", True, "up", [entry_b]),
        ("secret thorn question", "fallback", False, "down", []),
        page="https://thorn.example/",
    )
    return type(
        "World",
        (),
        dict(
            shop_a=shop_a,
            shop_b=shop_b,
            entry_a=entry_a,
            entry_b=entry_b,
            alice=alice,
            bob=bob,
            root=root,
            conv_a=conv_a,
            conv_a2=conv_a2,
            conv_b=conv_b,
        ),
    )


def as_user(client, user):
    client.force_login(user)
    return client


CHANGELIST = "admin:widget_conversation_changelist"


# --- Conversations admin ---------------------------------------------------------------------


def test_owner_lists_only_their_conversations_with_counts_in_one_query(
    client, world, django_assert_max_num_queries
):
    as_user(client, world.alice)
    with django_assert_max_num_queries(12):
        response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert {c.pk for c in rows} == {world.conv_a.pk, world.conv_a2.pk}
    first = next(c for c in rows if c.pk == world.conv_a.pk)
    assert (first.n_messages, first.n_up, first.n_down) == (6, 1, 1)
    assert sorted(first.modes) == ["fallback", "faq"]
    html = response.content.decode()
    assert "petal.example/contact" in html and "thorn.example" not in html
    # One shop: no shop column or filter, but links to the dashboard and the unanswered page.
    assert "column-shop" not in html
    assert reverse("admin:widget_dashboard", args=[world.shop_a.pk]) in html
    assert reverse("admin:widget_unanswered", args=[world.shop_a.pk]) in html
    assert reverse("admin:widget_dashboard", args=[world.shop_b.pk]) not in html


def test_superuser_lists_both_shops_and_can_filter_by_shop(client, world):
    as_user(client, world.root)
    response = client.get(reverse(CHANGELIST))
    assert {c.pk for c in response.context["cl"].result_list} == {
        world.conv_a.pk,
        world.conv_a2.pk,
        world.conv_b.pk,
    }
    assert "column-shop" in response.content.decode()
    response = client.get(reverse(CHANGELIST), {"shop__id__exact": world.shop_b.pk})
    assert [c.pk for c in response.context["cl"].result_list] == [world.conv_b.pk]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"mode": "fallback"}, {"conv_a", "conv_a2"}),
        ({"mode": "llm"}, set()),
        ({"down": "yes"}, {"conv_a"}),
        ({"down": "no"}, {"conv_a2"}),
        ({"fallback": "no"}, set()),
        ({"q": "chocolate"}, {"conv_a", "conv_a2"}),
        ({"q": "secret thorn"}, set()),  # bob's words are not searchable by alice
    ],
)
def test_conversation_filters_and_search_stay_in_the_owners_shop(client, world, params, expected):
    as_user(client, world.alice)
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    got = {c.pk for c in response.context["cl"].result_list}
    assert got == {getattr(world, name).pk for name in expected}
    # The counts stay right when a filter is on (Exists, not a second join).
    for c in response.context["cl"].result_list:
        assert c.n_messages == Message.objects.filter(conversation=c).count()


def test_transcript_shows_modes_sources_and_feedback_and_other_shops_are_404(client, world):
    as_user(client, world.alice)
    url = reverse("admin:widget_conversation_change", args=[world.conv_a.pk])
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "when do you open?" in html and "do you sell chocolate?" in html
    assert "mode-faq" in html and "mode-fallback" in html
    assert "thumbs up: helpful" in html and "thumbs down: not helpful" in html
    entry_url = reverse("admin:faq_faqentry_change", args=[world.entry_a.pk])
    assert f'href="{entry_url}"' in html

    for object_id in (world.conv_b.pk, uuid.uuid4(), "not-a-uuid"):
        response = client.get(reverse("admin:widget_conversation_change", args=[object_id]))
        assert response.status_code == 404
    assert client.get(f"/admin/widget/conversation/{world.conv_b.pk}/delete/").status_code in (
        403,
        404,
    )
    assert client.get(f"/admin/widget/conversation/{world.conv_b.pk}/history/").status_code == 404


def test_the_transcript_shows_the_bots_links_as_links_not_markdown(client, world):
    """As the customer saw them (a first hour's walk saw "[Rental terms](...)" there)."""
    conversation = stored_conversation(world.shop_a, [("rent a bike?", {"mode": "faq"})])
    conversation.messages.filter(role=Message.BOT).update(
        text="Yes. [Rental terms](https://spoke.example/rentals) and **helmets** included."
    )
    as_user(client, world.alice)
    html = client.get(
        reverse("admin:widget_conversation_change", args=[conversation.pk])
    ).content.decode()
    assert '<a href="https://spoke.example/rentals"' in html and "[Rental terms]" not in html
    assert "<strong>helmets</strong>" in html


def test_conversations_are_read_only_and_only_a_superuser_deletes(client, world):
    as_user(client, world.alice)
    assert client.get("/admin/widget/conversation/add/").status_code == 403
    url = reverse("admin:widget_conversation_change", args=[world.conv_a.pk])
    client.post(url, {"page_url": "https://evil.example/"})
    world.conv_a.refresh_from_db()
    assert world.conv_a.page_url == "https://petal.example/contact"
    delete_url = reverse("admin:widget_conversation_delete", args=[world.conv_a.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Conversation.objects.filter(pk=world.conv_a.pk).exists()
    # No delete action in the list for an owner.
    actions = client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices
    assert "delete_selected" not in dict(actions)

    as_user(client, world.root)
    assert client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Conversation.objects.filter(pk=world.conv_a.pk).exists()
    assert not Message.objects.filter(conversation_id=world.conv_a.pk).exists()


def test_export_action_exports_only_the_owners_conversations(client, world):
    as_user(client, world.alice)
    response = client.post(
        reverse(CHANGELIST),
        {
            "action": "export_csv",
            "_selected_action": [str(world.conv_a.pk), str(world.conv_b.pk)],
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["conversation"] for r in rows} == {str(world.conv_a.pk)}
    assert len(rows) == 6
    assert not any("thorn" in r["text"] for r in rows)
    assert rows[1]["sources"] == "What are your opening hours?"


def test_owner_without_permissions_sees_nothing(client, world):
    stranger = User.objects.create_user("stranger", is_staff=True)
    world.shop_a.owners.add(stranger)  # linked, but not in the owners group: no permissions
    as_user(client, stranger)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:widget_dashboard", args=[world.shop_a.pk])).status_code == 403
    assert client.get(reverse("admin:widget_unanswered", args=[world.shop_a.pk])).status_code == 403


# --- Dashboard and unanswered pages ------------------------------------------------------------


OWNER_PAGES = ["admin:widget_dashboard", "admin:widget_unanswered"]


@pytest.mark.parametrize("page", OWNER_PAGES)
def test_owner_pages_are_scoped_and_cross_shop_urls_are_404(client, world, page):
    as_user(client, world.alice)
    assert client.get(reverse(page, args=[world.shop_a.pk])).status_code == 200
    assert client.get(reverse(page, args=[world.shop_b.pk])).status_code == 404
    assert client.get(reverse(page, args=[999999])).status_code == 404
    as_user(client, world.bob)
    assert client.get(reverse(page, args=[world.shop_a.pk])).status_code == 404
    response = client.get(reverse(page, args=[world.shop_b.pk]))
    assert response.status_code == 200
    assert "chocolate" not in response.content.decode()
    as_user(client, world.root)
    for shop in (world.shop_a, world.shop_b):
        assert client.get(reverse(page, args=[shop.pk])).status_code == 200
    client.logout()
    response = client.get(reverse(page, args=[world.shop_a.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_unanswered_entry_form_is_scoped(client, world):
    chocolate = Message.objects.get(conversation=world.conv_a, text="do you sell chocolate?")
    thorn = Message.objects.get(conversation=world.conv_b, role="user", text__startswith="secret")
    as_user(client, world.alice)
    url_b = reverse("admin:widget_unanswered_entry", args=[world.shop_b.pk])
    assert client.get(url_b, {"question": thorn.pk}).status_code == 404
    assert client.post(url_b, {"action": "create", "messages": str(thorn.pk)}).status_code == 404
    # Another shop's question id under one's own shop is simply not an open question there.
    url_a = reverse("admin:widget_unanswered_entry", args=[world.shop_a.pk])
    response = client.get(url_a, {"question": thorn.pk})
    assert response.status_code == 302
    # A tampered POST naming bob's question resolves only alice's own.
    response = client.post(
        url_a,
        {
            "action": "create",
            "messages": f"{chocolate.pk},{thorn.pk}",
            "new-question": "Do you sell chocolates?",
            "new-answer": "Yes, Belgian chocolates, $12 a box.",
            "new-alternatives": "",
            "new-category": "Products",
            "new-published": "on",
        },
    )
    assert response.status_code == 302
    entry = FAQEntry.objects.get(question="Do you sell chocolates?")
    assert entry.shop == world.shop_a
    chocolate.refresh_from_db()
    thorn.refresh_from_db()
    assert chocolate.resolved_by == entry and thorn.resolved_by is None


def test_dashboard_shows_the_figures_chart_cited_entries_and_open_groups(client, world):
    as_user(client, world.alice)
    response = client.get(reverse("admin:widget_dashboard", args=[world.shop_a.pk]))
    html = response.content.decode()
    stats = response.context["stats"]
    assert (stats.conversations, stats.questions, stats.answers) == (2, 4, 4)
    assert (stats.thumbs_up, stats.thumbs_down) == (1, 1)
    assert stats.faq_share == 0.5 and stats.fallback_share == 0.5
    assert [(c.entry_id, c.count) for c in stats.cited] == [(world.entry_a.pk, 2)]
    assert '<svg class="shopbot-chart"' in html and "<desc" in html
    assert "What are your opening hours?" in html
    # Both chocolate questions are one open group; the thumbs-down question is another.
    assert response.context["group_count"] == 2
    assert response.context["groups"][0].count == 2
    assert reverse("admin:widget_unanswered", args=[world.shop_a.pk]) in html


def test_admin_index_links_each_owner_to_their_own_shop_pages(client, world):
    as_user(client, world.alice)
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:widget_dashboard", args=[world.shop_a.pk]) in html
    assert reverse("admin:widget_unanswered", args=[world.shop_a.pk]) in html
    assert reverse("admin:widget_dashboard", args=[world.shop_b.pk]) not in html
    # And from the shop's own admin page.
    html = client.get(reverse("admin:faq_shop_change", args=[world.shop_a.pk])).content.decode()
    assert reverse("admin:widget_dashboard", args=[world.shop_a.pk]) in html
    assert reverse("admin:widget_unanswered", args=[world.shop_a.pk]) in html
    as_user(client, world.root)
    html = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:widget_dashboard", args=[world.shop_b.pk]) in html


def test_shop_stats_count_per_day_in_the_window_only(world):
    talk(world.shop_a, ("ancient question", "faq", True, "", []), days_ago=45)
    stats = shop_stats(world.shop_a, days=30)
    assert len(stats.days) == 30
    assert stats.days[-1].day == timezone.localdate()
    assert (stats.days[-1].conversations, stats.days[-1].questions) == (1, 3)
    assert (stats.days[-4].conversations, stats.days[-4].questions) == (1, 1)
    assert stats.conversations == 2  # the 45-day-old one is outside the window


# --- Unanswered questions, grouped by meaning --------------------------------------------------


def test_unanswered_questions_are_fallbacks_unsure_answers_and_thumbs_down_not_yet_resolved(world):
    talk(
        world.shop_a,
        ("confident and liked", "faq", True, "up", []),
        ("unsure llm answer", "llm", False, "", []),
    )
    texts = set(Message.objects.unanswered(world.shop_a).values_list("text", flat=True))
    assert texts == {
        "do you sell chocolate?",
        "chocolates with flowers?",
        "is the shop open sunday",  # confident, but a thumbs-down
        "unsure llm answer",
    }
    Message.objects.filter(text="unsure llm answer").update(resolved_by=world.entry_a)
    assert "unsure llm answer" not in set(
        Message.objects.unanswered(world.shop_a).values_list("text", flat=True)
    )


def test_similar_questions_group_together_with_real_embeddings(world):
    shop = world.shop_b
    asked = [
        "do you sell chocolate?",
        "can I add chocolates to my order",
        "chocolates with flowers?",
        "Do you sell chocolate?",  # the same words again count twice, shown once
        "parking?",
        "is there somewhere to park",
        "are you hiring?",
    ]
    for text in asked:
        talk(shop, (text, "fallback", False, "", []))
    groups = unanswered.groups(shop)
    by_size = [sorted(q.text for q in g.questions) for g in groups]
    assert by_size[0] == sorted(asked[:4])
    assert sorted(asked[4:6]) in by_size
    assert ["are you hiring?"] in by_size
    assert ["secret thorn question"] in by_size  # bob's own thumbs-down fallback
    top = groups[0]
    assert top.count == 4 and top.typical.text in asked[:4]
    assert len(top.phrasings) == 2  # three distinct wordings, minus the typical one
    # Embeddings were stored, so the next grouping does not embed again.
    assert not Message.objects.filter(
        conversation__shop=shop, role="user", embedding__isnull=True, text__in=asked
    ).exists()


def test_cluster_and_medoid_on_plain_vectors():
    vectors = unanswered.embed_questions(
        ["what time do you open", "opening hours?", "when do you open on sunday", "parking?"]
    )
    groups = unanswered.cluster(vectors)
    assert sorted(map(sorted, groups)) == [[0, 1, 2], [3]]
    assert unanswered.medoid(vectors[[0, 1, 2]]) in (0, 1, 2)
    assert unanswered.cluster(np.zeros((0, 384), dtype=np.float32)) == []


def test_grouping_keeps_pick_up_apart_from_hire_and_joins_languages():
    """Issue 29: "can you come get my bike from my house" was grouped with "can I hire a bike for
    the weekend", and Spanish questions together because they were Spanish (with pizza)."""
    asked = [
        "can you come get my bike from my house",
        "could you collect my bike from home for a service",
        "can I hire a bike for the weekend",
        "¿alquilan bicicletas para el fin de semana?",
        "¿pueden recoger mi bici en casa?",
        "¿venden pizza?",
    ]
    groups = unanswered.cluster(unanswered.embed_questions(asked))
    found = sorted(sorted(asked[row] for row in group) for group in groups)
    assert sorted(asked[:2] + asked[4:5]) in found  # pick-up, in English and in Spanish
    assert sorted(asked[2:4]) in found  # hire, in English and in Spanish
    assert ["¿venden pizza?"] in found


def test_eval_grouping_scores_pairs_against_a_persons_groups(tmp_path):
    from owner.management.commands.eval_grouping import pair_scores

    # A person: {a, b}, {c}. Found: {a, b, c}: one right pair of three; every right pair found.
    scores = pair_scores(["x", "x", "y"], [1, 1, 1])
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == 1
    assert pair_scores(["x", "x", "y"], [5, 5, 7])["ari"] == 1
    labelled = {
        "shops": [
            {
                "name": "bakery",
                "questions": [
                    {"text": "do you have gluten free bread", "group": "gf"},
                    {"text": "anything gluten free?", "group": "gf"},
                    {"text": "are you hiring", "group": "jobs"},
                ],
            }
        ]
    }
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(labelled))
    out = io.StringIO()
    call_command("eval_grouping", str(path), stdout=out)
    assert re.search(r"bakery\s+3\s+2\s+2\s+1\.000\s+1\.000\s+1\.000\s+1\.000", out.getvalue())
    path.write_text('{"shops": [{"name": "x", "questions": [{"text": "no group"}]}]}')
    with pytest.raises(CommandError, match="every question needs a text and a group"):
        call_command("eval_grouping", str(path), stdout=out)


def naive_average_linkage(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Textbook average linkage, recomputed from scratch at every step (slow and obviously
    right): merge the two groups with the highest mean pairwise similarity while it is at least
    `threshold`."""
    similarity = vectors @ vectors.T
    groups = [[i] for i in range(len(vectors))]
    while len(groups) > 1:
        best, pair = -np.inf, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                mean = similarity[np.ix_(groups[a], groups[b])].mean()
                if mean > best:
                    best, pair = mean, (a, b)
        if best < threshold:
            break
        a, b = pair
        groups[a] = groups[a] + groups.pop(b)
    return groups


def test_cluster_matches_textbook_average_linkage_on_generated_data():
    # Clustered random sets: a few centres, points scattered around them on the unit sphere.
    # The hand-written clustering this replaced merged absorbed groups again (192 of 300 sets
    # disagreed with scipy), inflating the counts an owner sees.
    rng = np.random.default_rng(7)
    for _ in range(60):
        centres = rng.normal(size=(rng.integers(2, 6), 16))
        points = centres[rng.integers(0, len(centres), size=rng.integers(5, 25))]
        points = points + rng.normal(scale=0.6, size=points.shape)
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        groups = unanswered.cluster(points.astype(np.float32), 0.5)
        rows = sorted(r for group in groups for r in group)
        assert rows == list(range(len(points)))  # every question in exactly one group
        expected = naive_average_linkage(points, 0.5)
        assert sorted(map(sorted, groups)) == sorted(map(sorted, expected))


def test_creating_an_entry_from_a_group_resolves_it_and_embeds_the_entry(
    client, world, django_capture_on_commit_callbacks
):
    as_user(client, world.alice)
    chocolate = Message.objects.get(text="do you sell chocolate?")
    url = reverse("admin:widget_unanswered_entry", args=[world.shop_a.pk])
    response = client.get(url, {"question": chocolate.pk})
    assert response.status_code == 200
    form = response.context["new_form"]
    initial = form.initial
    initial["messages"] = response.context["message_ids"]
    assert initial["question"] in {"Do you sell chocolate?", "Chocolates with flowers?"}
    assert len(initial["alternatives"].splitlines()) == 1
    ids = sorted(int(i) for i in initial["messages"].split(","))
    assert len(ids) == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url,
            {
                "action": "create",
                "messages": initial["messages"],
                "new-question": initial["question"],
                "new-answer": "Yes: a box of truffles can go with any bouquet, $14.",
                "new-alternatives": initial["alternatives"],
                "new-category": "Products",
                "new-published": "on",
            },
        )
    entry = FAQEntry.objects.get(answer__startswith="Yes: a box of truffles")
    assert response.status_code == 302
    # Both buttons ("Save the entry", "Add the phrasings") return to the list.
    assert response["Location"] == reverse("admin:widget_unanswered", args=[world.shop_a.pk])
    assert entry.shop == world.shop_a
    assert set(entry.resolved_questions.values_list("pk", flat=True)) == set(ids)
    own = FAQVector.objects.filter(entry=entry, model_name=embedding.model_name())
    assert own.count() == len(entry.embedding_texts())
    # The group has left the open list; the transcript says what answered it.
    assert all(chocolate.pk not in g.message_ids for g in unanswered.groups(world.shop_a))
    page = client.get(reverse("admin:widget_unanswered", args=[world.shop_a.pk]))
    assert not [g for g in page.context["groups"] if "chocolate" in g.typical.text.lower()]
    assert "2 questions marked answered" in page.content.decode()  # the success message
    transcript = client.get(reverse("admin:widget_conversation_change", args=[world.conv_a.pk]))
    assert "Answered since by the FAQ entry" in transcript.content.decode()
    # Asking again: the group is gone, so the form sends the owner back to the list.
    again = client.get(url, {"question": chocolate.pk})
    assert again.status_code == 302


def test_adding_phrasings_to_an_existing_entry_resolves_the_group(client, world):
    as_user(client, world.alice)
    sunday = Message.objects.get(text="is the shop open sunday")
    url = reverse("admin:widget_unanswered_entry", args=[world.shop_a.pk])
    response = client.post(
        url,
        {
            "action": "existing",
            "messages": str(sunday.pk),
            "old-entry": world.entry_a.pk,
            "old-alternatives": "Is the shop open sunday\nwhat time do you open",
        },
    )
    assert response.status_code == 302
    world.entry_a.refresh_from_db()
    alternatives = world.entry_a.alternative_list
    assert alternatives.count("what time do you open") == 1  # already there, not doubled
    assert "Is the shop open sunday" in alternatives
    sunday.refresh_from_db()
    assert sunday.resolved_by == world.entry_a
    # Another shop's entry cannot be chosen.
    response = client.post(
        url,
        {
            "action": "existing",
            "messages": str(sunday.pk),
            "old-entry": world.entry_b.pk,
            "old-alternatives": "x",
        },
    )
    assert response.status_code == 200 and response.context["existing_form"].errors
    assert "x" not in world.entry_b.alternative_list


def test_the_owner_dismisses_noise_and_ticks_which_questions_become_phrasings(client, world):
    as_user(client, world.alice)
    pizza = talk(
        world.shop_a,
        ("do you deliver pizza?", "fallback", False, "", []),
        ("will it rain tomorrow", "fallback", False, "", []),
    )
    sunday = Message.objects.get(text="is the shop open sunday")
    chocolate = Message.objects.get(text="do you sell chocolate?")
    chocolates = Message.objects.get(text="chocolates with flowers?")
    rain = Message.objects.get(conversation=pizza, text="will it rain tomorrow")
    url = reverse("admin:widget_unanswered", args=[world.shop_a.pk])

    # Each row shows what the bot offered for it.
    page = BeautifulSoup(client.get(url).content, "lxml")
    rows = {
        " ".join(r.find("label").get_text().split()): r.select_one(".unanswered-offered")
        for r in page.select("[data-testid=unanswered-row]")
    }
    assert rows["is the shop open sunday"].get_text().strip() == "“What are your opening hours?”"
    assert rows["do you sell chocolate?"].get_text().strip() == "nothing"
    # Noise: one question, then the ticked ones; they leave the list, nothing else changes.
    response = client.post(url, {"dismiss": str(rain.pk)}, follow=True)
    assert "1 question dismissed as noise." in response.content.decode()
    pizza_q = Message.objects.get(conversation=pizza, text="do you deliver pizza?")
    client.post(url, {"action": "dismiss", "use": [str(pizza_q.pk), str(world.conv_b.pk)]})
    open_ids = {pk for g in unanswered.groups(world.shop_a) for pk in g.message_ids}
    assert rain.pk not in open_ids and pizza_q.pk not in open_ids and chocolate.pk in open_ids
    assert Message.objects.filter(dismissed=True).count() == 2
    # Another shop's question cannot be dismissed from here.
    secret = Message.objects.get(text="secret thorn question")
    client.post(url, {"dismiss": str(secret.pk)})
    assert not Message.objects.get(pk=secret.pk).dismissed

    # Only the ticked question goes to the new entry's form (not the whole group).
    response = client.post(url, {"action": "create", "use": [str(chocolates.pk)]})
    assert response.status_code == 302
    form = client.get(response["Location"])
    assert form.context["new_form"].initial["question"] == "Chocolates with flowers?"
    assert form.context["new_form"].initial["alternatives"] == ""
    assert form.context["message_ids"] == str(chocolates.pk)
    # Nothing ticked: said, nothing done.
    response = client.post(url, {"action": "create"}, follow=True)
    assert "Tick at least one question first." in response.content.decode()
    assert sunday.pk in open_ids


# --- Retention ----------------------------------------------------------------------------


def test_purge_conversations_deletes_only_older_ones(world, settings):
    old = talk(world.shop_a, ("old question", "faq", True, "", []), days_ago=200)
    out = io.StringIO()
    call_command("purge_conversations", "--dry-run", stdout=out)
    assert "Would delete 1 conversations (2 messages, 0 customer requests)" in out.getvalue()
    assert Conversation.objects.filter(pk=old.pk).exists()

    out = io.StringIO()
    call_command("purge_conversations", stdout=out)  # default: 180 days
    assert "Deleted 1 conversations (2 messages, 0 customer requests)" in out.getvalue()
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert Conversation.objects.count() == 3

    out = io.StringIO()
    call_command("purge_conversations", "--days", "2", stdout=out)
    assert "Deleted 1 conversations" in out.getvalue()  # conv_a2, 3 days old
    assert not Conversation.objects.filter(pk=world.conv_a2.pk).exists()

    with pytest.raises(CommandError, match="1 or more"):
        call_command("purge_conversations", "--days", "0")
    settings.CONVERSATION_RETENTION_DAYS = 0
    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    assert "kept forever" in out.getvalue() and Conversation.objects.count() == 2


# --- Charts -------------------------------------------------------------------------------


def test_bar_chart_is_accessible_svg_and_escapes_labels():
    svg = charts.bar_chart(
        ["<b>Mon</b>", "Tue"],
        [charts.Series("Questions", "#417690", [3, 7])],
        "Questions per day",
        tick_every=1,
    )
    assert svg.startswith("<svg") and 'role="img"' in svg and "<desc" in svg
    assert "&lt;b&gt;Mon&lt;/b&gt;" in svg and "<b>" not in svg
    assert "Tue: 7 questions" in svg
    # Whole-number grid steps (four of them) that reach the highest bar.
    assert [charts.nice_step(v) for v in (0, 3, 7, 10, 12, 45, 100)] == [1, 1, 2, 3, 3, 15, 25]
    empty = charts.share_bar([charts.Segment("FAQ", 0, "#000")], "Answers")
    assert "No answers yet" in empty


def test_shop_chooser_and_superuser_bulk_delete(client, world):
    as_user(client, world.alice)
    response = client.get(reverse("admin:widget_owner_shops"))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:widget_dashboard", args=[world.shop_a.pk])

    as_user(client, world.root)
    html = client.get(reverse("admin:widget_owner_shops")).content.decode()
    for shop in (world.shop_a, world.shop_b):
        assert reverse("admin:widget_dashboard", args=[shop.pk]) in html
    # The list's delete action works on the annotated queryset.
    response = client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [str(world.conv_b.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=world.conv_b.pk).exists()
    assert Conversation.objects.count() == 2


def test_the_owners_small_frictions_of_issue_29_are_gone(client, world):
    as_user(client, world.alice)
    shop = world.shop_a
    # "Your shops" on the admin home links to the shop's page (checklist and snippet).
    home = BeautifulSoup(client.get("/admin/").content, "lxml")
    name = home.select_one("#owner-shops th a")
    assert name.get_text() == shop.name and name["href"] == f"/admin/faq/shop/{shop.pk}/change/"
    # The dashboard's breadcrumb goes through the shop, not "Conversations".
    page = client.get(reverse("admin:widget_dashboard", args=[shop.pk]))
    crumbs = " ".join(
        BeautifulSoup(page.content, "lxml").select_one(".breadcrumbs").get_text().split()
    )
    assert crumbs == f"Home › Shops › {shop.name} › Dashboard"
    # The slug's help names a real address; the website fields are text boxes with a hint.
    form = BeautifulSoup(client.get(f"/admin/faq/shop/{shop.pk}/change/").content, "lxml")
    assert "/faq//" not in form.get_text() and "/faq/petal-stem/" in form.get_text()
    url_box = form.select_one("#id_contact_url")
    assert url_box["type"] == "text" and url_box["placeholder"].startswith("https://")
    # The budget (a superuser's) shows 2,000,000 whole.
    as_user(client, world.root)
    form = BeautifulSoup(client.get(f"/admin/faq/shop/{shop.pk}/change/").content, "lxml")
    assert "width: 12em" in form.select_one("#id_monthly_token_budget")["style"]
