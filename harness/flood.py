"""
A frame flood against a running chat server, for tests/test_flood.py and bench/bench_flood.py.

`scenario()` measures what the issue asked for: another customer's ask latency before and during
the flood, the server's resident memory before and after, and whether 20 new sockets from the
flooding address connect afterwards. The attackers themselves run in a child process:

    python -m harness.flood WS_URL SHOP_KEY SECONDS [SOCKETS]

runs `SOCKETS` (2) attackers for `SECONDS`: each opens a chat socket and writes pings and
feedback on a missing answer as fast as it can without ever reading, and when the server closes
it, reconnects at once and starts again. It prints one JSON object: frames written, sockets
opened, reconnects, how long each socket lived from its first frame to being closed, and the
close codes seen. It runs in its own process so that its busy loop never delays the client whose
latency is being measured.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Do you deliver to Princeton?",
    "What are your opening hours?",
    "Do you sell gift cards?",
    "How long do your flowers last?",
]
# A customer's asks per socket in the measurement: inside the frame budget's burst of 30.
ASKS_PER_SOCKET = 20

FRAMES = ['{"type": "ping"}', '{"type": "feedback", "message": 2147483647, "value": "up"}']


async def attacker(url: str, deadline: float, stats: dict) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    while time.monotonic() < deadline:
        try:
            # The attacker never reads, so its client soon stops reading the socket: past
            # max_queue unread frames. Two: the server's `ready` and its error frame, so the close
            # frame after them is still read. With one, the client stopped right after the error
            # frame; a close frame arriving in a later read went unseen, and the socket ended as
            # 1006 instead of 4008 (a race of TCP reads, seen once in CI).
            ws = await connect(url, open_timeout=10, max_queue=2, close_timeout=1)
        except (OSError, InvalidStatus, TimeoutError):
            stats["failed_connects"] += 1
            await asyncio.sleep(0.05)
            continue
        stats["sockets"] += 1
        started = time.monotonic()
        try:
            n = 0
            while time.monotonic() < deadline:
                await ws.send(FRAMES[n % 2])
                n += 1
                stats["frames"] += 1
                if n % 64 == 0:
                    await asyncio.sleep(0)  # let the client notice a close
        except ConnectionClosed:
            stats["lifetimes"].append(time.monotonic() - started)
            stats["codes"][str(ws.close_code)] += 1
        finally:
            await ws.close()


async def flood(ws_url: str, key: str, seconds: float, sockets: int = 2) -> dict:
    url = f"{ws_url}/ws/chat/{key}/"
    stats = {
        "frames": 0,
        "sockets": 0,
        "failed_connects": 0,
        "lifetimes": [],
        "codes": Counter(),
    }
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(attacker(url, deadline, stats) for _ in range(sockets)))
    lifetimes = stats.pop("lifetimes")
    stats["closed"] = len(lifetimes)
    stats["reconnects"] = max(0, stats["sockets"] - sockets)
    stats["lifetime_max_s"] = round(max(lifetimes, default=0.0), 3)
    stats["lifetime_median_s"] = round(statistics.median(lifetimes), 3) if lifetimes else None
    stats["frames_per_s"] = round(stats["frames"] / seconds)
    return stats


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def customer(url: str, until, pause: float = 0.2) -> list[float]:
    """Ask the demo questions one at a time, `pause` seconds apart, until `until()` is true;
    a fresh socket every ASKS_PER_SOCKET asks. Returns each ask's latency in seconds."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    while not until():
        async with connect(url, open_timeout=30) as ws:
            ready = json.loads(await ws.recv())
            assert ready["type"] == "ready", ready
            for n in range(ASKS_PER_SOCKET):
                if until():
                    break
                ask_id = uuid.uuid4().hex
                started = time.monotonic()
                await ws.send(json.dumps({"type": "ask", "id": ask_id, "text": QUESTIONS[n % 4]}))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if frame.get("id") == ask_id and frame["type"] in ("answer", "error"):
                        assert frame["type"] == "answer", frame
                        break
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(pause)
    return latencies


async def new_sockets(url: str, count: int) -> int:
    """Open `count` sockets at once; how many got their ready frame."""
    from websockets.asyncio.client import connect

    sockets, ready = [], 0
    try:
        for _ in range(count):
            sockets.append(await connect(url, open_timeout=30))
        for ws in sockets:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            ready += frame.get("type") == "ready"
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return ready


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1) if values else float("nan")


async def scenario(
    ws_url: str, key: str, pid: int, seconds: float, baseline: float, sockets: int = 2
) -> dict:
    """Baseline latency for `baseline` seconds, then the flood for `seconds` with a customer
    asking throughout, then memory and 20 new sockets from the same (loopback) address."""
    url = f"{ws_url}/ws/chat/{key}/"
    warm = time.monotonic() + 1
    await customer(url, lambda: time.monotonic() > warm)  # warm-up, not counted
    end = time.monotonic() + baseline
    normal = await customer(url, lambda: time.monotonic() > end)
    rss_before = rss_mb(pid)
    attackers = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harness.flood",
        ws_url,
        key,
        str(seconds),
        str(sockets),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    started = time.monotonic()
    during = await customer(url, lambda: attackers.returncode is not None)
    out, _ = await attackers.communicate()
    flood_result = json.loads(out)
    await asyncio.sleep(2)  # let the server settle
    rss_after = rss_mb(pid)
    opened = await new_sockets(url, 20)
    return {
        "flood": flood_result,
        "flood_s": round(time.monotonic() - started, 1),
        "normal_ms": median_ms(normal),
        "normal_asks": len(normal),
        "during_ms": median_ms(during),
        "during_max_ms": round(max(during, default=0) * 1000, 1),
        "during_asks": len(during),
        "ratio": round(statistics.median(during) / statistics.median(normal), 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "new_sockets_ready": opened,
    }


if __name__ == "__main__":
    ws_url, key, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sockets = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    print(json.dumps(asyncio.run(flood(ws_url, key, seconds, sockets))))
