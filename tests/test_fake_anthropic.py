"""Tests of tests/fake_anthropic.py, driven by the real anthropic SDK (AsyncAnthropic).

Runs without Django:  .venv/bin/python -m pytest -p no:django tests/test_fake_anthropic.py -q
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import anthropic
import httpx
import httpx2  # the transport anthropic 2.x uses; mid-stream failures surface as httpx2 errors
import pytest

try:
    from tests.fake_anthropic import Block, FakeAnthropic, Scenario
except ImportError:  # tests/ not importable as a package: run from inside tests/
    from fake_anthropic import Block, FakeAnthropic, Scenario

MODEL = "claude-haiku-4-5"  # ShopBot settings.ANTHROPIC_MODEL default
SYSTEM = [{"type": "text", "text": "You are ShopBot. Answer only from the search results."}]
FAQ_TEXT = "We deliver to Princeton."


def faq_messages(citations: bool = True) -> list:
    return [
        {
            "role": "user",
            "content": [
                {
                    "type": "search_result",
                    "source": "faq:1",
                    "title": "Delivery area",
                    "content": [{"type": "text", "text": FAQ_TEXT}],
                    "citations": {"enabled": citations},
                },
                {"type": "text", "text": "Do you deliver to Princeton?"},
            ],
        }
    ]


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def make_client(fake: FakeAnthropic, **kw) -> anthropic.AsyncAnthropic:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("max_retries", 0)
    kw.setdefault("api_key", "test")
    return anthropic.AsyncAnthropic(base_url=fake.base_url, **kw)


async def run_stream(client: anthropic.AsyncAnthropic, messages=None):
    """Returns (events seen, text deltas, citations, final message)."""
    seen, texts, citations = [], [], []
    async with client.messages.stream(
        model=MODEL, max_tokens=256, system=SYSTEM, messages=messages or faq_messages()
    ) as stream:
        async for event in stream:
            seen.append(event.type)
            if event.type == "text":
                texts.append(event.text)
            elif event.type == "citation":
                citations.append(event.citation)
        final = await stream.get_final_message()
    return seen, texts, citations, final


async def run_stream_collecting(client, seen: list, texts: list):
    """Like run_stream, but fills the caller's lists so they survive an exception."""
    async with client.messages.stream(
        model=MODEL, max_tokens=256, system=SYSTEM, messages=faq_messages()
    ) as stream:
        async for event in stream:
            seen.append(event.type)
            if event.type == "text":
                texts.append(event.text)
        return await stream.get_final_message()


# --------------------------------------------------------------------------- happy path


@pytest.mark.asyncio
async def test_default_answer_streams_text_citation_and_usage(fake):
    async with make_client(fake) as client:
        seen, texts, citations, final = await run_stream(client)

    assert len(texts) > 1 and "".join(texts) == f"According to Delivery area: {FAQ_TEXT}"
    assert seen[0] == "message_start" and seen[-1] == "message_stop"
    assert seen.index("citation") > max(i for i, t in enumerate(seen) if t == "text")

    (cit,) = citations
    assert cit.type == "search_result_location"
    assert (cit.search_result_index, cit.source, cit.title, cit.cited_text) == (
        0,
        "faq:1",
        "Delivery area",
        FAQ_TEXT,
    )
    assert (cit.start_block_index, cit.end_block_index) == (0, 1)

    (block,) = final.content
    assert block.type == "text" and block.text == "".join(texts)
    assert [c.search_result_index for c in block.citations] == [0]
    assert block.citations[0].source == "faq:1"
    assert final.stop_reason == "end_turn" and final.model == MODEL and final.id.startswith("msg_")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == len(block.text.split())
    assert final.usage.cache_creation_input_tokens == 0 and final.usage.cache_read_input_tokens == 0

    (req,) = fake.requests
    assert req.path == "/v1/messages" and req.stream
    assert (
        req.json["model"] == MODEL
        and req.json["system"] == SYSTEM
        and req.json["max_tokens"] == 256
    )
    assert req.api_key == "test"  # anthropic 2.11.0 sends it as "Authorization: Bearer test"
    assert req.anthropic_version  # whatever the SDK sends, e.g. "2023-06-01"
    assert req.search_results[0]["source"] == "faq:1"


@pytest.mark.asyncio
async def test_scripted_chunks_citations_usage_in_order(fake):
    chunks = ["Yes, ", "we deliver ", "to Princeton", "."]
    fake.script(
        text_chunks=chunks,
        cite=[(0, FAQ_TEXT)],
        input_tokens=1200,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=7,
        output_tokens=9,
        message_id="msg_scripted",
    )
    async with make_client(fake) as client:
        _, texts, citations, final = await run_stream(client)
        # queue drained -> next request gets the default answer again
        _, texts2, _, _ = await run_stream(client)

    assert texts == chunks
    assert [(c.search_result_index, c.cited_text, c.source) for c in citations] == [
        (0, FAQ_TEXT, "faq:1")
    ]
    assert final.id == "msg_scripted"
    u = final.usage
    assert (
        u.input_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.output_tokens,
    ) == (1200, 1000, 7, 9)
    assert "".join(texts2).startswith("According to")
    assert fake.pending() == 0 and len(fake.requests) == 2


