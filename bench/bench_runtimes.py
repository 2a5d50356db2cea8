"""
The two embedding runtimes side by side on the real model: onnxruntime (the default, without
torch: faq/embedding.py) and sentence-transformers on torch.

    .venv/bin/python bench/bench_runtimes.py [--repeat 40]

For torch and for onnxruntime (the model exported into EMBEDDING_ONNX_DIR, here if not yet), each on
EMBEDDING_THREADS threads as the server runs them, prints:
- a lone question: the median of --repeat calls;
- 32 questions in one call (as the batcher sends them): per question;
- the demo shop's entries as indexing embeds them, each question with its answer, in one call;
- how far onnxruntime's vectors are from torch's (the largest absolute difference).
The questions are the demo shop's alternative phrasings: customers' wordings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopbot.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from faq import demo, embedding  # noqa: E402


def median_ms(encode, texts: list[str], repeat: int) -> float:
    times = []
    for n in range(repeat):
        start = time.perf_counter()
        encode([texts[n % len(texts)]])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def best_ms(encode, texts: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        encode(texts)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--repeat", type=int, default=40, help="lone questions timed (40)")
    args = parser.parse_args()

    entries = demo.entry_fields()
    questions = [
        line for entry in entries for line in entry["alternatives"].splitlines() if line.strip()
    ]
    batch = questions[:32]
    faq_texts = [f"{entry['question']}\n{entry['answer']}" for entry in entries]

    embedding.export_onnx()
    model = embedding.get_model()

    def torch_encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts, batch_size=settings.EMBEDDING_BATCH_SIZE, normalize_embeddings=True
        )

    runtimes = {"torch": torch_encode, "onnx": embedding.get_onnx_encoder().encode}
    print(
        f"{len(questions)} questions, {len(faq_texts)} question + answer texts "
        f"({statistics.mean(len(t) for t in faq_texts):.0f} characters on average), "
        f"{settings.EMBEDDING_THREADS} thread(s)"
    )
    print(f"{'':8}{'a lone question':>18}{'in a batch of 32':>20}{'FAQ texts, one call':>22}")
    for name, encode in runtimes.items():
        encode(["warming up"])
        lone = median_ms(encode, questions, args.repeat)
        batched = best_ms(encode, batch) / len(batch)
        faq = best_ms(encode, faq_texts)
        print(f"{name:8}{lone:15.1f} ms{batched:17.1f} ms{faq:19.0f} ms")
    difference = np.abs(runtimes["onnx"](questions) - runtimes["torch"](questions)).max()
    print(f"largest difference between the runtimes' vectors: {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
