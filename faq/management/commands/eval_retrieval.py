"""
Measure retrieval on a labelled dataset (format: ../shared/eval/README.md) through the real
pipeline: a temporary shop, entries embedded in batches by the real model into pgvector, and every
query through faq.search.search, the function the chat uses. The shop is removed afterwards,
even on an error or Ctrl-C. The development database is migrated first, as `make run` and the
benchmarks do (a clone where only `make test` ran has an empty one).

`--learning-curve` also runs the simulation of ../shared/eval/README.md ("The learning curve"):
per seed, the in-scope queries are shuffled, 40 % of them are held back together with every
out-of-scope query, and the held-back ones are asked with none, half and all of the rest accepted
as wordings of their first gold entry, stored the way an owner's accepted customer wording is
(FAQEntry.add_phrasings, which saves the entry; the new phrasings re-embedded by faq/indexing.py
in one batch, the shop's index rebuilt).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from faq import embedding, indexing, languages
from faq.models import FAQEntry, Shop
from faq.search import search
from lib.figures import percentile
from lib.output import read_json

SEARCH_LIMIT = 10  # ranks beyond this count as a miss for MRR
SHOP_PREFIX = "eval-retrieval-"
HELD_BACK = 0.4  # share of the in-scope queries held back in the learning curve


def load_dataset(path: str) -> dict:
    data = read_json(path)
    # "queries" may be left out only by a set of conversations.
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("queries", [] if "conversations" in data else None), list)
        or not isinstance(data.get("conversations", []), list)
    ):
        raise CommandError(f'{path}: expected {{"faqs": [...], "queries": [...]}}.')
    data.setdefault("queries", [])
    ids = set()
    for n, faq in enumerate(data.get("faqs") or []):
        if not isinstance(faq, dict) or not faq.get("id") or not faq.get("question"):
            raise CommandError(f"{path}: FAQ #{n + 1} needs an id and a question.")
        ids.add(str(faq["id"]))

    def check(query, where: str) -> None:
        if not isinstance(query, dict) or not isinstance(query.get("text"), str):
            raise CommandError(f"{path}: {where} needs a text.")
        unknown = {str(g) for g in query.get("gold") or []} - ids
        if unknown:
            raise CommandError(f"{path}: {where} names unknown FAQ ids {sorted(unknown)}.")

    for n, query in enumerate(data["queries"]):
        check(query, f"query #{n + 1}")
    for c, conversation in enumerate(data.get("conversations") or []):
        turns = conversation.get("turns") if isinstance(conversation, dict) else None
        if not isinstance(turns, list) or not turns:
            raise CommandError(f"{path}: conversation #{c + 1} needs a list of turns.")
        for t, turn in enumerate(turns):
            check(turn, f"conversation #{c + 1}, turn #{t + 1}")
    return data


def shop_language(data: dict) -> str:
    """The language of the set's shop: its meta's "language", else the one its FAQ is written in
    (the most common among its questions and answers, as an owner would set it)."""
    given = str((data.get("meta") or {}).get("language") or "")
    if given in {code for code, _ in settings.LANGUAGES}:
        return given
    found = Counter(
        languages.detect(f"{faq['question']}\n{faq.get('answer') or ''}")[0]
        for faq in data.get("faqs") or []
    )
    return found.most_common(1)[0][0] if found else "en"


def build_shop(faqs: list[dict], language: str = "en") -> tuple[Shop, dict[int, str]]:
    """A temporary shop holding the dataset's FAQs, embedded the way the product embeds them."""
    shop = Shop.objects.create(
        name=f"{SHOP_PREFIX}{uuid.uuid4().hex[:12]}", use_claude=False, language=language
    )
    entries = FAQEntry.objects.bulk_create(
        FAQEntry(
            shop=shop,
            question=str(faq["question"]).strip(),
            answer=str(faq.get("answer") or "").strip(),
            alternatives="\n".join(str(e) for e in faq.get("examples") or []),
        )
        for faq in faqs
    )
    ids = [e.pk for e in entries]
    for start in range(0, len(ids), 500):  # each chunk is one batched model call
        indexing.refresh(ids[start : start + 500])
    return shop, {e.pk: str(faq["id"]) for e, faq in zip(entries, faqs, strict=True)}


