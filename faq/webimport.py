"""
Importing an FAQ from the shop's own website: fetch the page (or read a saved copy), find its
questions and answers, and import the ones the owner picks through faq/importing.py.

Fetching is careful because the address comes from a user and the server does the request:
http and https only, at most MAX_REDIRECTS redirects, at most MAX_PAGE_BYTES, no single wait longer
than IMPORT_FETCH_TIMEOUT seconds and the fetch abandoned once it has taken that long in all
(checked between reads), and never an address on a private, loopback or link-local network (unless
IMPORT_ALLOW_PRIVATE_HOSTS is on). The address check happens where the connection is made, for
every hop: the host name is resolved once, every address it resolves to must be public, the socket
is opened to that checked address (so a second, different DNS answer cannot slip in), and the
address the socket is connected to is checked again.

Questions and answers are looked for in order of trust: schema.org Question items (JSON-LD, as
WordPress FAQ blocks from Yoast or Rank Math emit, and microdata), <details>/<summary> accordions
(Shopify), button + panel accordions tied by aria-controls (Squarespace, Wix, Bootstrap),
definition lists, and headings that end in "?" followed by their text. The first source to find a
question wins; the nearest section heading above it becomes its category.

Every failure is a PageImportError whose message is one sentence for the owner.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpcore
import httpx
from bs4 import BeautifulSoup, Comment, NavigableString, Tag
from django.conf import settings
from django.db import transaction

from faq import importing
from faq.models import FAQEntry, Shop
from faq.text import wording_key

MAX_PAGE_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 3
HTML_TYPES = ("text/html", "application/xhtml+xml")
USER_AGENT = "ShopBot-FAQ-import/1.0 (fetches one page the shop owner asked for)"

HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]
# Parts of a page that hold menus and site-wide links, not the FAQ (Shopify's menu drawer is a
# <details>, a burger button has aria-controls).
CHROME = ["header", "nav", "footer", "aside", "form"]
# Section headings that name the whole page rather than a topic.
GENERIC_HEADING = re.compile(
    r"^(faqs?|f\.a\.q\.?s?|frequently asked questions?|common questions|questions"
    r"|questions (and|&) answers|q ?& ?a|help)$|\bfaqs?\b|frequently asked",
    re.IGNORECASE,
)
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
ICON_CHARS = " \t\n+-–—−×✕▾▸▴▼▲›»⌄"


class PageImportError(Exception):
    """The page cannot be imported; the message says why and what to do, in one sentence."""


@dataclass
class Page:
    url: str  # the final address after redirects, or the uploaded file's name
    content: bytes
    encoding: str | None = None  # from the Content-Type header, if it named one


@dataclass
class Found:
    question: str
    answer: str
    category: str = ""
    source: str = ""  # which kind of markup it came from, shown in the preview


STATUSES = ("new", "update", "unchanged")


@dataclass
class Candidate:
    """A found pair compared with the shop's FAQ: "new", "update" or "unchanged"."""

    found: Found
    status: str
    entry: FAQEntry | None


# --- Fetching ---------------------------------------------------------------------------------


# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at: NAT64 (RFC 6052,
# RFC 8215) and the deprecated IPv4-compatible form (::a.b.c.d).
_IPV4_IN_LAST_32_BITS = [
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("::/96"),
]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped (::ffff:a.b.c.d), 6to4 (2002:AABB:CCDD::),
    NAT64 or IPv4-compatible; None for a plain IPv6 address."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if any(ip in network for network in _IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True for an address on the public internet; False for private, loopback, link-local,
    shared (CGNAT), multicast, reserved and unspecified ones, also when an IPv6 address carries
    one of them (IPv4-mapped, 6to4, NAT64, IPv4-compatible)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def _refuse(host: str, address: str) -> PageImportError:
    where = address if host == address else f"{host} is {address}"
    return PageImportError(
        f"ShopBot does not fetch addresses on private or local networks ({where}); "
        "give the public address of your FAQ page, or save the page in your browser and upload "
        "the file."
    )


_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="faq-dns")


