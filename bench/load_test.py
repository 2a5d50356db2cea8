"""
Load test of the chat websocket against the real server on loopback.

    .venv/bin/python bench/load_test.py [--connections 200] [--asks 3] [--timeout 600]
                                        [--batching on|off|both] [--workers N]
                                        [--runtimes onnx,torch]

1. Creates a temporary copy of the demo shop (real embeddings) in the development database (the
   embedded PostgreSQL, or DATABASE_URL's), deleted at the end, even on error.
2. Starts daphne as a subprocess on a free 127.0.0.1 port, without an API key (answers come
   from the FAQ) and with the per-address limits switched off (CHAT_CONNECTIONS_PER_IP=0,
   CHAT_ASKS_PER_IP_PER_MINUTE=0): every connection comes from 127.0.0.1, which the default
   limits would rightly refuse after 20 sockets.
3. Opens all the connections and keeps them open, then sends `--asks` questions on each (one at a
   time per connection, all connections at once), and checks that every ask got exactly one
   answer frame and exactly one stored answer row, and that no connection dropped.
4. Prints connections held, asks, answers, rows, errors, and p50/p95/p99 ask latency (send to
   answer frame), then each server's resident memory and whether libtorch is mapped in it (its
   /proc/PID/maps; the memory again 2 s later, once the server has given back what the burst
   freed), and the CPU time per ask of the servers, the embedded PostgreSQL and the
   clients (this process): unlike the wall-clock figures, those stay comparable when other work
   shares the machine. Exits non-zero if any check failed.

`--batching` chooses the server's micro-batching of query embeddings (EMBEDDING_BATCH_WAIT_MS:
the environment's value or 5 for "on", 0 for "off"). "both" (the default) runs the whole test
once with each, each on a fresh server, and prints them side by side with the ratio.

`--runtimes torch,onnx` repeats all of that for each EMBEDDING_RUNTIME named, in that order, in
one run (default: the environment's EMBEDDING_RUNTIME, else onnx). Every column is also compared
with the first: with torch first, "onnx, batching on / torch, batching off" is the default server
against today's code answering as the server did when issue 15 was filed (one question at a
time, on torch); `bench/load_test_vs_commit.py` runs that server itself.

`--workers N` (N > 1) runs the test once with one daphne process and once with N, all sharing one
Redis (REDIS_URL, default redis://127.0.0.1:6379/8: the channel layer and the limits, as in
README "Running past one machine") and the database, the connections split evenly between the
processes; same checks, printed side by side. Batching is on unless `--batching` says otherwise.

Loopback only, bounded in count (--connections, --asks) and time (--timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.questions import DEMO_QUESTIONS  # noqa: E402
from lib.figures import percentile  # noqa: E402

# The server's memory is read again this long after the burst: its embedding batcher gives back
# the memory a burst freed after a second without questions (faq/embedding.py, IDLE_SECONDS).
IDLE_WAIT = 2.0


async def run_load(urls: list[str], key: str, connections: int, asks: int, limit: float) -> dict:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    answers: Counter = Counter()  # (conversation, ask id) -> answer frames
    errors: list[str] = []
    conversations: list[str] = []
    sockets = []

    async def open_one(number: int) -> None:
        url = urls[number % len(urls)]  # connections split evenly between the servers
        ws = await connect(f"{url}/ws/chat/{key}/", open_timeout=limit, max_size=2**20)
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready", ready
        sockets.append((ws, ready["conversation"]))
        conversations.append(ready["conversation"])

    async def converse(ws, conversation: str, index: int) -> None:
        for n in range(asks):
            ask_id = f"load-{index}-{n}"
            started = time.monotonic()
            text = DEMO_QUESTIONS[(index + n) % len(DEMO_QUESTIONS)]
            await ws.send(json.dumps({"type": "ask", "id": ask_id, "text": text}))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "answer":
                    answers[(conversation, frame["id"])] += 1
                    if frame["id"] == ask_id:
                        latencies.append(time.monotonic() - started)
                        break
                elif frame.get("type") == "error":
                    errors.append(f"{frame.get('code')}: {frame.get('message')}")
                    break

    async def drain(ws, conversation: str) -> bool:
        """Any late duplicate answer shows up here; then a ping proves the socket is alive."""
        await ws.send(json.dumps({"type": "ping"}))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "pong":
                return True
            if frame.get("type") == "answer":
                answers[(conversation, frame["id"])] += 1

    async with asyncio.timeout(limit):
        # Open in waves, as a burst of page loads would; all stay open until the end.
        for start in range(0, connections, 50):
            await asyncio.gather(*(open_one(n) for n in range(start, min(start + 50, connections))))
        held = len(sockets)
        started = time.monotonic()
        await asyncio.gather(*(converse(ws, c, i) for i, (ws, c) in enumerate(sockets)))
        elapsed = time.monotonic() - started
        alive = sum(await asyncio.gather(*(drain(ws, c) for ws, c in sockets)))
        await asyncio.gather(*(ws.close() for ws, _ in sockets))
    return {
        "held": held,
        "alive": alive,
        "asks": connections * asks,
        "answers": sum(answers.values()),
        "duplicates": sum(1 for count in answers.values() if count > 1),
        "errors": errors,
        "latencies": latencies,
        "elapsed": elapsed,
        "conversations": conversations,
    }


def report(result: dict, rows: Counter, connections: int) -> bool:
    """Prints one run's figures; True if every check passed."""
    row_count = sum(rows.values())
    lat = [t * 1000 for t in result["latencies"]]
    print(f"  connections held:    {result['held']} (alive at the end: {result['alive']})")
    print(f"  asks sent:           {result['asks']}")
    print(f"  answer frames:       {result['answers']} (duplicates: {result['duplicates']})")
    print(
        f"  stored answer rows:  {row_count} (asks with more than one: "
        f"{sum(1 for c in rows.values() if c > 1)})"
    )
    print(f"  errors:              {len(result['errors'])} {Counter(result['errors']) or ''}")
    print(
        f"  latency ms:          p50 {percentile(lat, 50):.0f}  p95 {percentile(lat, 95):.0f}"
        f"  p99 {percentile(lat, 99):.0f}  max {max(lat, default=0):.0f}"
        f"  mean {statistics.fmean(lat) if lat else 0:.0f}"
    )
    print(f"  throughput:          {throughput(result):.1f} asks/s over {result['elapsed']:.1f} s")
    ok = (
        result["held"] == result["alive"] == connections
        and result["answers"] == row_count == result["asks"]
        and result["duplicates"] == 0
        and not result["errors"]
        and all(c == 1 for c in rows.values())
    )
    print("  OK" if ok else "  FAILED")
    return ok