@dataclass
class Judged:
    """One query's outcome against its gold entries (empty gold: out of scope)."""

    in_scope: bool
    rank: int | None  # 1-based rank of the first gold hit (in scope)
    confident: bool
    top_is_gold: bool
    gold_suggested: bool  # a gold entry among the "did you mean" suggestions
    offered: bool = False  # any "did you mean" suggestion at all

    @property
    def right(self) -> bool:
        """Answered with a gold entry, or declined when out of scope."""
        return self.confident and self.top_is_gold if self.in_scope else not self.confident

    @property
    def wrong(self) -> bool:
        """A confident answer from an entry not in gold: the worst outcome."""
        return self.confident and not self.top_is_gold

    @property
    def one_click(self) -> bool:
        """Right, or right after one click on a suggestion."""
        return self.right or (self.in_scope and not self.confident and self.gold_suggested)


def judge(result, entry_ids: dict[int, str], gold_ids) -> Judged:
    gold = {str(g) for g in gold_ids or []}
    found = [entry_ids.get(hit.entry.pk) for hit in result.hits]
    rank = next((i + 1 for i, faq_id in enumerate(found) if faq_id in gold), None)
    return Judged(
        in_scope=bool(gold),
        rank=rank,
        confident=result.confident,
        top_is_gold=rank == 1,
        gold_suggested=any(entry_ids.get(hit.entry.pk) in gold for hit in result.suggestions),
        offered=bool(result.suggestions),
    )


def share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def evaluate(
    shop: Shop, entry_ids: dict[int, str], queries: list[dict], conversations: list[dict]
) -> dict:
    latencies: list[float] = []

    def timed_search(text: str, context: list[str] | None = None):
        started = time.perf_counter()
        result = search(shop, text, limit=SEARCH_LIMIT, context=context)
        latencies.append((time.perf_counter() - started) * 1000)
        return result

    single = [judge(timed_search(q["text"]), entry_ids, q.get("gold")) for q in queries]
    ranks = [j.rank for j in single if j.in_scope]
    report = {
        "recall_at_1": share([r == 1 for r in ranks]),
        "recall_at_3": share([r is not None and r <= 3 for r in ranks]),
        "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 4) if ranks else None,
        "oos_accuracy": share([j.right for j in single if not j.in_scope]),
        "direct": share([j.right for j in single if j.in_scope]),
        "accuracy": share([j.right for j in single]),
        "wrong_rate": share([j.wrong for j in single]),
        "one_click": share([j.one_click for j in single]),
        # Out-of-scope queries declined with no "did you mean" at all: an honest "I can't help".
        "oos_no_suggestions": share(
            [not j.confident and not j.offered for j in single if not j.in_scope]
        ),
    }

    # Conversations: each turn in the context of the customer's turns before it, through the
    # same follow-up logic the chat uses.
    turns: list[Judged] = []
    # Out-of-scope turns after an in-scope one: declined? declined with no "did you mean"? offered
    # an entry the same text alone is not offered (the earlier topic's, borrowed)?
    after_topic: list[bool] = []
    after_topic_unoffered: list[bool] = []
    borrowed: list[bool] = []
    for conversation in conversations:
        earlier: list[str] = []
        topic = False
        for turn in conversation["turns"]:
            result = timed_search(turn["text"], earlier)
            judged = judge(result, entry_ids, turn.get("gold"))
            turns.append(judged)
            if not judged.in_scope and topic:
                after_topic.append(not judged.confident)
                after_topic_unoffered.append(not judged.confident and not judged.offered)
                alone = search(shop, turn["text"], limit=SEARCH_LIMIT).suggestions
                borrowed.append(
                    result.confident
                    or bool(
                        {hit.entry.pk for hit in result.suggestions}
                        - {hit.entry.pk for hit in alone}
                    )
                )
            topic = topic or judged.in_scope
            earlier.append(turn["text"])
    if conversations:
        report |= {
            "conv_turns": len(turns),
            "conv_accuracy": share([j.right for j in turns]),
            "conv_wrong_rate": share([j.wrong for j in turns]),
            "conv_one_click": share([j.one_click for j in turns]),
            "conv_oos_after_topic": share(after_topic),
            "conv_oos_no_suggestions": share(after_topic_unoffered),
            "conv_oos_borrowed": share(borrowed),
        }
    return report | {
        "p50_ms": round(percentile(latencies, 50, empty=0.0), 2),
        "p95_ms": round(percentile(latencies, 95, empty=0.0), 2),
        "n_queries": len(queries),
        "n_in_scope": len(ranks),
        "n_out_of_scope": len(single) - len(ranks),
        "n_faqs": len(entry_ids),
    }