class _GuardedBackend(httpcore.SyncBackend):
    """Opens connections only to checked addresses: see the module docstring."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        # getaddrinfo has no timeout of its own: wait for it in a helper thread, and give up on
        # it (the thread ends when the resolver does) rather than hold the owner's page.
        lookup = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise httpcore.ConnectTimeout(f"looking up {host} took too long") from None
        except (socket.gaierror, UnicodeError):
            raise PageImportError(
                f"No website was found at {host}; check the address of your FAQ page."
            ) from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        allow_private = settings.IMPORT_ALLOW_PRIVATE_HOSTS
        if not allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise _refuse(host, address)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            peer = stream.get_extra_info("server_addr")[0]
            if not allow_private and not is_public_address(peer):
                stream.close()
                raise _refuse(host, peer)
            return stream
        raise error or httpcore.ConnectError(f"no address for {host}")


def _check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        raise PageImportError(
            "That is not a web address; give the full address, such as https://example.com/faq."
        ) from None
    if parsed.scheme not in ("http", "https"):
        raise PageImportError(
            "Only http:// and https:// addresses can be imported; give the address of your FAQ "
            "page as it appears in the browser."
        )
    if not parsed.host:
        raise PageImportError(
            "That address has no website name; give the full address, such as "
            "https://example.com/faq."
        )
    return parsed


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


def _too_big() -> PageImportError:
    return PageImportError(
        f"The page is larger than {MAX_PAGE_BYTES // (1024 * 1024)} MB; save just your FAQ page "
        "from the browser and upload it, or import a CSV file instead."
    )


def _slow(seconds: float) -> PageImportError:
    return PageImportError(
        f"The website did not send the page within {seconds:g} seconds; try again later, or save "
        "the page in your browser and upload the file."
    )


def fetch(url: str) -> Page:
    """GET an HTML page within the limits above, following redirects; every hop's address is
    checked where its connection is made (_GuardedBackend). Blocking: call it from sync code."""
    limit = settings.IMPORT_FETCH_TIMEOUT
    deadline = time.monotonic() + limit
    current = _check_url(url)
    with httpcore.ConnectionPool(network_backend=_GuardedBackend(), retries=0) as pool:
        for _hop in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise _slow(limit)
            host = current.netloc.decode("ascii")
            request_url = httpcore.URL(
                scheme=current.raw_scheme,
                host=current.raw_host,
                port=current.port,
                target=current.raw_path,
            )
            headers = [
                (b"Host", host.encode("ascii")),
                (b"User-Agent", USER_AGENT.encode()),
                (b"Accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"),
                # Uncompressed, so the size limit counts what is parsed (no zip bombs).
                (b"Accept-Encoding", b"identity"),
            ]
            timeouts = {"connect": left, "read": left, "write": left, "pool": left}
            try:
                with pool.stream(
                    "GET", request_url, headers=headers, extensions={"timeout": timeouts}
                ) as response:
                    location = _header(response.headers, b"location")
                    if response.status in (301, 302, 303, 307, 308) and location:
                        next_url = current.join(location)
                        current = _check_url(str(next_url))
                        continue
                    return Page(str(current), *_read(response, current, deadline, limit))
            except httpcore.TimeoutException:
                raise _slow(limit) from None
            except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
                raise PageImportError(
                    f"Could not get the page from {current.host} ({exc or 'connection failed'}); "
                    "check the address, or save the page in your browser and upload the file."
                ) from None
    raise PageImportError(
        f"The address redirected more than {MAX_REDIRECTS} times; open it in your browser and "
        "give the address you end up on."
    )


def _read(response, url: httpx.URL, deadline: float, limit: float) -> tuple[bytes, str | None]:
    if response.status != 200:
        raise PageImportError(
            f"The website answered {response.status} for {url}; check the address of your FAQ "
            "page (it must be public, without a login)."
        )
    content_type = _header(response.headers, b"content-type")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and mime not in HTML_TYPES:
        raise PageImportError(
            f"The address gives {mime}, not a web page; give the address of the FAQ page itself."
        )
    encoding = _header(response.headers, b"content-encoding").lower()
    if encoding not in ("", "identity"):
        raise PageImportError(
            f"The website sent the page compressed ({encoding}) although asked not to; save the "
            "page in your browser and upload the file."
        )
    length = _header(response.headers, b"content-length")
    if length.isdigit() and int(length) > MAX_PAGE_BYTES:
        raise _too_big()
    body = bytearray()
    for chunk in response.iter_stream():
        body += chunk
        if len(body) > MAX_PAGE_BYTES:
            raise _too_big()
        if time.monotonic() > deadline:
            raise _slow(limit)
    charset = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return bytes(body), charset.group(1) if charset else None


def read_file(data: bytes, name: str) -> Page:
    """A page the owner saved from the browser and uploaded (or passed on the command line)."""
    if len(data) > MAX_PAGE_BYTES:
        raise _too_big()
    head = data[:2048].lstrip().lower()
    if b"\x00" in data[:2048] or not head.startswith(b"<"):
        raise PageImportError(
            f"{name} is not a saved web page; in your browser choose Save Page As, "
            "\u201cWeb page, HTML only\u201d, and upload that file."
        )
    return Page(name, data)


def load(source: str) -> Page:
    """An http(s) address is fetched; anything else is read as a saved page on disk."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.IGNORECASE):
        return fetch(source)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise PageImportError(
            f"Cannot read {source} ({exc.strerror}); give an http(s) address or a saved page."
        ) from None
    return read_file(data, source)


