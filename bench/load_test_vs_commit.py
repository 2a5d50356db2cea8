"""
The load test against the server as an earlier commit had it, in alternating rounds.

    .venv/bin/python bench/load_test_vs_commit.py COMMIT [--rounds 3] [--runtime onnx]
        [--connections 200] [--asks 3]

`bench/load_test.py --batching both` compares batching off and on in today's code, where every
other cut of this round (fewer round trips, onnxruntime, gc.freeze) speeds up both. Issue 15
asked for more than batching alone: its target compares the batched server with the server as
the issue found it (commit 6924ac7), and says the round trips per ask must shrink too to reach
it. This runs that server itself.

1. Checks COMMIT out into a temporary git worktree that shares this checkout's .venv (today's
   requirements must cover the commit's: true since the first wave), with its own embedded
   PostgreSQL in the worktree's var/ (DATABASE_URL is dropped for it, so no shared database is
   ever migrated back), and migrates that database.
2. Each round runs the commit's `bench/load_test.py`, then this checkout's with batching on, one
   right after the other. Both servers run with DEBUG off and without an API key; the earlier
   load test passed its own DEBUG=1 to its server, which would slow it down.
3. Prints each round's figures side by side (and each server's memory and CPU per ask, when its
   load test prints them) and the median ratio; exits non-zero if a load test
   reported a failed check (an ask unanswered or answered twice, a dropped connection, an error).
   The worktree is removed at the end, even on error.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = re.compile(
    r"latency ms:\s+p50 (?P<p50>\d+)\s+p95 (?P<p95>\d+)\s+p99 (?P<p99>\d+).*?"
    r"throughput:\s+(?P<rate>[\d.]+) asks/s",
    re.S,
)
MORE = ("  server memory", "  CPU per ask")


def load_test(checkout: Path, env: dict[str, str], args: list[str]) -> dict:
    """Run `checkout`'s load test; its last figures and whether its checks passed."""
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "bench/load_test.py", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    found = list(FIGURES.finditer(run.stdout))
    if not found:
        sys.stderr.write(run.stdout + run.stderr)
        raise SystemExit(f"no figures from the load test in {checkout}")
    figures = {key: float(value) for key, value in found[-1].groupdict().items()}
    # Its memory and CPU lines, printed with the round (an earlier commit may print neither).
    lines = [line for line in run.stdout.splitlines() if line.startswith(MORE)]
    return {**figures, "ok": run.returncode == 0, "lines": lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("commit", help="the earlier commit, e.g. 6924ac7 (issue 15 as filed)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--asks", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")
    shared = ["--connections", str(args.connections), "--asks", str(args.asks)]
    # A secret key for both (a clone that never ran `make run` has no .env to read one from).
    ours = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        **os.environ,
        "EMBEDDING_RUNTIME": args.runtime,
    }
    theirs = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    theirs |= {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(48)}

    worktree = Path(tempfile.mkdtemp(prefix="shopbot-at-")) / "checkout"
    added = subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), args.commit], cwd=ROOT
    )
    if added.returncode != 0:
        worktree.parent.rmdir()
        parser.error(f"cannot check out {args.commit} (not in this clone's history?)")
    try:
        (worktree / ".venv").symlink_to(ROOT / ".venv")
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "migrate", "-v", "0"],
            cwd=worktree,
            env=theirs,
            check=True,
        )
        rows = []
        for n in range(1, args.rounds + 1):
            before = load_test(worktree, theirs, shared)
            after = load_test(ROOT, ours, [*shared, "--batching", "on"])
            rows.append((before, after))
            print(
                f"round {n}: {args.commit} {before['rate']:.1f} asks/s "
                f"(p50/p95/p99 {before['p50']:.0f}/{before['p95']:.0f}/{before['p99']:.0f} ms), "
                f"now ({args.runtime}, batching on) {after['rate']:.1f} asks/s "
                f"({after['p50']:.0f}/{after['p95']:.0f}/{after['p99']:.0f} ms): "
                f"{after['rate'] / before['rate']:.2f}x",
                flush=True,
            )
            for side, figures in ((args.commit, before), ("now", after)):
                for line in figures["lines"]:
                    print(f"  {side}: {line.strip()}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT)
        shutil.rmtree(worktree.parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT)

    ratios = [after["rate"] / before["rate"] for before, after in rows]
    print(
        f"median: {args.commit} {statistics.median(b['rate'] for b, _ in rows):.1f} asks/s, "
        f"now {statistics.median(a['rate'] for _, a in rows):.1f} asks/s; "
        f"ratio {statistics.median(ratios):.2f}x (rounds: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + ")"
    )
    ok = all(before["ok"] and after["ok"] for before, after in rows)
    print("OK: every ask answered once, one stored row each, 0 errors" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
