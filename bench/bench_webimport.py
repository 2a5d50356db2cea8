"""
How long "Import from your website" takes to find the questions on big pages (no database, no
network: the saved-page path).

    .venv/bin/python bench/bench_webimport.py [--sizes 2000,8000,26000]

For each size it builds two pages and prints their size, the pairs found and the CPU time of
`webimport.find_faqs`: button-and-panel accordions (aria-controls; 26,000 of them are the 1.9 MB
page that kept the quadratic reader busy for over 34 minutes), and question headings under section
headings (2,000 took 9 s). Linear reading shows as a time that grows with the size, not its square.
"""

from __future__ import annotations

import argparse
import time

import devdb

devdb.setup_django()

from faq import webimport  # noqa: E402


def accordions(count: int) -> bytes:
    items = "".join(
        f'<button aria-controls="p{n}">Q{n}?</button><div id="p{n}">A{n}.</div>\n'
        for n in range(count)
    )
    return f"<html><body><main><h2>Orders</h2>{items}</main></body></html>".encode()


def headings(count: int) -> bytes:
    parts = ["<html><body><h1>Help</h1>"]
    for n in range(count):
        if n % 100 == 0:
            parts.append(f"<h2>Section {n // 100}</h2>")
        parts.append(f"<h3>Question {n}?</h3><p>Answer {n}.</p>\n")
    return "".join(parts + ["</body></html>"]).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,8000,26000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(f"{'page':<12}{'items':>8}{'bytes':>12}{'found':>8}{'CPU s':>8}")
    for kind, build in (("accordions", accordions), ("headings", headings)):
        for size in sizes:
            data = build(size)
            started = time.process_time()
            try:
                found = len(webimport.find_faqs(webimport.Page("faq.html", data), cpu_seconds=600))
            except webimport.PageImportError as exc:
                found = f"refused: {exc}"
            took = time.process_time() - started
            print(f"{kind:<12}{size:>8}{len(data):>12,}{found:>8}{took:>8.2f}")


if __name__ == "__main__":
    main()