# --- Finding questions and answers ------------------------------------------------------------


def clean(text: str) -> str:
    return UNPRINTABLE.sub("", text).strip()


def _inline(text: str) -> str:
    return clean(" ".join(text.split()))


def html_to_text(node: Tag | str, base_url: str = "") -> str:
    """Plain text keeping paragraphs and line breaks, lists as "- " lines and links as
    [text](url): the markdown subset the chat widget renders."""
    if isinstance(node, str):
        node = BeautifulSoup(node, "lxml")
    return nodes_to_text(node.children, base_url)


def nodes_to_text(nodes: Iterable, base_url: str = "") -> str:
    parts: list[str] = []
    _walk(nodes, parts, base_url)
    lines: list[str] = []
    for line in (" ".join(line.split()) for line in "".join(parts).split("\n")):
        if lines and lines[-1] == "-":  # <li><p>text</p></li>: the text goes on the dash's line
            if line:
                lines[-1] = f"- {line}"
            continue
        if line.startswith("- ") or line == "-":
            content = [n for n, text in enumerate(lines) if text]
            if content and lines[content[-1]].startswith("- "):
                del lines[content[-1] + 1 :]  # list items follow each other without blank lines
        lines.append(line)
    return clean(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)))


BLOCKS = {
    "p", "div", "section", "article", "main", "blockquote", "pre", "table", "tr", "ul", "ol",
    "dl", "dt", "dd", "figure", "figcaption", "address", "hr", "details", "summary",
    *HEADINGS,
}  # fmt: skip
SKIPPED = {"script", "style", "noscript", "template", "svg", "iframe", "object", "button"}


def _walk(nodes: Iterable, parts: list[str], base_url: str) -> None:
    for child in nodes:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            parts.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag) or child.name in SKIPPED:
            continue
        name = child.name
        if name == "br":
            parts.append("\n")
        elif name == "li":
            parts.append("\n- ")
            _walk(child.children, parts, base_url)
            parts.append("\n")
        elif name == "a" and child.get("href"):
            parts.append(_link(child, base_url))
        elif name in ("td", "th"):
            _walk(child.children, parts, base_url)
            parts.append(" ")
        elif name in BLOCKS:
            parts.append("\n\n")
            _walk(child.children, parts, base_url)
            parts.append("\n\n")
        else:
            _walk(child.children, parts, base_url)


def _link(a: Tag, base_url: str) -> str:
    label = _inline(a.get_text(" "))
    try:
        href = str(httpx.URL(base_url).join(a["href"])) if base_url else a["href"].strip()
    except httpx.InvalidURL:
        return label
    if re.sub(r"^(mailto|tel):", "", href, flags=re.IGNORECASE) == label:
        return label  # an address shown as itself needs no link syntax around it
    if label and re.match(r"^(https?:|mailto:|tel:)", href, re.IGNORECASE):
        return f"[{label}]({href})"
    return label


def _question(text: str) -> str:
    return _inline(text).strip(ICON_CHARS)