def cpu_seconds(pid: int, waited_children: bool = False) -> float:
    """A process's CPU time (user + system), with its ended children's if `waited_children`."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """The embedded PostgreSQL's CPU time: its postmaster, every backend alive and every one that
    ended. None with an external database (DATABASE_URL), which may be on another machine."""
    from django.conf import settings

    pidfile = Path(settings.DATA_DIR) / "pgdata" / "postmaster.pid"
    if os.environ.get("DATABASE_URL") or not pidfile.exists():
        return None
    master = int(pidfile.read_text().split()[0])
    total = cpu_seconds(master, waited_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                total += cpu_seconds(int(entry.name))
    return total


def cpu_now(server_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the servers, PostgreSQL and this process (the load's clients): per
    ask, these stay comparable when other work on the machine stretches every wall-clock time."""
    spent = {"server": sum(cpu_seconds(pid) for pid in server_pids)}
    postgres = postgres_cpu_seconds()
    if postgres is not None:
        spent["PostgreSQL"] = postgres
    spent["clients"] = time.process_time()
    return spent


def torch_mapped(pid: int) -> bool:
    """Whether torch's library is loaded in the process (its /proc/PID/maps)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def resident_mib(pid: int) -> float:
    """A process's resident memory in MiB (Linux), or NaN where /proc does not say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return int(kib) / 1024 if kib else float("nan")


