"""
The embeddable script as a file and as served: the size budget (on the minified, gzipped bytes
the server sends), no HTML parsing of any text, and the headers that let any website load it
while keeping it cheap to revalidate. What it does in a browser (as served, minified) is tested
in tests/browser/.
"""

from __future__ import annotations

import gzip
import re

import pytest
from django.test import Client

from widget.chat.protocol import Close, ErrorCode
from widget.chat.views import CACHE_CONTROL, HANDOFF_JS, WIDGET_JS

BUDGET = 12 * 1024  # bytes sent, gzipped (the budget; Flowise's embed is 284 KB gzipped)
GZIP = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # what browsers send


@pytest.fixture(scope="module", params=[WIDGET_JS, HANDOFF_JS], ids=["widget", "handoff"])
def source(request) -> str:
    """Both scripts: widget.js and the hand-off module it loads on first use."""
    return request.param.read_text()


def test_the_script_is_sent_minified_and_at_most_12_kb_gzipped():
    sent = Client().get("/widget.js", headers=GZIP).content
    assert len(sent) <= BUDGET, f"widget.js is {len(sent)} bytes gzipped, over {BUDGET}"
    minified = gzip.decompress(sent)
    assert len(minified) < 0.85 * WIDGET_JS.stat().st_size  # the source is for reading
    assert minified.startswith(b"/*! ShopBot chat widget")  # the header comment is kept


def test_the_source_is_written_to_be_read(source):
    """The server minifies the scripts, so their source keeps to the project's width and strict
    comparisons; the loose ones are where type surprises hide."""
    long = [n for n, line in enumerate(source.splitlines(), 1) if len(line) > 100]
    assert long == [], f"lines over 100 characters: {long}"
    assert not re.search(r"[^=!<>]==[^=]|!=[^=]", source)


@pytest.mark.parametrize(
    "construct",
    ["innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write"],
)
def test_the_script_never_parses_strings_as_html_or_code(source, construct):
    assert construct not in source


def test_links_built_from_text_only_allow_safe_schemes():
    source = WIDGET_JS.read_text()
    # The one place hrefs are made (markdown links, bare URLs, the contact route).
    assert "/^(https?|mailto|tel):$/.test(url.protocol)" in source
    assert "rel: 'noopener noreferrer'" in source


def script_table(source: str, name: str) -> dict[str, str]:
    """The `KEY: value` pairs of the script's `const NAME = { … };`, values as written."""
    body = re.search(rf"const {name} = \{{(.*?)\}};", source, re.S).group(1)
    return dict(re.findall(r"(\w+): '?(\w+)'?", body))


def test_the_close_and_error_codes_mirror_the_servers():
    """widget.js names the codes it acts on as widget/chat/protocol.py does (docs/protocol.md):
    each name must be the server's, with the server's value."""
    source = WIDGET_JS.read_text()
    close = {name: int(code) for name, code in script_table(source, "CLOSE").items()}
    errors = script_table(source, "ERROR")
    assert close and errors
    assert close == {name: Close.__members__.get(name) for name in close}
    assert errors == {name: ErrorCode.__members__.get(name) for name in errors}
    # Codes are compared by those names only, never as bare numbers or strings.
    for script in (source, HANDOFF_JS.read_text()):
        assert not re.search(r"\bcode\s*[!=]==?\s*['\"\d]", script)


@pytest.mark.parametrize("code", list(Close), ids=lambda code: code.name)
def test_every_close_code_can_be_sent_and_the_widget_acts_on_it(code):
    """Issue 28: daphne's websocket library (autobahn) refuses to send a close code other than
    1000 or 3000-4999, so the 1013 "try again later" became a 1011 and the widget reconnected at
    once. Each code is asked of autobahn's own sendClose here, and widget.js names each; the ones
    that mean "under load" are among the closes it waits long after."""
    from autobahn.twisted.websocket import WebSocketServerProtocol
    from autobahn.websocket.protocol import WebSocketProtocol

    sent: list[dict] = []
    protocol = WebSocketServerProtocol()
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol.sendCloseFrame = lambda **frame: sent.append(frame)
    protocol.sendClose(code=int(code))
    assert sent[0]["code"] == code

    source = WIDGET_JS.read_text()
    assert code.name in script_table(source, "CLOSE")
    slow = re.search(r"const SLOW_CLOSES = \[(.*?)\];", source, re.S).group(1)
    under_load = {Close.TRY_AGAIN_LATER, Close.TOO_MANY_CONNECTIONS, Close.TOO_MANY_FRAMES}
    assert (f"CLOSE.{code.name}" in slow) == (code in under_load)


def test_the_script_defines_one_global():
    assigned = set(re.findall(r"\bwindow\.(\w+)\s*=[^=]", WIDGET_JS.read_text()))
    assert assigned == {"ShopBot"}
    # The hand-off module touches only what widget.js hands it: no globals, no links.
    module = HANDOFF_JS.read_text()
    assert not re.search(r"\b(window|globalThis|document)\b", module)
    assert "href" not in module


def test_served_with_cors_caching_and_type_headers():
    response = Client().get("/widget.js")
    assert response.status_code == 200
    assert response.content.startswith(b"/*! ShopBot chat widget")
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == CACHE_CONTROL
    assert "max-age=300" in CACHE_CONTROL
    assert re.fullmatch(r'"[0-9a-f]{16}"', response["ETag"])
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Accept-Encoding" in response["Vary"]
    assert "Content-Encoding" not in response


def test_served_gzipped_to_browsers_that_accept_it():
    response = Client().get("/widget.js", headers=GZIP)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == Client().get("/widget.js").content
    assert len(response.content) <= BUDGET
    assert int(response["Content-Length"]) == len(response.content)
    assert response["ETag"].endswith('-gz"')  # a different representation, a different ETag
    assert response["Access-Control-Allow-Origin"] == "*"

    refused = Client().get("/widget.js", headers={"Accept-Encoding": "gzip;q=0, br"})
    assert "Content-Encoding" not in refused


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_revalidation_with_the_etag_is_a_304(encoding):
    client = Client()
    first = client.get("/widget.js", headers={"Accept-Encoding": encoding})
    again = client.get(
        "/widget.js", headers={"Accept-Encoding": encoding, "If-None-Match": first["ETag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert again["Cache-Control"] == CACHE_CONTROL
    assert again["Access-Control-Allow-Origin"] == "*"

    other = client.get("/widget.js", headers={"Accept-Encoding": encoding, "If-None-Match": '"x"'})
    assert other.status_code == 200


def test_only_get_and_head():
    client = Client()
    assert client.head("/widget.js").status_code == 200
    assert client.post("/widget.js").status_code == 405


def test_the_handoff_module_is_served_to_any_website_like_the_script():
    response = Client().get("/widget-handoff.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    # widget.js import()s it from the shop's page: a cross-origin module needs CORS.
    assert response["Access-Control-Allow-Origin"] == "*"
    module = gzip.decompress(response.content)
    assert module == Client().get("/widget-handoff.js").content
    assert len(module) < 0.85 * HANDOFF_JS.stat().st_size  # minified too
