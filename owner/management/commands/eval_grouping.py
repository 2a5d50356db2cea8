"""
Measure how the unanswered page groups questions (owner/unanswered.py) against the groups a person
made: `manage.py eval_grouping eval/unanswered_groups.json`.

Each shop of the file is grouped on its own, as the page groups one shop's questions: the real
model embeds them (`unanswered.embed_questions`, as the page does) and `unanswered.cluster`
groups them. Scored over pairs of questions (scikit-learn's
pair_confusion_matrix): precision is the share of pairs put together that a person put together
(a wrong merge lowers it: the owner's "Create FAQ entry" would mix two topics), recall the share of
a person's pairs found together (a split group is two lines for the owner); and the adjusted Rand
index (0 is chance, 1 the person's grouping). The groups found that mix a person's groups are
listed. Needs no database.
"""

from __future__ import annotations

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from sklearn.metrics import adjusted_rand_score, pair_confusion_matrix

from faq import embedding
from lib.output import read_json
from owner import unanswered


def load_shops(path: str) -> list[dict]:
    """The file's shops, each {"name", "questions": [{"text", "group"}...]}, checked."""
    data = read_json(path)
    shops = data.get("shops") if isinstance(data, dict) else None
    if not isinstance(shops, list) or not shops:
        raise CommandError(f'{path}: expected {{"shops": [{{"name": ..., "questions": [...]}}]}}.')
    for shop in shops:
        questions = shop.get("questions") if isinstance(shop, dict) else None
        if not isinstance(questions, list) or not all(
            isinstance(q, dict) and isinstance(q.get("text"), str) and q.get("group")
            for q in questions
        ):
            raise CommandError(f"{path}: every question needs a text and a group.")
    return shops


def pair_scores(truth: list[str], found: list[int]) -> dict[str, float]:
    """Pairwise precision, recall and F1 of `found` labels against `truth`, and the adjusted
    Rand index."""
    matrix = pair_confusion_matrix(truth, found)  # counts of ordered pairs
    together_both, apart_truth = int(matrix[1, 1]), int(matrix[0, 1])
    together_truth = int(matrix[1, 0]) + together_both
    precision = together_both / (together_both + apart_truth) if together_both + apart_truth else 1
    recall = together_both / together_truth if together_truth else 1
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "ari": float(adjusted_rand_score(truth, found)),
    }


class Command(BaseCommand):
    help = (
        "Score the unanswered page's grouping of questions against a person's groups (pairwise "
        "precision and recall, adjusted Rand index), per shop of a labelled file such as "
        "eval/unanswered_groups.json."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the labelled file (eval/unanswered_groups.json)")
        parser.add_argument(
            "--threshold",
            type=float,
            default=unanswered.SIMILARITY_THRESHOLD,
            help="the grouping's similarity threshold (default: the product's)",
        )
        parser.add_argument(
            "--quiet", action="store_true", help="figures only, without the mixed groups"
        )

    def handle(self, *args, **options) -> None:
        shops = load_shops(options["path"])
        self.stdout.write(
            f"Model: {embedding.E5Encoder.NAME}; threshold {options['threshold']:.2f}\n"
            f"{'shop':<14} {'questions':>9} {'groups':>6} {'found':>5} "
            f"{'precision':>9} {'recall':>6} {'F1':>5} {'ARI':>5}"
        )
        all_truth: list[str] = []
        all_found: list[int] = []
        mixed_lines: list[str] = []
        for shop in shops:
            texts = [" ".join(q["text"].split()) for q in shop["questions"]]
            truth = [f"{shop['name']}/{q['group']}" for q in shop["questions"]]
            vectors = np.asarray(unanswered.embed_questions(texts), dtype=np.float32)
            found = [0] * len(texts)
            offset = len(set(all_found))
            for label, rows in enumerate(unanswered.cluster(vectors, options["threshold"])):
                for row in rows:
                    found[row] = offset + label
                groups = {truth[row] for row in rows}
                if len(groups) > 1:
                    mixed_lines.append(
                        f"  {shop['name']}: " + " | ".join(f"{texts[row]!r}" for row in rows)
                    )
            scores = pair_scores(truth, found)
            self.stdout.write(self.row(shop["name"], truth, found, scores))
            all_truth += truth
            all_found += found
        if len(shops) > 1:
            self.stdout.write(
                self.row("all", all_truth, all_found, pair_scores(all_truth, all_found))
            )
        if mixed_lines and not options["quiet"]:
            self.stdout.write(f"\nGroups that mix a person's groups ({len(mixed_lines)}):")
            self.stdout.write("\n".join(mixed_lines))

    @staticmethod
    def row(name: str, truth: list[str], found: list[int], scores: dict[str, float]) -> str:
        return (
            f"{name:<14} {len(truth):>9} {len(set(truth)):>6} {len(set(found)):>5} "
            f"{scores['precision']:>9.3f} {scores['recall']:>6.3f} {scores['f1']:>5.3f} "
            f"{scores['ari']:>5.3f}"
        )