def throughput(result: dict) -> float:
    return result["asks"] / result["elapsed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--asks", type=int, default=3, help="questions per connection")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each run")
    parser.add_argument(
        "--batching",
        choices=["on", "off", "both"],
        help="micro-batching of query embeddings in the server (default: both, one run each; "
        "on with --workers)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N > 1: one run with one daphne process and one with N, sharing Redis",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SHOPBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        help="the Redis the processes share with --workers",
    )
    parser.add_argument(
        "--runtimes",
        default=os.environ.get("EMBEDDING_RUNTIME", "onnx"),
        help="comma-separated EMBEDDING_RUNTIME values, each run in turn (default: the "
        "environment's, else onnx)",
    )
    args = parser.parse_args()
    runtimes = [name.strip().lower() for name in args.runtimes.split(",") if name.strip()]
    if not runtimes or not set(runtimes) <= {"onnx", "torch"}:
        parser.error("--runtimes takes onnx, torch or both, comma-separated")
    if not 1 <= args.connections <= 1000 or not 1 <= args.asks <= 20:
        parser.error("--connections must be 1..1000 and --asks 1..20")
    if not 1 <= args.workers <= 8:
        parser.error("--workers must be 1..8")
    batching = args.batching or ("on" if args.workers > 1 else "both")

    import devdb

    devdb.setup()
    from django.db import connections as db_connections

    from faq import demo
    from harness.daphne_process import DaphneProcess, server_environment
    from widget.models import Message

    wait_on = os.environ.get("EMBEDDING_BATCH_WAIT_MS", "5")
    if float(wait_on) <= 0:
        wait_on = "5"
    modes = {"on": ["on"], "off": ["off"], "both": ["off", "on"]}[batching]
    worker_counts = [1, args.workers] if args.workers > 1 else [1]
    # Without --workers, one process and the in-memory channel layer, as before.
    redis_url = args.redis_url if args.workers > 1 else ""
    shop = demo.build_shop(name=f"Load test {uuid.uuid4().hex[:8]}")
    results: dict[str, dict] = {}
    all_ok = True
    try:
        db_connections.close_all()
        for runtime, workers, mode in itertools.product(runtimes, worker_counts, modes):
            wait = wait_on if mode == "on" else "0"
            env = server_environment(
                REDIS_URL=redis_url,
                CHAT_CONNECTIONS_PER_IP="0",
                CHAT_ASKS_PER_IP_PER_MINUTE="0",
                EMBEDDING_BATCH_WAIT_MS=wait,
                EMBEDDING_RUNTIME=runtime,
            )
            servers = [DaphneProcess(env) for _ in range(workers)]
            label = (
                (f"{runtime}, " if len(runtimes) > 1 else "")
                + f"batching {mode}"
                + (f", {workers} worker(s)" if args.workers > 1 else "")
            )
            try:
                for server in servers:  # the processes load the model side by side
                    server.launch()
                for server in servers:
                    server.wait_ready()
                urls = [server.ws_url for server in servers]
                # One warm-up ask per process (model load, first queries), not counted.
                for url in urls:
                    asyncio.run(run_load([url], shop.public_key, 1, 1, args.timeout))
                Message.objects.filter(conversation__shop=shop).delete()
                shop.conversations.all().delete()

                print(
                    f"Load test, {label} (EMBEDDING_RUNTIME={runtime}, "
                    f"EMBEDDING_BATCH_WAIT_MS={wait}): "
                    f"{args.connections} connections x {args.asks} asks, {', '.join(urls)}"
                    + (f", Redis {redis_url}" if redis_url else "")
                )
                cpu_before = cpu_now([server.process.pid for server in servers])
                result = asyncio.run(
                    run_load(urls, shop.public_key, args.connections, args.asks, args.timeout)
                )
                cpu_used = {
                    name: spent - cpu_before[name]
                    for name, spent in cpu_now([s.process.pid for s in servers]).items()
                }
                rows = Message.objects.filter(conversation__shop=shop, role=Message.BOT)
                per_ask = Counter(rows.values_list("conversation_id", "ask_id"))
                all_ok &= report(result, per_ask, args.connections)
                rss = [resident_mib(server.process.pid) for server in servers]
                torch = [torch_mapped(server.process.pid) for server in servers]
                # And once the server has been idle a moment: its batcher gives the memory the
                # burst freed back to the system after a second without questions.
                time.sleep(IDLE_WAIT)
                idle = [resident_mib(server.process.pid) for server in servers]
                print(
                    f"  server memory (RSS): {', '.join(f'{m:.0f} MiB' for m in rss)} at the end, "
                    f"{', '.join(f'{m:.0f} MiB' for m in idle)} {IDLE_WAIT:.0f} s later; "
                    f"libtorch mapped: {', '.join('yes' if t else 'no' for t in torch)}"
                )
                print(
                    "  CPU per ask:         "
                    + ", ".join(
                        f"{name} {1000 * spent / result['asks']:.1f} ms"
                        for name, spent in cpu_used.items()
                    )
                    + f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
                )
                results[label] = result
                Message.objects.filter(conversation__shop=shop).delete()
                shop.conversations.all().delete()
                db_connections.close_all()
            finally:
                for server in servers:
                    server.stop()
        if len(results) > 1:
            side_by_side(results)
        print("OK" if all_ok else "FAILED")
        return 0 if all_ok else 1
    finally:
        shop.delete()


def side_by_side(results: dict[str, dict]) -> None:
    labels = list(results)
    width = max(len(label) for label in labels) + 2
    print("Side by side:".ljust(24) + "".join(label.rjust(width) for label in labels))
    print("  asks/s".ljust(24) + "".join(f"{throughput(r):{width}.1f}" for r in results.values()))
    for p in (50, 95, 99):
        print(
            f"  p{p} ms".ljust(24)
            + "".join(
                f"{percentile([t * 1000 for t in r['latencies']], p):{width}.0f}"
                for r in results.values()
            )
        )
    pairs = [(label, labels[0]) for label in labels[1:]]
    # With several runtimes, also each one's batching on against its own batching off.
    for label in labels:
        off = label.replace("batching on", "batching off")
        if off != label and off in results and off != labels[0]:
            pairs.append((label, off))
    for label, base in pairs:
        print(
            f"  throughput {label} / {base}: "
            f"{throughput(results[label]) / throughput(results[base]):.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