def accept_wordings(entries: dict[str, FAQEntry], queries: list[dict]) -> int:
    """Each query's text accepted as a phrasing of its first gold entry, as the owner's accept
    stores a customer wording; the saves re-embed together at the end (faq/indexing.py)."""
    wordings: dict[str, list[str]] = {}
    for query in queries:
        wordings.setdefault(str(query["gold"][0]), []).append(query["text"])
    added = 0
    with indexing.batched(now=True):
        for faq_id, texts in wordings.items():
            entry = entries[faq_id]
            if entry.add_phrasings(texts):  # saved, re-embedded with the others at the end
                added += 1
    return added


STEPS = ("none", "half", "all")


def simulate_learning(
    shop: Shop, entry_ids: dict[int, str], queries: list[dict], seeds: int
) -> dict:
    """The learning-curve simulation on the evaluation's shop, seeds 1..`seeds`; the shop's
    phrasings are put back as the dataset had them after each seed."""
    in_scope = [q for q in queries if q.get("gold")]
    out_of_scope = [q for q in queries if not q.get("gold")]
    entries = {entry_ids[e.pk]: e for e in FAQEntry.objects.filter(shop=shop)}
    original = {faq_id: entry.alternatives for faq_id, entry in entries.items()}
    per_seed = []
    for seed in range(1, seeds + 1):
        order = list(in_scope)
        random.Random(seed).shuffle(order)
        held = round(HELD_BACK * len(order))
        asked, rest = order[:held] + out_of_scope, order[held:]
        steps, accepted = [], 0
        for step, upto in zip(STEPS, (0, len(rest) // 2, len(rest)), strict=True):
            accept_wordings(entries, rest[accepted:upto])
            accepted = upto
            judged = [
                judge(search(shop, q["text"], limit=SEARCH_LIMIT), entry_ids, q.get("gold"))
                for q in asked
            ]
            inside = [j for j in judged if j.in_scope]
            steps.append(
                {
                    "step": step,
                    "wordings": upto,
                    "recall_at_1": share([j.rank == 1 for j in inside]),
                    "direct": share([j.right for j in inside]),
                    "wrong_rate": share([j.wrong for j in judged]),
                    "one_click": share([j.one_click for j in judged]),
                }
            )
        per_seed.append({"seed": seed, "held_back": held, "asked": len(asked), "steps": steps})
        with indexing.batched(now=True):
            for faq_id, entry in entries.items():
                if entry.alternatives != original[faq_id]:
                    entry.alternatives = original[faq_id]
                    entry.save()

    def mean(step: int, key: str) -> float | None:
        values = [s["steps"][step][key] for s in per_seed if s["steps"][step][key] is not None]
        return round(sum(values) / len(values), 4) if values else None

    return {
        "seeds": seeds,
        "steps": [
            {"step": name}
            | {key: mean(n, key) for key in ("recall_at_1", "direct", "wrong_rate", "one_click")}
            for n, name in enumerate(STEPS)
        ],
        "per_seed": per_seed,
    }


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on a labelled dataset: recall@1, recall@3, MRR, out-of-scope "
        "accuracy, accuracy and search latency, through the same search() the chat uses."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="A dataset in the format of shared/eval/README.md")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object"
        )
        parser.add_argument(
            "--append-oos",
            metavar="FILE",
            action="append",
            default=[],
            help="Add another set's out-of-scope queries (e.g. clinc150_oos.json)",
        )
        parser.add_argument(
            "--language",
            metavar="CODE",
            help="The shop's language (which model embeds its FAQ); default: the set's "
            'meta "language", else the language its FAQ is written in',
        )
        parser.add_argument("--limit", type=int, metavar="N", help="Sample N queries (quick runs)")
        parser.add_argument("--seed", type=int, default=0, help="Seed for --limit's sample")
        parser.add_argument(
            "--learning-curve",
            action="store_true",
            help="Also ask held-back queries with none, half and all of the rest accepted as "
            "wordings (../shared/eval/README.md)",
        )
        parser.add_argument(
            "--seeds", type=int, default=3, metavar="N", help="Seeds of --learning-curve (3)"
        )

    def handle(
        self,
        *args,
        file: str,
        as_json: bool,
        append_oos: list[str],
        limit,
        seed,
        learning_curve: bool,
        seeds: int,
        language: str | None = None,
        **opts,
    ):
        data = load_dataset(file)
        if language is not None and language not in {code for code, _ in settings.LANGUAGES}:
            raise CommandError(f"--language {language}: not one of settings.LANGUAGES.")
        language = language or shop_language(data)
        queries = list(data["queries"])
        for extra in append_oos:
            queries += [q for q in load_dataset(extra)["queries"] if not q.get("gold")]
        if limit is not None:
            if limit < 1:
                raise CommandError("--limit must be at least 1.")
            if limit < len(queries):
                queries = random.Random(seed).sample(queries, limit)
        conversations = data.get("conversations") or []
        if not queries and not conversations:
            raise CommandError(f"{file} has no queries.")
        faqs = data.get("faqs") or []
        if not faqs:
            raise CommandError(f"{file} has no FAQs to search.")

        if seeds < 1:
            raise CommandError("--seeds must be at least 1.")
        if learning_curve and not any(q.get("gold") for q in queries):
            raise CommandError(f"{file} has no in-scope queries to learn from.")

        call_command("migrate", interactive=False, verbosity=0)
        embedding.warm()  # model loading is not search latency
        started = time.perf_counter()
        shop = None
        try:
            shop, entry_ids = build_shop(faqs, language)
            index_seconds = time.perf_counter() - started
            report = evaluate(shop, entry_ids, queries, conversations)
            if learning_curve:
                report["learning"] = simulate_learning(shop, entry_ids, queries, seeds)
        finally:
            if shop is not None:
                shop.delete()  # entries and vectors cascade
        report["index_seconds"] = round(index_seconds, 2)
        report["language"] = language
        report["models"] = list(embedding.shop_models(language))

        if as_json:
            self.stdout.write(json.dumps(report))
            return
        name = (data.get("meta") or {}).get("name") or Path(file).stem
        rows = [
            ("recall@1", report["recall_at_1"]),
            ("recall@3", report["recall_at_3"]),
            ("MRR", report["mrr"]),
            ("out-of-scope accuracy", report["oos_accuracy"]),
            ("in-scope direct", report["direct"]),
            ("accuracy", report["accuracy"]),
            ("confident wrong", report["wrong_rate"]),
            ("right within 1 click", report["one_click"]),
            ("off-topic, no guess", report["oos_no_suggestions"]),
        ]
        if conversations:
            rows += [
                ("conversation turns", report["conv_turns"]),
                ("  accuracy", report["conv_accuracy"]),
                ("  confident wrong", report["conv_wrong_rate"]),
                ("  right within 1 click", report["conv_one_click"]),
                ("  off-topic declined", report["conv_oos_after_topic"]),
                ("  off-topic, no guess", report["conv_oos_no_suggestions"]),
                ("  off-topic, borrowed", report["conv_oos_borrowed"]),
            ]
        rows += [
            ("p50 search latency", f"{report['p50_ms']:.1f} ms"),
            ("p95 search latency", f"{report['p95_ms']:.1f} ms"),
        ]
        self.stdout.write(
            f"{name}: {report['n_faqs']} FAQs, {report['n_queries']} queries "
            f"({report['n_in_scope']} in scope, {report['n_out_of_scope']} out of scope), "
            f"{len(conversations)} conversations, "
            f"indexed in {index_seconds:.1f} s; shop language {language} "
            f"({' + '.join(report['models'])})"
        )
        for label, value in rows:
            shown = "-" if value is None else f"{value:.3f}" if isinstance(value, float) else value
            self.stdout.write(f"  {label:<22} {shown}")
        if learning_curve:
            curve = report["learning"]
            self.stdout.write(
                f"learning curve (mean of {seeds} seeds; held back: "
                f"{curve['per_seed'][0]['held_back']} in scope + out of scope):"
            )
            self.stdout.write(f"  {'accepted wordings':<22} recall@1  direct  wrong  one-click")
            for step, seeded in zip(curve["steps"], curve["per_seed"][0]["steps"], strict=True):
                label = f"{step['step']} ({seeded['wordings']})"
                self.stdout.write(
                    f"  {label:<22} {step['recall_at_1']:.3f}     {step['direct']:.3f}  "
                    f"{step['wrong_rate']:.3f}  "
                    f"{step['one_click']:.3f}"
                )