def _in_chrome(tag: Tag) -> bool:
    return any(
        parent.name in CHROME or parent.get("role") in ("navigation", "menu", "banner")
        for parent in [tag, *tag.parents]
        if isinstance(parent, Tag)
    )


def _is_ancestor(ancestor: Tag, tag: Tag) -> bool:
    # By identity: a Tag's == compares whole subtrees.
    return any(parent is ancestor for parent in tag.parents)


class Parsed:
    """A parsed page with what the extractors look up, indexed in one walk: elements by id, each
    element's place in document order, and which elements hold an accordion trigger, a <details>
    or a heading somewhere inside. Every extractor then walks the page once, so a page of tens of
    thousands of accordions takes seconds, not the half hour the searches per item took. Reading
    stops with a PageImportError once this thread has spent `seconds` of CPU time on it."""

    def __init__(self, soup: BeautifulSoup, base_url: str, seconds: float, deadline: float) -> None:
        self.soup, self.base_url = soup, base_url
        self.seconds, self.deadline = seconds, deadline  # deadline: in time.thread_time()
        self.ids: dict[str, Tag] = {}
        self.order: dict[int, int] = {}  # id(tag) -> position in document order
        self.tags: list[Tag] = []
        self.holds_trigger: set[int] = set()
        self.holds_details: set[int] = set()
        self.holds_heading: set[int] = set()
        self._text_after: dict[int, tuple[dict[int, int], int]] = {}
        for position, tag in enumerate(soup.find_all(True)):
            if position % 1000 == 0:
                self.check()
            self.order[id(tag)] = position
            self.tags.append(tag)
            tag_id = tag.get("id")
            if isinstance(tag_id, str):
                self.ids.setdefault(tag_id, tag)
            if tag.get("aria-controls") is not None:
                self._mark_parents(tag, self.holds_trigger)
            if tag.name == "details":
                self._mark_parents(tag, self.holds_details)
            if tag.name in HEADINGS:
                self._mark_parents(tag, self.holds_heading)

    @staticmethod
    def _mark_parents(tag: Tag, marked: set[int]) -> None:
        for parent in tag.parents:
            if id(parent) in marked:
                return  # and so are all of its parents
            marked.add(id(parent))

    def check(self) -> None:
        if time.thread_time() > self.deadline:
            raise PageImportError(
                f"Reading that page took more than {self.seconds:g} seconds; save just your FAQ "
                "page from the browser and upload it, or import a CSV file instead."
            )

    def has_text_after(self, tag: Tag) -> bool:
        """Whether a sibling after `tag` holds any text (each parent's children read once)."""
        parent = tag.parent
        if parent is None:
            return False
        known = self._text_after.get(id(parent))
        if known is None:
            index: dict[int, int] = {}
            last = -1
            for i, child in enumerate(parent.children):
                index[id(child)] = i
                if isinstance(child, Comment):
                    continue
                if child.get_text(strip=True) if isinstance(child, Tag) else str(child).strip():
                    last = i
            known = self._text_after[id(parent)] = (index, last)
        index, last = known
        return index[id(tag)] < last


def _types(node: dict) -> list[str]:
    value = node.get("@type", [])
    values = value if isinstance(value, list) else [value]
    return [str(v).rsplit("/", 1)[-1].rsplit(":", 1)[-1] for v in values]


def _answer_text(node) -> str:
    if isinstance(node, list):
        node = node[0] if node else None
    if isinstance(node, dict):
        node = node.get("text")
    return node if isinstance(node, str) else ""


def _from_json_ld(soup: BeautifulSoup, base_url: str) -> list[tuple[Found, Tag | None]]:
    found = []

    def visit(data) -> None:
        # Depth first with a stack of its own, in document order: nesting of any depth is only
        # data, never a RecursionError.
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(reversed(node))
            elif isinstance(node, dict):
                if "Question" in _types(node):
                    answer = node.get("acceptedAnswer") or node.get("suggestedAnswer")
                    name = str(node.get("name") or node.get("text") or "")
                    question = _question(html_to_text(name))
                    text = html_to_text(_answer_text(answer), base_url)
                    if question and text:
                        found.append((Found(question, text, source="schema.org data"), None))
                    continue
                stack.extend(reversed(list(node.values())))

    for data in _json_ld_blocks(soup):
        visit(data)
    return found