@pytest.mark.asyncio
async def test_multiple_blocks_and_no_citations(fake):
    fake.script(
        blocks=[
            Block(["Hi there. "], citations=False),
            Block(["We deliver."], cite=[(0, FAQ_TEXT)]),
        ]
    )
    fake.script(text_chunks=["No idea."], citations=False)
    async with make_client(fake) as client:
        _, texts, _, final = await run_stream(client)
        _, texts2, citations2, final2 = await run_stream(client)
    assert texts == ["Hi there. ", "We deliver."]
    assert [b.text for b in final.content] == texts
    assert final.content[0].citations is None and final.content[1].citations[0].source == "faq:1"
    assert texts2 == ["No idea."] and citations2 == [] and final2.content[0].citations is None


def test_wire_format_is_the_real_sse_sequence(fake):
    body = {"model": MODEL, "max_tokens": 64, "stream": True, "messages": faq_messages()}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", fake.base_url + "/v1/messages", json=body, headers=headers, timeout=5
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        raw = r.read().decode()
    events = []
    for frame in raw.strip().split("\n\n"):
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == name_line[len("event: ") :]
        events.append(data)

    kinds = [
        e["type"] if e["type"] != "content_block_delta" else e["delta"]["type"] for e in events
    ]
    assert kinds == [
        "message_start",
        "content_block_start",
        "ping",
        "text_delta",
        "text_delta",
        "text_delta",
        "citations_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == MODEL
    assert set(start["usage"]) >= {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }
    assert events[1]["content_block"] == {"type": "text", "text": "", "citations": []}
    assert set(events[6]["delta"]["citation"]) == {
        "type",
        "source",
        "title",
        "cited_text",
        "search_result_index",
        "start_block_index",
        "end_block_index",
    }
    assert (
        events[8]["delta"]["stop_reason"] == "end_turn" and events[8]["usage"]["output_tokens"] > 0
    )
    assert fake.requests[0].api_key == "k" and fake.requests[0].anthropic_version == "2023-06-01"


@pytest.mark.asyncio
async def test_non_streaming_create(fake):
    async with make_client(fake) as client:
        msg = await client.messages.create(
            model=MODEL, max_tokens=64, system=SYSTEM, messages=faq_messages()
        )
    assert msg.content[0].text.endswith(FAQ_TEXT)
    assert msg.content[0].citations[0].search_result_index == 0
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0
    assert fake.requests[0].stream is False


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.asyncio
async def test_429_raises_rate_limit_error(fake):
    fake.rate_limited(retry_after=7)
    async with make_client(fake) as client:
        with pytest.raises(anthropic.RateLimitError) as ei:
            await run_stream(client)
    err = ei.value
    assert err.status_code == 429 and err.type == "rate_limit_error"
    assert err.response.headers["retry-after"] == "7" and err.request_id.startswith("req_")


@pytest.mark.asyncio
async def test_429_then_success_with_sdk_retry(fake):
    fake.rate_limited(retry_after_ms=10)
    async with make_client(fake, max_retries=1) as client:
        _, texts, _, _ = await run_stream(client)
    assert "".join(texts).endswith(FAQ_TEXT)
    assert len(fake.requests) == 2
    assert fake.requests[1].headers["x-stainless-retry-count"] == "1"


@pytest.mark.asyncio
async def test_529_raises_overloaded_internal_server_error(fake):
    fake.overloaded()
    async with make_client(fake) as client:
        with pytest.raises(anthropic.InternalServerError) as ei:
            await run_stream(client)
    assert isinstance(ei.value, anthropic.APIStatusError)
    assert isinstance(ei.value, anthropic.OverloadedError)  # anthropic 2.11.0 has a 529 subclass
    assert ei.value.status_code == 529 and ei.value.type == "overloaded_error"


@pytest.mark.asyncio
async def test_500_raises_internal_server_error(fake):
    fake.server_error()
    async with make_client(fake) as client:
        with pytest.raises(anthropic.InternalServerError) as ei:
            await client.messages.create(model=MODEL, max_tokens=64, messages=faq_messages())
    assert ei.value.status_code == 500 and ei.value.type == "api_error"


@pytest.mark.asyncio
async def test_auth_and_version_checks():
    with FakeAnthropic(api_key="right-key") as fake:
        async with make_client(fake, api_key="wrong") as client:
            with pytest.raises(anthropic.AuthenticationError):
                await client.messages.create(model=MODEL, max_tokens=8, messages=faq_messages())
        url = fake.base_url + "/v1/messages"
        body = {"model": MODEL, "max_tokens": 8, "messages": faq_messages()}
        version = {"anthropic-version": "2023-06-01"}
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.post(url, json=body, headers=version)).status_code == 401
            no_version = await http.post(url, json=body, headers={"x-api-key": "right-key"})
            assert no_version.status_code == 400
            ok = await http.post(url, json=body, headers={"x-api-key": "right-key", **version})
        assert ok.status_code == 200 and ok.json()["type"] == "message"
        assert len(fake.requests) == 4


