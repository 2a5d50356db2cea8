"""
The frames the server sends, against their two other descriptions: every type is documented in
docs/protocol.md and handled by the widget (widget.js's FRAME_HANDLERS, into which the hand-off
module registers its frames when widget.js loads it for a frame it has no handler for). And every
frame is built in widget/chat/protocol.py: no other product module names a frame type.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from widget.chat.protocol import CLIENT_FRAMES, SERVER_FRAMES, FrameType
from widget.chat.views import HANDOFF_JS, WIDGET_JS

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["faq", "widget", "owner", "lib", "shopbot"]


def object_keys(source: str, name: str) -> set[str]:
    """The property names of the object literal assigned to `name` (`const name = {...}`), or
    merged into it (`Object.assign(name, {...})`): the names at its first level of braces,
    strings, template literals and comments skipped."""
    match = re.search(rf"\b{name}\s*=\s*\{{", source) or re.search(
        rf"\bObject\.assign\(\s*{name}\s*,\s*\{{", source
    )
    if match is None:
        return set()
    keys, depth, i = set(), 1, match.end()
    at_key = True  # at the start of a property (after `{` or a first-level `,`)
    while depth and i < len(source):
        char = source[i]
        if source.startswith("//", i):
            i = source.index("\n", i)
            continue
        if source.startswith("/*", i):
            i = source.index("*/", i) + 2
            continue
        if char in "'\"`":
            end = i + 1
            while source[end] != char:
                end += 2 if source[end] == "\\" else 1
            if depth == 1 and at_key and re.match(r"\s*:", source[end + 1 :]):
                keys.add(source[i + 1 : end])
            i, at_key = end + 1, False
            continue
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        elif depth == 1 and char == ",":
            at_key = True
        elif (
            depth == 1
            and at_key
            and (word := re.match(r"(?:async\s+)?([A-Za-z_$][\w$]*)", source[i:]))
        ):
            if re.match(r"\s*[:(]", source[i + word.end() :]):
                keys.add(word.group(1))
            i, at_key = i + word.end(), False
            continue
        i += 1
    return keys


def test_the_parser_reads_an_object_literals_first_level_names():
    source = """const FRAME_HANDLERS = {
      ready(frame) { if (x) { y({ nested: 1 }); } },  // a comment, with: colon
      'quoted': (f) => f, "other-name": 1,
      /* skipped: {} */ pong() { return '}'; },
      async later(a, b) { return `${a}: {b}`; }
    };"""
    assert object_keys(source, "FRAME_HANDLERS") == {
        "ready",
        "quoted",
        "other-name",
        "pong",
        "later",
    }


def test_client_and_server_frames_are_every_frame_type_once():
    assert set(CLIENT_FRAMES) | SERVER_FRAMES == set(FrameType)
    assert not set(CLIENT_FRAMES) & SERVER_FRAMES


@pytest.mark.parametrize("frame_type", sorted(SERVER_FRAMES))
def test_every_frame_the_server_sends_is_documented(frame_type):
    assert f"`{frame_type}`" in (ROOT / "docs" / "protocol.md").read_text()


@pytest.mark.parametrize("frame_type", sorted(SERVER_FRAMES))
def test_every_frame_the_server_sends_has_a_handler_in_the_widget(frame_type):
    handlers = object_keys(WIDGET_JS.read_text(), "FRAME_HANDLERS")
    # The hand-off module, loaded on first need, registers its frames in widget.js's handlers.
    handlers |= object_keys(HANDOFF_JS.read_text(), "handlers")
    assert frame_type in handlers


def test_frames_are_built_only_in_protocol_py():
    outside = [
        path.relative_to(ROOT)
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if "FrameType" in path.read_text() and path != ROOT / "widget/chat/protocol.py"
    ]
    assert outside == []
