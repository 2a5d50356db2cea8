"""
The owner's "Unanswered questions" page with a large backlog, on the real model and database.

    .venv/bin/python bench/bench_unanswered_page.py [--questions 2000] [--rounds 3]

A temporary shop gets `--questions` unanswered customer questions (each in its own conversation,
its answer a fallback; generated from a few hundred distinct wordings). The page (the admin's
view, through Django's test client, signed in as the shop's owner) is timed:

1. as it was before the worker embedded them: no stored vectors, so the page embeds the 1,000
   newest with multilingual-e5-small (loaded beforehand: its load is not counted) and stores them;
   the vectors are cleared again before each round;
2. after the worker's job (`owner.embed_unanswered`, `unanswered.embed_waiting`: timed once), the
   page reads the stored vectors.

The page's times are medians of `--rounds`. Everything happens in a temporary shop deleted at
the end, even on error or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import devdb  # noqa: E402

devdb.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from faq.models import Shop  # noqa: E402
from faq.owners import owners_group  # noqa: E402
from owner import unanswered  # noqa: E402
from widget.models import Conversation, Message  # noqa: E402

THINGS = ["garden gnomes", "bike repairs", "pizza", "gift wrapping", "car parts", "dog food",
          "concert tickets", "phone cases", "wedding cakes", "paint", "birthday balloons",
          "printer ink", "fishing rods", "yoga classes", "a taxi", "coffee beans"]  # fmt: skip
FORMS = [
    "Do you sell {t}?",
    "can i buy {t} here",
    "Where can I get {t} near {p}?",
    "How much are {t} at {p}?",
    "is there {t} in {p}",
    "Any {t} for {p} this week?",
]
PLACES = ["Princeton", "Trenton", "the mall", "Main St", "downtown", "the station"]


def page_seconds(client: Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the cleanup below runs

    shop = Shop.objects.create(name=f"Bench {uuid.uuid4().hex[:8]}", language="en")
    owner = User.objects.create_user(f"bench-{shop.pk}", is_staff=True)
    try:
        owner.groups.add(owners_group())
        shop.owners.add(owner)
        conversations = Conversation.objects.bulk_create(
            Conversation(shop=shop, page_url="https://shop.example/") for _ in range(args.questions)
        )
        texts = [f.format(t=t, p=p) for f in FORMS for t in THINGS for p in PLACES]
        rows = []
        for n, conversation in enumerate(conversations):
            text = texts[n % len(texts)]
            rows.append(
                Message(conversation=conversation, role=Message.USER, ask_id="a0", text=text)
            )
            rows.append(
                Message(
                    conversation=conversation,
                    role=Message.BOT,
                    ask_id="a0",
                    text="Sorry, I don't know.",
                    mode=Message.FALLBACK,
                )
            )
        Message.objects.bulk_create(rows, batch_size=1000)
        client = Client(SERVER_NAME="localhost")  # in ALLOWED_HOSTS
        client.force_login(owner)
        url = reverse("admin:widget_unanswered", args=[shop.pk])
        unanswered.embed_questions(["warming up"])  # the model's load is not the page's
        questions = Message.objects.filter(conversation__shop=shop, role=Message.USER)

        before = []
        for _ in range(args.rounds):
            questions.update(embedding=None)
            before.append(page_seconds(client, url))
        questions.update(embedding=None)
        started = time.perf_counter()
        done = unanswered.embed_waiting(args.questions)
        job = time.perf_counter() - started
        assert done == args.questions, done
        after = [page_seconds(client, url) for _ in range(args.rounds)]
        groups = len(unanswered.groups(shop))
    finally:
        shop.delete()
        owner.delete()

    print(f"{args.questions} unanswered questions ({len(set(texts))} wordings, {groups} groups),")
    print(f"medians of {args.rounds} rounds:")
    print(f"  page, no stored vectors (it embeds 1,000): {statistics.median(before):.2f} s")
    print(f"  the worker's job, all {args.questions} embedded and stored (once): {job:.2f} s")
    print(f"  page, stored vectors:                      {statistics.median(after):.2f} s")
    print(f"  ratio: {statistics.median(before) / statistics.median(after):.1f}x")


if __name__ == "__main__":
    main()
