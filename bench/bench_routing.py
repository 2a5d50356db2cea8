"""
Would routing by language pay through the whole pipeline? (issue 27; docs/multilingual.md)

    .venv/bin/python bench/bench_routing.py [--sets dev_bakery,...] [--eval-dir ../shared/eval]

Needs py3langid==0.4.0, which the project does not install. For each set, every query and
conversation turn goes through `faq.search.search` twice, as `manage.py eval_retrieval` does
(a temporary shop, the real models): once with all-MiniLM-L6-v2 (EMBEDDING_MULTILINGUAL=off), once
with multilingual-e5-small (=e5). Then prints each model's figures and those of a router that
sends the questions py3langid reads as English (among the widget's nine languages) to MiniLM and
the others to e5: each query's outcome taken from the model it would have gone to. A conversation
turn takes its own language's model; its context search used that model too, so this is how
routing each turn would behave if every turn of a conversation went to one model (the sets'
conversations keep one language). Nothing is built: this measures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devdb

devdb.setup()

from bench_multilingual import eval_dir, language_detector, set_path  # noqa: E402
from django.conf import settings  # noqa: E402

from faq import embedding  # noqa: E402
from faq.management.commands.eval_retrieval import build_shop, judge, load_dataset  # noqa: E402
from faq.search import search  # noqa: E402

SETS = ["dev_bakery", "hint3_sofmattress", "dev_fr_fleuriste", "dev_bakery_xling"]


def outcomes(data: dict, mode: str) -> tuple[list, list]:
    """Every query's and every turn's Judged, with EMBEDDING_MULTILINGUAL=mode."""
    settings.EMBEDDING_MULTILINGUAL = mode
    embedding.warm()
    shop, entry_ids = build_shop(data["faqs"])
    try:
        single = [
            judge(search(shop, q["text"], 10), entry_ids, q.get("gold")) for q in data["queries"]
        ]
        turns = []
        for conversation in data.get("conversations") or []:
            earlier: list[str] = []
            for turn in conversation["turns"]:
                result = search(shop, turn["text"], 10, context=earlier)
                turns.append(judge(result, entry_ids, turn.get("gold")))
                earlier.append(turn["text"])
    finally:
        shop.delete()
    return single, turns


def figures(single: list, turns: list) -> str:
    def share(flags: list[bool]) -> str:
        return f"{sum(flags) / len(flags):.3f}" if flags else "  -  "

    ranks = [j.rank for j in single if j.in_scope]
    cells = [
        share([r == 1 for r in ranks]),
        share([r is not None and r <= 3 for r in ranks]),
        share([j.right for j in single if not j.in_scope]),
        share([j.right for j in single]),
        share([j.wrong for j in single]),
        share([j.one_click for j in single]),
        share([j.wrong for j in turns]),
        share([j.one_click for j in turns]),
    ]
    return "".join(f"{c:>10}" for c in cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--eval-dir", help="the shared sets (default: ../shared/eval)")
    args = parser.parse_args()
    shared = eval_dir(args.eval_dir)
    detect = language_detector()
    header = ["r@1", "r@3", "oos acc", "accuracy", "wrong", "1-click", "c wrong", "c 1-click"]
    print(f"{'':30}" + "".join(f"{h:>10}" for h in header))
    for name in [s for s in args.sets.split(",") if s]:
        data = load_dataset(str(set_path(name, shared)))
        turn_texts = [t["text"] for c in data.get("conversations") or [] for t in c["turns"]]
        english = [detect(q["text"]) == "en" for q in data["queries"]]
        english_turns = [detect(text) == "en" for text in turn_texts]
        runs = {mode: outcomes(data, mode) for mode in ("off", "e5")}
        routed = (
            [runs["off" if en else "e5"][0][i] for i, en in enumerate(english)],
            [runs["off" if en else "e5"][1][i] for i, en in enumerate(english_turns)],
        )
        print(f"{name}: {sum(english)} of {len(english)} queries read as English")
        for label, (single, turns) in [
            ("  all-MiniLM-L6-v2", runs["off"]),
            ("  multilingual-e5-small", runs["e5"]),
            ("  routed by language", routed),
        ]:
            print(f"{label:30}{figures(single, turns)}")
    settings.EMBEDDING_MULTILINGUAL = "off"
    return 0


if __name__ == "__main__":
    sys.exit(main())