def _json_ld_blocks(soup: BeautifulSoup) -> Iterator:
    """Each JSON-LD block of the page, parsed; a broken (or absurdly nested) one is skipped, so
    it cannot hide the others."""
    for script in soup.find_all("script", type=re.compile(r"ld\+json", re.IGNORECASE)):
        raw = (script.string or "").strip()
        raw = raw.removeprefix("<!--").removesuffix("-->")  # old themes hide it in a comment
        try:
            yield json.loads(raw, strict=False)
        except (ValueError, RecursionError):
            continue


def json_ld(page: Page) -> list:
    """The page's JSON-LD blocks, parsed (the opening-hours import reads them)."""
    return list(_json_ld_blocks(BeautifulSoup(page.content, "lxml", from_encoding=page.encoding)))


def _from_microdata(page: Parsed) -> list[tuple[Found, Tag | None]]:
    found = []
    for item in page.soup.find_all(itemtype=re.compile(r"schema\.org/Question$", re.IGNORECASE)):
        page.check()
        name = item.find(itemprop="name")
        answer = item.find(itemprop=re.compile(r"^(acceptedAnswer|suggestedAnswer)$"))
        if name is None or answer is None:
            continue
        text_el = answer.find(itemprop="text") or answer
        question = _question(name.get("content") or name.get_text(" "))
        text = (
            clean(text_el["content"])
            if text_el.get("content")
            else html_to_text(text_el, page.base_url)
        )
        if question and text:
            found.append((Found(question, text, source="schema.org data"), item))
    return found


def _from_details(page: Parsed) -> list[tuple[Found, Tag | None]]:
    found = []
    for details in page.soup.find_all("details"):
        page.check()
        if id(details) in page.holds_details or _in_chrome(details):
            continue
        summary = details.find("summary")
        if summary is None:
            continue
        body = [child for child in details.children if child is not summary]
        question, text = _question(summary.get_text(" ")), nodes_to_text(body, page.base_url)
        if question and text:
            found.append((Found(question, text, source="accordion"), details))
    return found


def _from_aria(page: Parsed) -> list[tuple[Found, Tag | None]]:
    found = []
    texts: dict[int, str] = {}  # a panel shared by several triggers is read once
    for trigger in page.soup.find_all(attrs={"aria-controls": True}):
        page.check()
        if trigger.get("role") == "tab" or _in_chrome(trigger):
            continue  # tabs hold whole sections, not one answer
        panel = page.ids.get(trigger["aria-controls"])
        if panel is None or _is_ancestor(panel, trigger) or _is_ancestor(trigger, panel):
            continue
        if id(panel) in page.holds_trigger or id(panel) in page.holds_details:
            continue  # a panel of accordions: its items are found one by one
        if id(panel) not in texts:
            texts[id(panel)] = html_to_text(panel, page.base_url)
        question, text = _question(trigger.get_text(" ")), texts[id(panel)]
        if question and text:
            found.append((Found(question, text, source="accordion"), trigger))
    return found


def _looks_like_question(text: str) -> bool:
    return text.rstrip().endswith(("?", "\uff1f"))


def _from_definition_lists(page: Parsed) -> list[tuple[Found, Tag | None]]:
    found = []
    for dl in page.soup.find_all("dl"):
        page.check()
        if _in_chrome(dl):
            continue
        terms = dl.find_all("dt")
        # Each term's answer: the <dd>s after it up to the next <dt>, its parent's children
        # walked once.
        bodies: dict[int, list[Tag]] = {}
        parents = {id(dt.parent): dt.parent for dt in terms}
        for parent in parents.values():
            body: list[Tag] | None = None
            for child in parent.children:
                if child.name == "dt":
                    body = bodies.setdefault(id(child), [])
                elif child.name == "dd" and body is not None:
                    body.append(child)
        pairs = [
            (_question(dt.get_text(" ")), nodes_to_text(bodies.get(id(dt), []), page.base_url), dt)
            for dt in terms
        ]
        # A list of product facts ("Weight: 2 kg") is no FAQ: most terms must be questions.
        if sum(_looks_like_question(q) for q, _, _ in pairs) * 2 < len(pairs):
            continue
        found += [(Found(q, a, source="definition list"), dt) for q, a, dt in pairs if q and a]
    return found


