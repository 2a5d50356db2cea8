/*! ShopBot chat widget, README "The chat widget" and docs/protocol.md. Plain JS, no build step
 * (the server sends it minified); nothing parsed as HTML; the UI lives in <shopbot-widget>'s
 * shadow root. */
(function () {
  'use strict';

  const TAG = 'shopbot-widget';

  function warn(...args) {
    try {
      console.warn('[ShopBot]', ...args);
    } catch (e) {
      // No console: nothing to tell.
    }
  }

  // Wraps every entry point, so that nothing ever throws into the host page.
  function safe(fn) {
    return function (...args) {
      try {
        return fn.apply(this, args);
      } catch (e) {
        warn(e);
      }
    };
  }

  // Close and error codes, named as in docs/protocol.md and widget/chat/protocol.py's Close and
  // ErrorCode (tests/test_widget_script.py checks that they match).
  const CLOSE = {
    FORBIDDEN_ORIGIN: 4403,
    UNKNOWN_SHOP: 4404,
    TOO_MANY_CONNECTIONS: 4429,
    TOO_MANY_FRAMES: 4008,
    TRY_AGAIN_LATER: 4013,
  };
  // Closes after which the widget waits long before it reconnects: the server is under load.
  const SLOW_CLOSES = [CLOSE.TOO_MANY_CONNECTIONS, CLOSE.TOO_MANY_FRAMES, CLOSE.TRY_AGAIN_LATER];
  const ERROR = {
    RATE_LIMITED: 'rate_limited',
    CONVERSATION_FULL: 'conversation_full',
    UNAVAILABLE: 'unavailable',
  };
  // Errors after which "Try again" is offered on the failed ask.
  const RETRYABLE_ERRORS = [ERROR.RATE_LIMITED, ERROR.UNAVAILABLE, ERROR.CONVERSATION_FULL];
  const READY_TIMEOUT = 12000; // ms from connecting to `ready`, then drop the socket and retry
  const PING_EVERY = 25000;
  const PONG_TIMEOUT = 10000;
  const DEFAULT_ACCENT = '#4f46e5';
  const HEX_COLOUR = /^#([0-9a-f]{3}){1,2}$/i;

  // The widget's texts come in the `ready` frame, in the chat's language (widget/chat/texts.py),
  // and are saved for the next page. Until the first one, these English ones show.
  const TEXTS = {
    chat: 'Chat',
    panel: '{name} chat',
    open: 'Open {name} chat',
    close: 'Close {name} chat',
    unread: '(new message)',
    closeButton: 'Close chat',
    conversation: 'Conversation',
    placeholder: 'Ask a question…',
    input: 'Your question',
    send: 'Send',
    connecting: 'Connecting…',
    offline: 'Offline — reconnecting…',
    queued: 'Queued — will send when back online',
    unavailable: 'This chat is not available',
    unavailableNotice: 'This chat is not available right now.',
  };

  // ---- What survives a reload: localStorage, one key per shop ----
  class SavedState {
    constructor(key) {
      Object.defineProperty(this, 'key', { value: key }); // not enumerable: not saved
      let data = {};
      try {
        data = JSON.parse(localStorage.getItem(key)) || {};
      } catch (e) {
        // No storage (blocked, private mode) or not JSON: start afresh.
      }
      // Older widgets saved c, b, k, q: read them so returning customers keep their conversation.
      this.conversation = data.conversation || data.c || null;
      this.bot = data.bot || data.b || null;
      this.contact = data.contact || data.k || null;
      const asks = data.unanswered || data.q;
      this.unanswered = Array.isArray(asks) ? asks : []; // [{id, text, entry}]
      this.texts = data.texts || {}; // with their language and direction, from the last `ready`
      this.language = data.language;
      this.dir = data.dir;
    }

    save() {
      try {
        localStorage.setItem(this.key, JSON.stringify(this));
      } catch (e) {
        // Storage full or blocked: the chat works on without it.
      }
    }

    answered(askId) {
      this.unanswered = this.unanswered.filter((question) => question.id !== askId);
      this.save();
    }
  }

  // ---- Building the DOM (never from HTML) ----
  function el(tagName, className = null, text = null, attrs = {}) {
    const node = document.createElement(tagName);
    if (className) node.className = className;
    if (text !== null) node.textContent = text;
    for (const name in attrs) node.setAttribute(name, attrs[name]);
    return node;
  }

  function icon(path, className = null) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    const shape = document.createElementNS(NS, 'path');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    if (className) svg.setAttribute('class', className);
    shape.setAttribute('d', path);
    svg.appendChild(shape);
    return svg;
  }

  const ICON_CHAT =
    'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z' +
    'M7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z';
  const ICON_CLOSE =
    'M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z';
  const ICON_SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z';
  const ICON_THUMB =
    'M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 7.6 6.6C7.2 7 7 ' +
    '7.5 7 8v11a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2z';

  const list = (value) => (Array.isArray(value) ? value : []);

  function uid() {
    try {
      return crypto.randomUUID();
    } catch (e) {
      // Not a secure context (plain http): time and randomness are unique enough for an ask id.
      return 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
    }
  }

  // ---- Safe markdown subset: **bold**, *italic*, "- " / "1. " lists, [text](url), bare URLs ----
  const INLINE = new RegExp(
    [
      /\*\*(.+?)\*\*/.source, // 1: bold
      /\*([^*\s](?:[^*]*[^*\s])?)\*/.source, // 2: italic
      /\[([^\]]+)\]\(([^)\s]+)\)/.source, // 3, 4: a link's text and address
      /(https?:\/\/[^\s<>"]*[^\s<>"'.,;:!?)\]])/.source, // 5: a bare address
    ].join('|'),
    'g',
  );

  // A link, or null unless the address is absolute and http, https, mailto or tel.
  function link(href, label) {
    let url;
    try {
      url = new URL(href);
    } catch (e) {
      return null;
    }
    if (!/^(https?|mailto|tel):$/.test(url.protocol)) return null;
    return el('a', null, label, { href: url.href, target: '_blank', rel: 'noopener noreferrer' });
  }

  function inlineNode(match) {
    const [text, bold, italic, label, href, bare] = match;
    if (bold) return el('strong', null, bold);
    if (italic) return el('em', null, italic);
    return link(href || bare, label || bare) || document.createTextNode(text);
  }

  function inline(parent, text) {
    let start = 0;
    for (const match of text.matchAll(INLINE)) {
      parent.appendChild(document.createTextNode(text.slice(start, match.index)));
      parent.appendChild(inlineNode(match));
      start = match.index + match[0].length;
    }
    parent.appendChild(document.createTextNode(text.slice(start)));
  }

  function markdown(box, text) {
    let items = null;
    let paragraph = null;
    box.textContent = '';
    for (const line of String(text || '').split('\n')) {
      const item = /^\s*(?:([-*•])|(\d+)[.)])\s+(.*)$/.exec(line);
      if (item) {
        const tagName = item[1] ? 'UL' : 'OL';
        if (!items || items.tagName !== tagName) {
          items = box.appendChild(el(tagName));
          if (item[2] && item[2] !== '1') items.setAttribute('start', item[2]);
        }
        inline(items.appendChild(el('li')), item[3]);
        paragraph = null;
      } else if (!line.trim()) {
        items = null;
        paragraph = null;
      } else {
        items = null;
        if (paragraph) paragraph.appendChild(el('br'));
        else paragraph = box.appendChild(el('p'));
        inline(paragraph, line);
      }
    }
  }

  // Black or white text on the accent colour, whichever contrasts more (WCAG luminance).
  function onAccent(colour) {
    let hex = colour.slice(1);
    if (hex.length === 3) hex = hex.replace(/./g, '$&$&');
    const luminance = [0.2126, 0.7152, 0.0722].reduce((sum, weight, k) => {
      const c = parseInt(hex.substr(k * 2, 2), 16) / 255;
      return sum + weight * (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    }, 0);
    return luminance > 0.179 ? '#111' : '#fff';
  }

  // ---- Styles (scoped to the shadow root) ----
  const CSS = `
:host {
  all: initial !important; display: block !important; position: fixed !important;
  z-index: 2147483647 !important; bottom: 0 !important; right: 0 !important;
  width: 0 !important; height: 0 !important;
}
.widget {
  --accent: #4f46e5; --on-accent: #fff; --bg: #fff; --fg: #1f2328; --muted: #626a73;
  --border: #e2e5e9; --bot-bg: #f1f3f6; --error: #b42318;
  --shadow: 0 10px 40px rgba(15, 20, 30, .2), 0 2px 8px rgba(15, 20, 30, .08);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: var(--fg); -webkit-text-size-adjust: 100%;
}
@media (prefers-color-scheme: dark) {
  .widget {
    --bg: #1b1c20; --fg: #e9eaed; --muted: #a3a8b0; --border: #33363d; --bot-bg: #2a2c32;
    --error: #ff9b8f; --shadow: 0 10px 40px rgba(0, 0, 0, .5);
  }
}
*, *::before, *::after { box-sizing: border-box; margin: 0; padding: 0; }
[hidden] { display: none !important; }
button, textarea { font: inherit; color: inherit; background: none; border: 0; }
button { cursor: pointer; }
:focus-visible { outline: 2px solid var(--fg); outline-offset: 2px; }
.header :focus-visible, .launcher:focus-visible { outline-color: var(--on-accent); }
.launcher:focus-visible { box-shadow: 0 0 0 4px var(--fg); }
svg { width: 24px; height: 24px; fill: currentColor; display: block; }

.launcher {
  position: fixed; bottom: 20px; right: 20px; width: 60px; height: 60px; border-radius: 50%;
  background: var(--accent); color: var(--on-accent); box-shadow: var(--shadow);
  display: grid; place-items: center; transition: transform .15s;
}
.launcher:hover { transform: scale(1.06); }
.launcher svg { width: 28px; height: 28px; }
.open .launcher .icon-open, .launcher .icon-close { display: none; }
.open .launcher .icon-close { display: block; }
.unread .launcher::after {
  content: ""; position: absolute; top: 1px; right: 1px; width: 14px; height: 14px;
  border-radius: 50%; background: #e5484d; border: 2px solid #fff;
}
.left .launcher, .left .panel { right: auto; left: 20px; }

.panel {
  position: fixed; bottom: 92px; right: 20px; width: 380px;
  height: min(640px, calc(100vh - 112px)); background: var(--bg);
  border: 1px solid var(--border); border-radius: 18px; box-shadow: var(--shadow);
  display: flex; flex-direction: column; overflow: hidden; animation: sb-in .18s ease-out;
}
@keyframes sb-in { from { opacity: 0; transform: translateY(10px); } }
.header {
  background: var(--accent); color: var(--on-accent); padding: 12px 10px 12px 14px;
  display: flex; align-items: center; gap: 10px; flex: none;
}
.avatar {
  width: 36px; height: 36px; border-radius: 50%; background: rgba(255, 255, 255, .22);
  display: grid; place-items: center; font-weight: 700; flex: none;
}
.title { font-weight: 650; font-size: 16px; line-height: 1.25; }
.status { font-size: 12.5px; opacity: .9; display: flex; align-items: center; gap: 6px; }
.status::before {
  content: ""; width: 8px; height: 8px; border-radius: 50%; background: #b0b5bb;
  box-shadow: 0 0 0 1.5px rgba(255, 255, 255, .6);
}
[data-conn=online] .status::before { background: #22c55e; }
[data-conn=offline] .status::before { background: #f59e0b; }
[data-conn=unavailable] .status::before { background: #ef4444; }
.close {
  margin-inline-start: auto; width: 38px; height: 38px; border-radius: 50%;
  display: grid; place-items: center; flex: none;
}
.close:hover { background: rgba(127, 127, 127, .25); }
.talk { font-size: 12.5px; text-decoration: underline; }
.hours { font-size: 11.5px; opacity: .85; }

.log {
  flex: 1; overflow-y: auto; padding: 16px 14px; display: flex; flex-direction: column;
  gap: 12px; overscroll-behavior: contain;
}
.turn, .turns { display: flex; flex-direction: column; gap: 12px; }
.turn { gap: 6px; }
.msg {
  max-width: 85%; padding: 9px 13px; border-radius: 18px; overflow-wrap: anywhere;
  unicode-bidi: plaintext;
}
/* A bubble's text has its own direction (dir="auto"); its place and tail follow the panel's. */
.user {
  align-self: flex-end; background: var(--accent); color: var(--on-accent);
  border-bottom-right-radius: 5px; white-space: pre-wrap;
}
.bot { align-self: flex-start; background: var(--bot-bg); border-bottom-left-radius: 5px; }
[dir=rtl] .user { border-radius: 18px 18px 18px 5px; }
[dir=rtl] .bot { border-radius: 18px 18px 5px 18px; }
.bot p + *, .bot ul + *, .bot ol + * { margin-top: 6px; }
.bot ul, .bot ol { padding-inline-start: 20px; }
.bot li + li { margin-top: 2px; }
.bot a, .meta a { color: inherit; text-decoration: underline; text-underline-offset: 2px; }
.bot strong { font-weight: 650; }
.meta {
  align-self: flex-start; display: flex; align-items: center; flex-wrap: wrap; gap: 4px 8px;
  max-width: 85%; font-size: 12.5px; color: var(--muted); padding-inline-start: 4px;
}
.sources { flex-basis: 100%; }
.feedback { display: flex; gap: 2px; }
.feedback button {
  width: 30px; height: 30px; border-radius: 8px; display: grid; place-items: center;
  color: var(--muted);
}
.feedback button:hover { background: var(--bot-bg); }
.feedback svg { width: 16px; height: 16px; }
.feedback .down svg { transform: rotate(180deg); }
.feedback button[aria-pressed=true] { background: var(--accent); color: var(--on-accent); }
.contact {
  align-self: flex-start; max-width: 85%; border: 1px solid var(--border); border-radius: 14px;
  padding: 10px 12px; font-size: 14px;
}
.contact b { font-weight: 650; }
.contact div { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.contact a {
  padding: 6px 12px; border-radius: 999px; background: var(--accent); color: var(--on-accent);
  text-decoration: none; font-weight: 550; font-size: 13.5px;
}
.queued, .error {
  align-self: flex-end; font-size: 12.5px; color: var(--muted); max-width: 85%; text-align: end;
}
.error { color: var(--error); }
.error button { text-decoration: underline; margin-inline-start: 6px; color: var(--fg); }
.notice { align-self: center; font-size: 13px; color: var(--muted); text-align: center; }
.typing {
  align-self: flex-start; background: var(--bot-bg); border-radius: 18px; padding: 13px 14px;
  display: flex; gap: 5px;
}
.typing i {
  width: 7px; height: 7px; border-radius: 50%; background: var(--muted);
  animation: sb-bounce 1.2s infinite ease-in-out;
}
.typing i:nth-child(2) { animation-delay: .15s; }
.typing i:nth-child(3) { animation-delay: .3s; }
@keyframes sb-bounce {
  0%, 60%, 100% { opacity: .35; transform: none; }
  30% { opacity: 1; transform: translateY(-3px); }
}
.privacy { font-size: 12.5px; color: var(--muted); }
.privacy a { color: inherit; }
.suggestions { display: flex; flex-wrap: wrap; gap: 8px; justify-content: flex-end; }
.suggestions button {
  border: 1.5px solid var(--accent); border-radius: 999px; padding: 7px 13px; font-size: 14px;
  line-height: 1.3; text-align: start; background: var(--bg);
}
.suggestions button:hover, .did-you-mean button:hover { background: var(--bot-bg); }
.did-you-mean {
  align-self: flex-start; max-width: 85%; display: flex; flex-wrap: wrap; gap: 6px;
  font-size: 13.5px; color: var(--muted);
}
.did-you-mean b { flex-basis: 100%; font-weight: 550; }
.did-you-mean button {
  border: 1.5px solid var(--accent); border-radius: 14px; padding: 6px 12px; text-align: start;
  color: var(--fg); background: var(--bg);
}

.composer {
  display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px 12px;
  border-top: 1px solid var(--border); flex: none;
}
textarea {
  flex: 1; resize: none; border: 1px solid var(--border); border-radius: 20px;
  padding: 9px 14px; font-size: 16px; line-height: 1.35; height: 42px; max-height: 120px;
  background: var(--bg); outline: none;
}
textarea:focus-visible { border-color: var(--fg); outline: 0; }
textarea::placeholder { color: var(--muted); opacity: 1; }
.send {
  width: 42px; height: 42px; border-radius: 50%; background: var(--accent);
  color: var(--on-accent); display: grid; place-items: center; flex: none;
}
.send:disabled, textarea:disabled { opacity: .5; cursor: default; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap;
}
/* Phones: full screen, sized to the visual viewport (fit() sets --vl, --vt, --vw, --vh), so
   that neither the keyboard nor a page laid out wider than the screen hides a part of it. */
@media (max-width: 480px) {
  .panel, .left .panel {
    left: var(--vl, 0); top: var(--vt, 0); right: auto; bottom: auto;
    width: var(--vw, 100%); height: var(--vh, 100%); border-radius: 0; border: 0;
  }
  .launcher {
    left: calc(var(--vl, 0px) + var(--vw, 100vw) - 80px);
    top: calc(var(--vt, 0px) + var(--vh, 100vh) - 80px); right: auto; bottom: auto;
  }
  .left .launcher { left: calc(var(--vl, 0px) + 20px); }
  .open .launcher { display: none; }
}
@media (prefers-reduced-motion: reduce) {
  * { animation: none !important; transition: none !important; }
}
`;

  // ---- The websocket: backoff with jitter, pings, resumed by conversation id ----
  class Connection {
    // socketUrl: the chat's websocket address; lang: the tag's data-lang (the server checks it);
    // events: onFrame(frame), onClose(event), onRetry().
    constructor({ socketUrl, lang }, events) {
      this.socketUrl = socketUrl;
      this.lang = lang;
      this.events = events;
      this.socket = null;
      this.ready = false;
      this.stopped = false; // refused for good (unknown shop, origin not allowed)
      this.attempt = 0;
      this.retryTimer = 0;
      this.pingTimer = 0;
      this.pongTimer = 0;
      this.readyTimer = 0;
      window.addEventListener(
        'online',
        safe(() => {
          if (this.retryTimer) events.onRetry();
        }),
      );
    }

    get retrying() {
      return Boolean(this.retryTimer);
    }

    open(conversation) {
      if (this.socket || this.stopped) return;
      clearTimeout(this.retryTimer);
      this.retryTimer = 0;
      // The page (without query or fragment, which may carry private data) is shown to the owner.
      let query = '?page=' + encodeURIComponent(location.origin + location.pathname);
      if (conversation) query += '&conversation=' + encodeURIComponent(conversation);
      if (this.lang) query += '&lang=' + encodeURIComponent(this.lang);
      let socket;
      try {
        socket = new WebSocket(this.socketUrl + query);
      } catch (e) {
        warn(e);
        this.socket = null;
        this.closed({});
        return;
      }
      this.socket = socket;
      socket.onmessage = safe((e) => {
        if (socket === this.socket) this.events.onFrame(JSON.parse(e.data));
      });
      socket.onclose = safe((e) => {
        if (socket === this.socket) this.closed(e);
      });
      this.readyTimer = setTimeout(safe(() => this.drop()), READY_TIMEOUT); // rather than spin
    }

    opened() {
      this.stopTimers();
      this.ready = true;
      this.attempt = 0;
      // Proxies cut idle sockets, and a missing pong means a dead one.
      this.pingTimer = setInterval(safe(() => this.ping()), PING_EVERY);
    }

    ping() {
      if (!this.send({ type: 'ping' })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(safe(() => this.drop()), PONG_TIMEOUT);
    }

    pong() {
      clearTimeout(this.pongTimer);
    }

    send(frame) {
      if (!this.ready || !this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
      this.socket.send(JSON.stringify(frame));
      return true;
    }

    drop() {
      const socket = this.socket;
      this.closed({});
      try {
        socket.close();
      } catch (e) {
        // Already closed, or never opened.
      }
    }

    stopTimers() {
      clearInterval(this.pingTimer);
      clearTimeout(this.pongTimer);
      clearTimeout(this.readyTimer);
    }

    closed(event) {
      this.socket = null;
      this.ready = false;
      this.stopTimers();
      const code = event.code;
      if (code === CLOSE.UNKNOWN_SHOP || code === CLOSE.FORBIDDEN_ORIGIN) {
        this.stopped = true;
      } else {
        this.retryLater(SLOW_CLOSES.includes(code));
      }
      this.events.onClose(event);
    }

    // Exponential backoff, long after a refusal for load, with jitter: 50–100 % of the delay.
    retryLater(slow) {
      const delay = Math.min(slow ? 120000 : 30000, (slow ? 15000 : 500) * 2 ** this.attempt);
      this.attempt += 1;
      const jittered = delay / 2 + (Math.random() * delay) / 2;
      this.retryTimer = setTimeout(safe(() => this.events.onRetry()), jittered);
    }

    pause() {
      const socket = this.socket;
      clearTimeout(this.retryTimer);
      this.stopTimers();
      this.socket = null;
      this.ready = false;
      this.retryTimer = 0;
      if (socket) socket.close();
    }
  }

  // ---- The questions and answers shown, by ask id ----
  class Transcript {
    constructor(box) {
      this.box = box;
      this.clear();
    }

    clear() {
      this.box.textContent = '';
      this.turns = {}; // ask id -> {id, box, question, note, answer, streamed, entry}
      this.answered = {};
    }

    get empty() {
      return !this.box.children.length;
    }

    turn(askId, text) {
      let turn = this.turns[askId];
      if (!turn) {
        turn = { id: askId, box: el('div', 'turn') };
        this.turns[askId] = turn;
        this.box.appendChild(turn.box);
      }
      if (typeof text === 'string' && !turn.question) {
        const attrs = { 'data-testid': 'sb-user', 'data-ask-id': askId, dir: 'auto' };
        turn.question = el('div', 'msg user', text, attrs);
        turn.box.insertBefore(turn.question, turn.box.firstChild);
      }
      return turn;
    }

    remove(turn) {
      turn.box.remove();
      delete this.turns[turn.id];
    }

    setNote(turn, node) {
      if (turn.note) turn.note.remove();
      turn.note = node;
      if (node) turn.box.appendChild(node);
    }

    dropAnswer(turn) {
      if (!turn.answer) return;
      turn.answer.remove();
      turn.answer = null;
    }

    answerBubble(turn) {
      if (!turn.answer) {
        this.setNote(turn, null);
        turn.answer = el('div', 'msg bot', null, {
          'data-testid': 'sb-bot',
          'data-ask-id': turn.id,
          'data-state': 'streaming',
          'aria-busy': 'true',
          dir: 'auto',
        });
        turn.box.appendChild(turn.answer);
      }
      return turn.answer;
    }

    notice(text, testid) {
      this.box.appendChild(el('div', 'notice', text, { 'data-testid': testid }));
    }
  }

  // ---- The <shopbot-widget> element ----
  class ShopBotWidget extends HTMLElement {
    // config: what the script tag says (start() below); saved: this shop's SavedState.
    constructor(config, saved) {
      super();
      if (!config) return; // a <shopbot-widget> written into the page by hand stays empty
      this.config = config;
      this.saved = saved;
      this.isOpen = false;
      this.name = TEXTS.chat;
      this.pendingFeedback = {}; // re-sent after a reconnect until saved
      this.pendingHandoff = null; // the request left for a person (widget-handoff.js), until saved
      this.atBottom = true;
      this.connection = new Connection(config, {
        onFrame: (frame) => this.receive(frame),
        onClose: (event) => this.closed(event),
        onRetry: () => this.connect(),
      });
      this.build();
      this.showTexts();
      this.showBot();
    }

    build() {
      const root = this.attachShadow({ mode: 'open' });
      const ui = {};
      this.root = root;
      this.ui = ui;
      ui.widget = el('div', 'widget', null, { 'data-testid': 'sb-root', 'data-conn': 'idle' });
      ui.launcher = el('button', 'launcher', null, {
        type: 'button',
        'aria-expanded': 'false',
        'aria-controls': 'sb-panel',
        'data-testid': 'sb-launcher',
      });
      ui.launcher.append(icon(ICON_CHAT, 'icon-open'), icon(ICON_CLOSE, 'icon-close'));
      ui.panel = el('div', 'panel', null, {
        id: 'sb-panel',
        role: 'dialog',
        'aria-modal': 'false',
        'data-testid': 'sb-panel',
      });
      ui.panel.hidden = true;

      const header = el('div', 'header');
      const heading = el('div');
      ui.avatar = el('div', 'avatar', null, { 'aria-hidden': 'true' });
      ui.title = el('div', 'title', null, { 'data-testid': 'sb-title' });
      ui.status = el('div', 'status', null, { 'data-testid': 'sb-status' });
      ui.hours = el('div', 'hours', null, { 'data-testid': 'sb-hours', dir: 'auto' });
      ui.talk = el('button', 'talk', null, { type: 'button' });
      ui.close = el('button', 'close', null, { type: 'button', 'data-testid': 'sb-close' });
      ui.close.appendChild(icon(ICON_CLOSE));
      heading.append(ui.title, ui.status, ui.hours, ui.talk);
      header.append(ui.avatar, heading, ui.close);

      ui.log = el('div', 'log', null, { role: 'region', tabindex: '0', 'data-testid': 'sb-log' });
      ui.greeting = el('div', 'msg bot', null, { 'data-testid': 'sb-greeting', dir: 'auto' });
      // The shop's privacy notice, if it has one: shown before the first message.
      ui.privacy = el('div', 'privacy', null, { 'data-testid': 'sb-privacy', dir: 'auto' });
      ui.suggestions = el('div', 'suggestions', null, { 'data-testid': 'sb-suggestions' });
      ui.turns = el('div', 'turns');
      ui.log.append(ui.greeting, ui.privacy, ui.turns, ui.suggestions);

      ui.composer = el('form', 'composer');
      ui.input = el('textarea', null, null, { rows: '1', 'data-testid': 'sb-input' });
      ui.send = el('button', 'send', null, { type: 'submit', 'data-testid': 'sb-send' });
      ui.send.appendChild(icon(ICON_SEND));
      ui.composer.append(ui.input, ui.send);
      // Screen readers hear only final answers and errors, never each streamed chunk.
      const liveAttrs = { 'aria-live': 'polite', 'data-testid': 'sb-live' };
      ui.live = el('div', 'visually-hidden', null, liveAttrs);
      ui.panel.append(header, ui.log, ui.composer);
      ui.widget.append(ui.panel, ui.launcher, ui.live);
      root.appendChild(ui.widget);
      addStyles(root, CSS);
      this.transcript = new Transcript(ui.turns);
      this.listen();
    }

    listen() {
      const ui = this.ui;
      ui.log.addEventListener('scroll', () => {
        this.atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
      });
      ui.launcher.onclick = safe(() => (this.isOpen ? this.close() : this.open()));
      ui.close.onclick = safe(() => this.close());
      ui.widget.addEventListener(
        'click',
        safe((e) => {
          const talk = e.target.closest('.talk');
          if (!talk) return;
          // Under an answer, the form asks that turn's question; in the header, the latest.
          const asked = talk.closest('.turn')?.querySelector('.user');
          this.withHandoff((handoff) => handoff.openForm(asked ? asked.textContent : null));
        }),
      );
      ui.composer.onsubmit = safe((e) => {
        e.preventDefault();
        this.submit();
      });
      ui.input.oninput = safe(() => this.grow());
      ui.input.addEventListener('keydown', safe((e) => this.inputKey(e)));
      ui.widget.addEventListener('keydown', safe((e) => this.panelKey(e)));
      // Keys typed in the widget must not trigger the host page's keyboard shortcuts.
      for (const type of ['keydown', 'keyup', 'keypress']) {
        ui.widget.addEventListener(type, (e) => e.stopPropagation());
      }
      // Phones: keep the launcher and the full-screen panel on the screen (above the keyboard).
      const viewport = window.visualViewport;
      if (viewport) {
        for (const type of ['resize', 'scroll']) {
          viewport.addEventListener(type, safe(() => this.fit()));
        }
      }
    }

    // Enter sends, Shift+Enter makes a new line.
    inputKey(e) {
      if (e.key !== 'Enter' || e.shiftKey || e.isComposing) return;
      e.preventDefault();
      this.submit();
    }

    // Escape closes the panel; Tab stays inside it while it is open.
    panelKey(e) {
      if (!this.isOpen) return;
      if (e.key === 'Escape') {
        e.preventDefault();
        this.close();
        return;
      }
      if (e.key !== 'Tab' || !this.ui.panel.contains(this.root.activeElement)) return;
      const focusable = [
        ...this.ui.panel.querySelectorAll('button,textarea,a[href],[tabindex="0"]'),
      ].filter((node) => !node.disabled && node.getClientRects().length);
      const active = this.root.activeElement;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey ? active !== first : active !== last) return;
      e.preventDefault();
      (e.shiftKey ? last : first).focus();
    }

    connectedCallback() {
      if (!this.config) return;
      this.fit();
      if (this.config.open && !this.mounted) this.open();
      else if (this.isOpen || this.saved.conversation || this.saved.unanswered.length) {
        this.connect();
      }
      this.mounted = true;
    }

    disconnectedCallback() {
      if (this.config) this.connection.pause();
    }

    // The text `key` in the chat's language, its {slots} filled in ({name}: the bot's).
    say(key, slots = {}) {
      const values = { name: this.name, ...slots };
      const text = String(this.saved.texts[key] || TEXTS[key] || '');
      return text.replace(/\{(\w+)\}/g, (slot, name) => (name in values ? values[name] : slot));
    }

    showTexts() {
      const ui = this.ui;
      ui.close.setAttribute('aria-label', this.say('closeButton'));
      ui.log.setAttribute('aria-label', this.say('conversation'));
      ui.input.setAttribute('aria-label', this.say('input'));
      ui.send.setAttribute('aria-label', this.say('send'));
      ui.input.placeholder = this.say('placeholder');
      ui.talk.textContent = this.say('talkToPerson');
      ui.talk.hidden = !ui.talk.textContent;
      if (this.saved.language) ui.panel.lang = this.saved.language;
      ui.panel.dir = this.saved.dir === 'rtl' ? 'rtl' : 'ltr'; // Arabic, Hebrew: right to left
    }

    // On start (as saved) and on `ready`, never on open.
    showBot() {
      const bot = this.saved.bot || {};
      const ui = this.ui;
      const config = this.config;
      this.name = String(bot.name || this.say('chat'));
      ui.title.textContent = this.name;
      ui.avatar.textContent = this.name.charAt(0).toUpperCase();
      ui.panel.setAttribute('aria-label', this.say('panel'));
      let accent = DEFAULT_ACCENT;
      if (HEX_COLOUR.test(bot.accent)) accent = bot.accent;
      else if (HEX_COLOUR.test(config.color)) accent = config.color;
      ui.widget.style.setProperty('--accent', accent);
      ui.widget.style.setProperty('--on-accent', onAccent(accent));
      const tagPosition = /^(left|right)$/.test(config.position) ? config.position : null;
      ui.widget.classList.toggle('left', (tagPosition || bot.position) === 'left');
      ui.greeting.hidden = !bot.greeting;
      markdown(ui.greeting, bot.greeting);
      const privacy = bot.privacy || {};
      const notice = privacy.text ? String(privacy.text) : '';
      ui.privacy.hidden = !notice;
      ui.privacy.textContent = '';
      if (notice) ui.privacy.append((privacy.url && link(String(privacy.url), notice)) || notice);
      ui.suggestions.textContent = '';
      for (const suggestion of list(bot.suggestions).slice(0, 6)) {
        const attrs = { type: 'button', 'data-testid': 'sb-suggestion' };
        const button = el('button', null, String(suggestion), attrs);
        button.onclick = safe(() => {
          this.ask(suggestion);
          ui.input.focus();
        });
        ui.suggestions.appendChild(button);
      }
      this.showLauncher();
      this.refresh();
    }

    showLauncher() {
      const unread = this.ui.widget.classList.contains('unread');
      let label = this.say(this.isOpen ? 'close' : 'open');
      if (unread) label += ' ' + this.say('unread');
      this.ui.launcher.setAttribute('aria-label', label);
    }

    setStatus(state, text) {
      this.ui.widget.setAttribute('data-conn', state);
      this.ui.status.textContent = text;
      this.ui.input.disabled = this.connection.stopped;
      this.ui.send.disabled = this.connection.stopped;
    }

    // The shop's open or closed status ("Open now · closes at 6:00 PM"), asked for again when
    // it changes (at most a day ahead: a timer's delay is 32 bits; a second late, to be past it).
    showHours(hours) {
      clearTimeout(this.hoursTimer);
      this.ui.hours.textContent = (hours && hours.text) || '';
      const at = hours && Date.parse(hours.next_change);
      if (!at) return;
      const wait = Math.min(Math.max(at - Date.now(), 0) + 1000, 864e5);
      this.hoursTimer = setTimeout(safe(() => this.connection.send({ type: 'get_hours' })), wait);
    }

    refresh() {
      this.ui.suggestions.hidden = this.connection.stopped || !this.transcript.empty;
    }

    announce(text) {
      const live = this.ui.live;
      live.textContent = '';
      setTimeout(() => {
        live.textContent = text;
      }, 60);
    }

    // Scroll the log (never the host page) just enough to show from `first`'s top to `last`'s
    // bottom, or from `first`'s top down if that is more than the log can show.
    reveal(first, last = first) {
      const log = this.ui.log;
      const view = log.getBoundingClientRect();
      const top = first.getBoundingClientRect().top - view.top - 12; // 12 px: the log's padding
      const bottom = last.getBoundingClientRect().bottom - view.bottom + 12;
      if (bottom > 0) log.scrollTop += Math.min(bottom, top);
      else if (top < 0) log.scrollTop += top;
    }

    // Keep the newest message in view unless the customer scrolled up to read.
    stick(force = false) {
      if (force) this.atBottom = true;
      if (this.atBottom) this.ui.log.scrollTop = this.ui.log.scrollHeight;
    }

    // The visual viewport (what the screen shows of the page), for the phone layout.
    fit() {
      const viewport = window.visualViewport;
      if (!viewport) return;
      const style = this.ui.widget.style;
      style.setProperty('--vl', viewport.offsetLeft + 'px');
      style.setProperty('--vt', viewport.offsetTop + 'px');
      style.setProperty('--vw', viewport.width + 'px');
      style.setProperty('--vh', viewport.height + 'px');
    }

    open() {
      if (this.isOpen) {
        this.ui.input.focus();
        return;
      }
      this.setOpen(true);
      this.ui.widget.classList.remove('unread');
      this.showLauncher();
      this.fit();
      if (!this.connection.socket && !this.connection.retrying) this.connect();
      this.stick(true);
      this.ui.input.focus();
    }

    close() {
      const launcher = this.ui.launcher;
      const active = this.root.activeElement;
      if (!this.isOpen) return;
      this.setOpen(false);
      this.showLauncher();
      if (active && active !== launcher) launcher.focus(); // focus was inside the panel
    }

    setOpen(open) {
      this.isOpen = open;
      this.ui.panel.hidden = !open;
      this.ui.widget.classList.toggle('open', open);
      this.ui.launcher.setAttribute('aria-expanded', String(open));
    }

    connect() {
      if (this.connection.socket || this.connection.stopped) return;
      // Retrying, the status stays "offline".
      if (!this.connection.attempt) this.setStatus('connecting', this.say('connecting'));
      this.connection.open(this.saved.conversation);
    }

    closed(event) {
      if (this.connection.stopped) {
        if (event.code === CLOSE.FORBIDDEN_ORIGIN) {
          const shop = this.config.shop;
          warn(`this website's origin (${location.origin}) is not allowed for shop key "${shop}"`);
        } else {
          warn(`unknown shop key "${this.config.shop}"`);
        }
        this.setStatus('unavailable', this.say('unavailable'));
        this.transcript.notice(this.say('unavailableNotice'), 'sb-unavailable');
        this.refresh();
        return;
      }
      this.setStatus('offline', this.say('offline'));
      for (const question of this.saved.unanswered) {
        const turn = this.transcript.turns[question.id];
        if (turn) this.waiting(turn);
      }
    }

    submit() {
      const input = this.ui.input;
      const text = input.value;
      if (!text.trim()) return;
      input.value = '';
      this.grow();
      this.ask(text);
    }

    grow() {
      const input = this.ui.input;
      input.style.height = '';
      input.style.height = Math.min(input.scrollHeight + 2, 120) + 'px';
    }

    // `entry`: the id of a "did you mean" entry the customer chose.
    ask(text, entry) {
      const question = { id: uid(), text: String(text ?? '').trim() };
      if (!question.text || this.connection.stopped) return;
      if (typeof entry === 'number') question.entry = entry;
      this.saved.unanswered.push(question);
      this.saved.save();
      const turn = this.transcript.turn(question.id, question.text);
      turn.entry = question.entry; // for "Try again"
      this.waiting(turn);
      this.refresh();
      this.stick(true);
      // Not connected: sent on `ready`.
      if (!this.connection.send(askFrame(question)) && !this.connection.socket) this.connect();
    }

    // Typing dots while connected, else "queued"; a half-streamed answer restarts after a resend.
    waiting(turn) {
      this.transcript.dropAnswer(turn);
      let note;
      if (this.connection.ready) {
        const attrs = { role: 'img', 'aria-label': this.say('typing'), 'data-testid': 'sb-typing' };
        note = el('div', 'typing', null, attrs);
        note.append(el('i'), el('i'), el('i'));
      } else {
        note = el('div', 'queued', this.say('queued'), { 'data-testid': 'sb-queued' });
      }
      this.transcript.setNote(turn, note);
      this.stick();
    }

    // A history item of `ready`: a question, an answer, or a person of the shop's message.
    showHistoryItem(item) {
      const transcript = this.transcript;
      const id = item.id ?? uid();
      if (item.role === 'shop') {
        const slot = transcript.box.appendChild(el('div')); // its place while the module loads
        this.withHandoff((handoff) => handoff.showShopMessage(item.text, slot));
      } else if (item.role === 'user') {
        transcript.turn(id, item.text);
      } else {
        transcript.answered[id] = 1;
        this.showAnswer(transcript.turn(id), item);
      }
    }

    showAnswer(turn, frame) {
      const bubble = this.transcript.answerBubble(turn);
      const meta = el('div', 'meta');
      markdown(bubble, frame.text);
      bubble.setAttribute('data-state', 'final');
      bubble.setAttribute('data-mode', frame.mode || '');
      bubble.removeAttribute('aria-busy');
      const sources = list(frame.sources).filter((source) => source && source.question);
      if (sources.length) meta.appendChild(this.sourceLinks(sources));
      if (frame.message !== undefined && frame.message !== null) {
        bubble.setAttribute('data-message-id', frame.message);
        // The fallback says already that the bot could not help: no thumbs to ask it again.
        if (frame.mode !== 'fallback') meta.appendChild(this.feedbackButtons(frame, turn));
      }
      this.didYouMean(turn, frame.suggestions);
      if (frame.mode === 'fallback') this.contact(turn, frame.contact || this.saved.contact);
      if (meta.firstChild) turn.box.appendChild(meta);
      this.stick();
    }

    // "From our FAQ: <question> · <question>", each a link to the entry when it has an address.
    sourceLinks(sources) {
      const line = el('div', 'sources', this.say('sources'), { 'data-testid': 'sb-sources' });
      sources.forEach((source, i) => {
        if (i) line.appendChild(document.createTextNode(' · '));
        const url = /^https?:\/\//i.test(source.url || '') && link(source.url, source.question);
        line.appendChild(url || document.createTextNode(source.question));
      });
      return line;
    }

    feedbackButtons(frame, turn) {
      const attrs = { role: 'group', 'aria-label': this.say('helpful') };
      const box = el('div', 'feedback', null, attrs);
      const buttons = {};
      for (const value of ['up', 'down']) {
        const button = el('button', value, null, {
          type: 'button',
          'aria-label': this.say(value),
          'aria-pressed': String(frame.feedback === value),
          'data-testid': 'sb-fb-' + value,
        });
        buttons[value] = button;
        button.appendChild(icon(ICON_THUMB));
        button.onclick = safe(() => this.rate(frame, turn, buttons, value));
        box.appendChild(button);
      }
      return box;
    }

    rate(frame, turn, buttons, value) {
      for (const other in buttons) {
        buttons[other].setAttribute('aria-pressed', String(other === value));
      }
      const feedback = { type: 'feedback', message: frame.message, value };
      this.pendingFeedback[frame.message] = feedback;
      this.connection.send(feedback);
      // Not helped: offer a person and the contact route, once.
      if (value === 'down' && !turn.box.querySelector('.contact')) {
        this.contact(turn, this.saved.contact);
      }
    }

    didYouMean(turn, suggestions) {
      const options = list(suggestions).filter((s) => s && s.question && typeof s.id === 'number');
      if (!options.length) return;
      const label = this.say('didYouMean');
      const box = el('div', 'did-you-mean', null, {
        role: 'group',
        'aria-label': label.replace(/\s*:$/, ''),
        'data-testid': 'sb-did-you-mean',
      });
      box.appendChild(el('b', null, label));
      for (const option of options.slice(0, 3)) {
        const button = el('button', null, String(option.question), {
          type: 'button',
          'data-testid': 'sb-did-you-mean-option',
          'data-entry': option.id,
        });
        button.onclick = safe(() => {
          this.ask(option.question, option.id);
          this.ui.input.focus();
        });
        box.appendChild(button);
      }
      turn.box.appendChild(box);
    }

    // "Talk to a person", and the shop's email, phone and contact page as links.
    contact(turn, route) {
      if (!route) return;
      const box = el('div', 'contact', null, { 'data-testid': 'sb-contact' });
      const links = el('div');
      box.append(el('button', 'talk', this.say('talkToPerson')), links);
      const add = (href, label) => {
        const a = link(href, label);
        if (a) links.appendChild(a);
      };
      const { email, phone, url } = route;
      if (email && /^[^\s@:/]+@[^\s@/]+$/.test(email)) {
        add('mailto:' + email, this.say('email', { email }));
      }
      if (phone) add('tel:' + String(phone).replace(/[^\d+]/g, ''), this.say('call', { phone }));
      if (url && /^https?:/i.test(url)) add(url, this.say('contactPage'));
      turn.box.appendChild(box);
    }

    // One handler per frame type (FRAME_HANDLERS); the hand-off's frames find theirs there once
    // widget-handoff.js has registered them.
    receive(frame) {
      const type = frame && frame.type;
      if (hasHandler(type)) {
        FRAME_HANDLERS[type].call(this, frame);
        return;
      }
      this.withHandoff(() => {
        if (hasHandler(type)) FRAME_HANDLERS[type].call(this, frame);
      });
    }

    // The hand-off to a person is widget-handoff.js, imported the first time it is needed (the
    // customer asks for a person, or a person of the shop writes): use(itsApi) once it is there.
    withHandoff(use) {
      if (!this.handoffModule) {
        const tools = { el, safe, uid, addStyles, handlers: FRAME_HANDLERS };
        const loading = import(this.config.handoffUrl);
        this.handoffModule = loading.then((module) => module.default(this, tools));
      }
      this.handoffModule.then(use).catch(warn);
    }
  }

  // A constructable stylesheet (which also works under a strict CSP without 'unsafe-inline'
  // styles), else a <style> element.
  function addStyles(root, css) {
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
    } catch (e) {
      root.append(el('style', null, css));
    }
  }

  function askFrame(question) {
    const frame = { type: 'ask', id: question.id, text: question.text };
    if (typeof question.entry === 'number') frame.entry = question.entry;
    return frame;
  }

  // ---- One handler per frame type; `this` is the widget ----
  const FRAME_HANDLERS = {
    ready(frame) {
      const transcript = this.transcript;
      const connection = this.connection;
      const saved = this.saved;
      connection.opened();
      saved.conversation = frame.conversation;
      if (frame.bot) saved.bot = frame.bot;
      if (frame.texts) {
        Object.assign(saved, { texts: frame.texts, language: frame.language, dir: frame.dir });
        this.showTexts();
      }
      this.showBot();
      this.setStatus('online', this.say('online'));
      this.showHours(frame.hours);
      const history = list(frame.history);
      if (frame.resumed || history.length) {
        // The server's transcript replaces what is shown.
        transcript.clear();
        for (const item of history) this.showHistoryItem(item);
      }
      // Re-send unanswered asks with the SAME id: the server answers each id once.
      saved.unanswered = saved.unanswered.filter((question) => !transcript.answered[question.id]);
      saved.save();
      for (const question of saved.unanswered) {
        this.waiting(transcript.turn(question.id, question.text));
        connection.send(askFrame(question));
      }
      for (const message in this.pendingFeedback) connection.send(this.pendingFeedback[message]);
      // Its id makes the server save a re-sent request once.
      if (this.pendingHandoff) connection.send(this.pendingHandoff);
      this.refresh();
      this.stick(true);
    },
    pong() {
      this.connection.pong();
    },
    delta(frame) {
      const turn = this.transcript.turns[frame.id];
      if (this.transcript.answered[frame.id] || !turn) return;
      turn.streamed = (turn.answer ? turn.streamed : '') + (frame.text || '');
      markdown(this.transcript.answerBubble(turn), turn.streamed);
      this.stick();
    },
    answer(frame) {
      if (this.transcript.answered[frame.id]) return; // de-duplicate
      this.transcript.answered[frame.id] = 1;
      this.saved.answered(frame.id);
      if (frame.contact) {
        this.saved.contact = frame.contact;
        this.saved.save();
      }
      this.showAnswer(this.transcript.turn(frame.id), frame);
      this.refresh();
      this.announce(this.name + ': ' + (frame.text || ''));
      if (!this.isOpen) {
        this.ui.widget.classList.add('unread');
        this.showLauncher();
      }
    },
    hours(frame) {
      this.showHours(frame.hours);
    },
    feedback_saved(frame) {
      delete this.pendingFeedback[frame.message];
    },
    error(frame) {
      const transcript = this.transcript;
      const text = String(frame.message || '');
      const known = typeof frame.id === 'string';
      if (known && this.pendingHandoff && frame.id === this.pendingHandoff.id) {
        // About the request left for a person: shown in its form, which stays as typed.
        this.withHandoff((handoff) => handoff.showError(frame));
        return;
      }
      const turn = known && !transcript.answered[frame.id] && transcript.turns[frame.id];
      if (turn) {
        this.saved.answered(frame.id); // a retry asks under a fresh id
        transcript.dropAnswer(turn);
        const note = el('div', 'error', text, { role: 'note', 'data-testid': 'sb-error' });
        if (turn.question && RETRYABLE_ERRORS.includes(frame.code)) {
          const again = el('button', null, this.say('tryAgain'), { type: 'button' });
          again.onclick = safe(() => {
            transcript.remove(turn);
            this.ask(turn.question.textContent, turn.entry);
          });
          note.appendChild(again);
        }
        transcript.setNote(turn, note);
        if (frame.code === ERROR.CONVERSATION_FULL) {
          // The next connection starts a new conversation ("Try again" asks there).
          this.saved.conversation = null;
          this.saved.save();
          this.connection.drop();
        }
      } else {
        transcript.notice(text, 'sb-error');
      }
      this.announce(text);
      this.stick();
    },
  };

  function hasHandler(type) {
    return Object.prototype.hasOwnProperty.call(FRAME_HANDLERS, type);
  }

  // ---- Start: read the script tag, define the element, mount it ----

  // The widget's <script> tag: the one running, or (when another script added it) the last
  // tag with data-shop that loads widget.js.
  function findScript() {
    const current = document.currentScript;
    if (current && current.getAttribute('data-shop')) return current;
    const tags = [...document.querySelectorAll('script[data-shop]')];
    return tags.filter((tag) => /\/widget\.js([?#]|$)/.test(tag.src)).pop() || current;
  }

  function start() {
    const loaded = window.ShopBot || !window.customElements || customElements.get(TAG);
    if (loaded) return; // the tag pasted twice: the second does nothing
    const script = findScript();
    const shop = script && script.getAttribute('data-shop');
    if (!shop) {
      warn('missing data-shop on the widget <script> tag');
      return;
    }
    const option = (name) => script.getAttribute('data-' + name);
    const src = new URL(script.src, location.href);
    const scheme = src.protocol === 'https:' ? 'wss:' : 'ws:';
    const config = {
      shop,
      socketUrl: `${scheme}//${src.host}/ws/chat/${encodeURIComponent(shop)}/`,
      handoffUrl: new URL('widget-handoff.js', src).href,
      position: option('position'),
      color: option('color'),
      open: option('open') === 'true',
      lang: option('lang'),
    };
    customElements.define(TAG, ShopBotWidget);
    const widget = new ShopBotWidget(config, new SavedState('shopbot:' + shop));
    window.ShopBot = {
      open: safe(() => widget.open()),
      close: safe(() => widget.close()),
      ask: safe((text) => {
        widget.open();
        widget.ask(text);
      }),
    };
    const mount = () => (document.body || document.documentElement).appendChild(widget);
    if (document.body) mount();
    else document.addEventListener('DOMContentLoaded', safe(mount));
  }

  safe(start)();
})();