# --------------------------------------------------------------------------- stream failures


@pytest.mark.asyncio
async def test_stall_after_message_start_times_out_without_blocking_server(fake):
    fake.stall(seconds=30)  # after message_start; stop() ends it
    stalled_client = make_client(fake, timeout=1.5)
    other_client = make_client(fake)
    seen, texts = [], []
    try:
        stalled = asyncio.create_task(run_stream_collecting(stalled_client, seen, texts))
        await asyncio.to_thread(fake.wait_for_requests, 1)
        # the stalled handler must not block other requests
        _, other_texts, _, _ = await run_stream(other_client)
        assert "".join(other_texts).endswith(FAQ_TEXT) and not stalled.done()
        # The read timeout hits inside the SSE body, which anthropic 2.11.0 does NOT wrap:
        # it surfaces as httpx2.ReadTimeout (an httpx2.TimeoutException), not APITimeoutError.
        with pytest.raises((anthropic.APITimeoutError, httpx2.TimeoutException)):
            await stalled
    finally:
        await stalled_client.close()
        await other_client.close()
    assert seen == ["message_start"] and texts == []


@pytest.mark.asyncio
async def test_stall_before_headers_raises_api_timeout_error(fake):
    fake.stall(seconds=30, at="headers")
    async with make_client(fake, timeout=0.5) as client:
        with pytest.raises(anthropic.APITimeoutError):
            await run_stream(client)


@pytest.mark.asyncio
async def test_stream_cut_mid_answer(fake):
    fake.cut(after=2, text_chunks=["We ", "deliver ", "to Princeton."])
    seen, texts = [], []
    async with make_client(fake) as client:
        # connection dropped inside the chunked body: httpx2.RemoteProtocolError
        # ("incomplete chunked read"), raised as-is by anthropic 2.11.0.
        with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)) as ei:
            await run_stream_collecting(client, seen, texts)
    assert isinstance(ei.value, (anthropic.APIConnectionError, httpx2.RemoteProtocolError))
    assert texts == ["We ", "deliver "]
    assert "message_stop" not in seen and "message_delta" not in seen


@pytest.mark.asyncio
async def test_sse_error_event_mid_stream(fake):
    fake.sse_error(after=1, text_chunks=["We ", "deliver."])
    seen, texts = [], []
    async with make_client(fake) as client:
        with pytest.raises(anthropic.APIStatusError) as ei:
            await run_stream_collecting(client, seen, texts)
    # The HTTP status was already 200, so the SDK raises a plain APIStatusError
    # (status_code 200), not OverloadedError; the error type is in the body.
    assert ei.value.type == "overloaded_error"
    assert ei.value.body["error"]["type"] == "overloaded_error"
    assert texts == ["We "] and "message_stop" not in seen


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.asyncio
async def test_stop_ends_stalls_promptly_and_leaves_no_threads():
    fake = FakeAnthropic()
    fake.stall(seconds=60)
    client = make_client(fake, timeout=10.0)
    task = asyncio.create_task(run_stream(client))
    try:
        await asyncio.to_thread(fake.wait_for_requests, 1)
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await asyncio.to_thread(fake.stop)
        # Behaviour, not speed: stop() does not wait out the 60 s stall (half of it is the bound,
        # so a busy machine cannot fail this).
        assert time.monotonic() - t0 < 30.0
        with pytest.raises((anthropic.APIError, httpx2.TransportError)):
            await asyncio.wait_for(task, 5)
    finally:
        await client.close()
        fake.stop()  # idempotent
    assert not [t for t in threading.enumerate() if t.name.startswith("fake-anthropic")]


def test_scenario_queue_and_reset_are_thread_safe(fake):
    def worker():
        for _ in range(50):
            fake.script(Scenario(text_chunks=["x"]))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.pending() == 200
    fake.reset()
    assert fake.pending() == 0 and fake.requests == []


def test_scenario_rejects_unknown_failure_modes():
    with pytest.raises(ValueError):
        Scenario(error="teapot")
    with pytest.raises(ValueError):
        Scenario(error="stall", stall_at="never")