def _from_headings(page: Parsed) -> list[tuple[Found, Tag | None]]:
    found = []
    for heading in page.soup.find_all(HEADINGS):
        page.check()
        question = _question(heading.get_text(" "))
        if not _looks_like_question(question) or _in_chrome(heading):
            continue
        if heading.find_parent(["details", "summary", "dt", "button"]):
            continue
        # The answer is what follows, up to the next heading. A heading alone in its wrapper
        # (<div class="faq-q"><h3>…</h3></div><div class="faq-a">…</div>) is followed by
        # what follows the wrapper.
        anchor = heading
        while (
            not page.has_text_after(anchor)
            and anchor.parent is not None
            and anchor.parent.name not in ("body", "main", "article", "[document]")
        ):
            anchor = anchor.parent
        body = []
        for sibling in anchor.next_siblings:
            if isinstance(sibling, Tag) and (
                sibling.name in HEADINGS or id(sibling) in page.holds_heading
            ):
                break
            body.append(sibling)
        text = nodes_to_text(body, page.base_url)
        if question and text:
            found.append((Found(question, text, source="headings"), heading))
    return found


EXTRACTORS = [
    _from_microdata,
    _from_details,
    _from_aria,
    _from_definition_lists,
    _from_headings,
]


def _section_heading(page: Parsed, heading: Tag, questions: set[str]) -> str | None:
    """The category a section heading gives what follows it ("" for the page's title (h1) or a
    generic "FAQ" heading), or None if it is no section heading: empty, a question, or the
    heading of an answer or of an accordion item."""
    text = _inline(heading.get_text(" "))
    if (
        not text
        or _looks_like_question(text)
        or wording_key(_question(text)) in questions
        or id(heading) in page.holds_trigger
        or heading.find_parent(["summary", "details", "dt", "dd", "button"])
        or heading.find_parent(attrs={"role": "region"})
        or _in_chrome(heading)
    ):
        return None
    if heading.name == "h1" or GENERIC_HEADING.search(text):
        return ""
    return text[: importing.MAX_CATEGORY]


def _categories(page: Parsed, elements: list[Tag], questions: set[str]) -> dict[int, str]:
    """id(element) -> the nearest section heading above it of a higher level (a question's own
    heading is an h3 under an h2 section; any other element takes any level), in one walk of the
    page in document order."""
    wanted = {id(element) for element in elements}
    latest: dict[int, tuple[int, str]] = {}  # level -> (position, category) of the last one seen
    categories: dict[int, str] = {}
    for position, tag in enumerate(page.tags):
        if position % 1000 == 0:
            page.check()
        if id(tag) in wanted:
            own_level = int(tag.name[1]) if tag.name in HEADINGS else 7
            above = [latest[level] for level in range(1, own_level) if level in latest]
            categories[id(tag)] = max(above)[1] if above else ""
        if tag.name in HEADINGS:
            category = _section_heading(page, tag, questions)
            if category is not None:
                latest[int(tag.name[1])] = (position, category)
    return categories


# What a browser's "Save Page As" leaves of the page's address: Chrome's and Edge's comment.
SAVED_FROM = re.compile(r"saved from url=\(\d+\)(https?://\S+)", re.IGNORECASE)


def page_address(soup: BeautifulSoup, page: Page) -> str:
    """The address the page's relative links ("/shipping", "returns.html") are relative to, so an
    answer's link is kept absolute: the page's own address (a fetched page), with its `<base
    href>`; for an uploaded file, the address the page names itself by (`<base href>`, its
    canonical link or og:url, or the comment a browser's "Save Page As" leaves). "" when none is
    known: such links are then left out and their text kept (`_link`)."""

    def absolute(href: str, against: str = "") -> str:
        try:
            url = str(httpx.URL(against).join(href.strip())) if against else href.strip()
        except httpx.InvalidURL:
            return ""
        return url if re.match(r"^https?://[^/]", url, re.IGNORECASE) else ""

    own = page.url if page.url.startswith(("http://", "https://")) else ""
    base = soup.find("base", href=True)
    if base is not None and absolute(base["href"], own):
        return absolute(base["href"], own)
    if own:
        return own
    canonical = soup.find("link", rel="canonical", href=True)
    og = soup.find("meta", property="og:url", content=True)
    for candidate in (canonical and canonical["href"], og and og["content"]):
        if candidate and absolute(candidate):
            return absolute(candidate)
    for comment in soup.find_all(string=lambda text: isinstance(text, Comment)):
        saved = SAVED_FROM.search(comment)
        if saved:
            return saved.group(1)
    return ""


def extract(page: Page, cpu_seconds: float | None = None) -> list[Found]:
    """The page's questions and answers, most trusted source first, one per question. Stops with
    a PageImportError after `cpu_seconds` (IMPORT_READ_SECONDS) of this thread's CPU time."""
    seconds = settings.IMPORT_READ_SECONDS if cpu_seconds is None else cpu_seconds
    deadline = time.thread_time() + seconds
    soup = BeautifulSoup(page.content, "lxml", from_encoding=page.encoding)
    base_url = page_address(soup, page)
    results: list[tuple[Found, Tag | None]] = _from_json_ld(soup, base_url)
    for tag in soup.find_all(["script", "style", "noscript", "template"]):
        tag.decompose()
    parsed = Parsed(soup, base_url, seconds, deadline)
    for extractor in EXTRACTORS:
        results += extractor(parsed)
    questions = {wording_key(f.question) for f, _ in results}
    categories = _categories(parsed, [e for _, e in results if e is not None], questions)
    by_question: dict[str, Found] = {}
    for found, element in results:
        key = wording_key(found.question)
        category = categories.get(id(element), "") if element is not None else ""
        if key in by_question:
            # JSON-LD knows nothing of sections; the visible copy of the same question does.
            by_question[key].category = by_question[key].category or category
            continue
        found.category = category
        by_question[key] = found
    return [
        f
        for f in by_question.values()
        if len(f.question) <= importing.MAX_QUESTION and len(f.answer) <= importing.MAX_ANSWER
    ]


def find_faqs(page: Page, cpu_seconds: float | None = None) -> list[Found]:
    found = extract(page, cpu_seconds)
    if not found:
        raise PageImportError(
            "No questions and answers were found on that page; check that it is your FAQ page, "
            "or import a CSV file instead."
        )
    return found


# --- Comparing and importing ------------------------------------------------------------------


def _row(line: int, found: Found, entry: FAQEntry | None) -> importing.Row:
    # The page knows questions, answers and sections; the phrasings, category and published
    # flag the owner set in ShopBot stay as they are.
    return importing.Row(
        line=line,
        question=found.question,
        answer=found.answer,
        alternatives=entry.alternative_list if entry else [],
        category=found.category or (entry.category if entry else ""),
        published=entry.published if entry else True,
    )


def compare(shop: Shop, found: list[Found]) -> list[Candidate]:
    """Each found pair with what importing it would do to the shop's FAQ."""
    existing = importing.entries_by_question(shop)
    candidates = []
    for n, item in enumerate(found, start=1):
        entry = existing.get(wording_key(item.question))
        if entry is None:
            status = "new"
        else:
            row = _row(n, item, entry)
            same = (row.question, row.answer, row.category) == (
                entry.question,
                entry.answer,
                entry.category,
            )
            status = "unchanged" if same else "update"
        candidates.append(Candidate(item, status, entry))
    return candidates


def import_found(shop: Shop, found: list[Found]) -> importing.ImportResult:
    """Create or update the shop's entries from found pairs through the transactional importer
    (all or nothing, embedded after the commit)."""
    with transaction.atomic():
        existing = importing.entries_by_question(shop)
        rows = [
            _row(n, item, existing.get(wording_key(item.question)))
            for n, item in enumerate(found, start=1)
        ]
        return importing.import_rows(shop, rows)


def to_data(found: list[Found]) -> list[dict]:
    return [asdict(f) for f in found]


def from_data(data: list[dict]) -> list[Found]:
    fields = ("question", "answer", "category", "source")
    return [Found(**{name: str(item.get(name, "")) for name in fields}) for item in data]
