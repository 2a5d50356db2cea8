/*! ShopBot chat widget, README "The chat widget" and docs/protocol.md. Plain JS, no build step,
 * nothing parsed as HTML; the UI lives in <shopbot-widget>'s shadow root. */
(function () {
  'use strict';
  const W = window, D = document, TAG = 'shopbot-widget';
  function warn(...args) { try { console.warn('[ShopBot]', ...args); } catch (e) {} }
  // Wrap every entry point so nothing ever throws into the host page.
  function safe(fn) { return function (...args) { try { return fn.apply(this, args); } catch (e) { warn(e); } }; }

  // Close codes, named as in docs/protocol.md and widget/chat/protocol.py's Close.
  const CLOSE = { FORBIDDEN_ORIGIN: 4403, UNKNOWN_SHOP: 4404, TOO_MANY_CONNECTIONS: 4429, TOO_MANY_FRAMES: 4008 };
  // Error codes after which "Try again" is offered on the failed ask.
  const RETRYABLE_ERRORS = ['rate_limited', 'unavailable', 'conversation_full'];
  const READY_TIMEOUT = 12000, PING_EVERY = 25000, PONG_TIMEOUT = 10000;
  const DEFAULT_ACCENT = '#4f46e5', HEX_COLOUR = /^#([0-9a-f]{3}){1,2}$/i;

  // The widget's texts come in the `ready` frame, in the shop's language (widget/chat/texts.py),
  // and are saved for the next page. Until the first one, these English ones show.
  const TEXTS = {
    chat: 'Chat', panel: '{name} chat', open: 'Open {name} chat', close: 'Close {name} chat',
    unread: '(new message)', closeButton: 'Close chat', conversation: 'Conversation',
    placeholder: 'Ask a question…', input: 'Your question', send: 'Send', connecting: 'Connecting…',
    offline: 'Offline — reconnecting…', queued: 'Queued — will send when back online',
    unavailable: 'This chat is not available', unavailableNotice: 'This chat is not available right now.'
  };

  // ---- What survives a reload: localStorage, one key per shop ----
  class SavedState {
    constructor(key) {
      Object.defineProperty(this, 'key', { value: key }); // not enumerable: not saved
      let data = {};
      try { data = JSON.parse(localStorage.getItem(key)) || {}; } catch (e) {}
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
    save() { try { localStorage.setItem(this.key, JSON.stringify(this)); } catch (e) {} }
    answered(askId) { this.unanswered = this.unanswered.filter((q) => q.id != askId); this.save(); }
  }

  function el(tagName, className, text, attrs) {
    const e = D.createElement(tagName);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function icon(path, className) {
    const NS = 'http://www.w3.org/2000/svg', svg = D.createElementNS(NS, 'svg'), p = D.createElementNS(NS, 'path');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    if (className) svg.setAttribute('class', className);
    p.setAttribute('d', path);
    svg.appendChild(p);
    return svg;
  }
  const ICON_CHAT = 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z',
    ICON_CLOSE = 'M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z',
    ICON_SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z',
    ICON_THUMB = 'M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 7.6 6.6C7.2 7 7 7.5 7 8v11a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2z';
  const list = (value) => (Array.isArray(value) ? value : []);
  function uid() {
    try { return crypto.randomUUID(); } catch (e) { return 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 12); }
  }

  // ---- Safe markdown subset: **bold**, *italic*, "- " / "1. " lists, [text](url), bare http(s) URLs ----
  const INLINE = /\*\*(.+?)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>"]*[^\s<>"'.,;:!?)\]])/g;
  function link(href, label) {
    let u;
    try { u = new URL(href); } catch (e) { return null; }
    if (!/^(https?|mailto|tel):$/.test(u.protocol)) return null;
    return el('a', 0, label, { href: u.href, target: '_blank', rel: 'noopener noreferrer' });
  }
  function inline(parent, s) {
    let m, i = 0;
    INLINE.lastIndex = 0;
    while ((m = INLINE.exec(s))) {
      parent.appendChild(D.createTextNode(s.slice(i, m.index)));
      parent.appendChild(m[1] ? el('strong', 0, m[1]) : m[2] ? el('em', 0, m[2]) :
        link(m[4] || m[5], m[3] || m[5]) || D.createTextNode(m[0]));
      i = INLINE.lastIndex;
    }
    parent.appendChild(D.createTextNode(s.slice(i)));
  }
  function markdown(box, text) {
    let list = null, p = null;
    box.textContent = '';
    String(text || '').split('\n').forEach((line) => {
      const m = /^\s*(?:([-*•])|(\d+)[.)])\s+(.*)$/.exec(line);
      if (m) {
        const tagName = m[1] ? 'UL' : 'OL';
        if (!list || list.tagName != tagName) {
          list = box.appendChild(el(tagName));
          if (m[2] && m[2] != '1') list.setAttribute('start', m[2]);
        }
        inline(list.appendChild(el('li')), m[3]);
        p = null;
      } else if (!line.trim()) {
        list = p = null;
      } else {
        list = null;
        if (p) p.appendChild(el('br')); else p = box.appendChild(el('p'));
        inline(p, line);
      }
    });
  }

  // Black or white text on the accent colour, whichever contrasts more (WCAG luminance).
  function onAccent(hex) {
    hex = hex.slice(1);
    if (hex.length == 3) hex = hex.replace(/./g, '$&$&');
    const luminance = [0.2126, 0.7152, 0.0722].reduce((sum, weight, k) => {
      const c = parseInt(hex.substr(k * 2, 2), 16) / 255;
      return sum + weight * (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4));
    }, 0);
    return luminance > 0.179 ? '#111' : '#fff';
  }

  // ---- Styles (scoped to the shadow root) ----
  const CSS =
    ':host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483647!important;' +
      'bottom:0!important;right:0!important;width:0!important;height:0!important}' +
    '.widget{--accent:#4f46e5;--on-accent:#fff;--bg:#fff;--fg:#1f2328;--muted:#626a73;--border:#e2e5e9;--bot-bg:#f1f3f6;--error:#b42318;' +
      '--shadow:0 10px 40px rgba(15,20,30,.2),0 2px 8px rgba(15,20,30,.08);' +
      'font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);-webkit-text-size-adjust:100%}' +
    '@media (prefers-color-scheme:dark){.widget{--bg:#1b1c20;--fg:#e9eaed;--muted:#a3a8b0;--border:#33363d;--bot-bg:#2a2c32;--error:#ff9b8f;' +
      '--shadow:0 10px 40px rgba(0,0,0,.5)}}' +
    '*,*::before,*::after{box-sizing:border-box;margin:0;padding:0}' +
    '[hidden]{display:none!important}' +
    'button,textarea{font:inherit;color:inherit;background:none;border:0}' +
    'button{cursor:pointer}' +
    ':focus-visible{outline:2px solid var(--fg);outline-offset:2px}' +
    '.header :focus-visible,.launcher:focus-visible{outline-color:var(--on-accent)}.launcher:focus-visible{box-shadow:0 0 0 4px var(--fg)}' +
    'svg{width:24px;height:24px;fill:currentColor;display:block}' +
    '.launcher{position:fixed;bottom:20px;right:20px;width:60px;height:60px;border-radius:50%;background:var(--accent);color:var(--on-accent);' +
      'box-shadow:var(--shadow);display:grid;place-items:center;transition:transform .15s}' +
    '.launcher:hover{transform:scale(1.06)}.launcher svg{width:28px;height:28px}' +
    '.open .launcher .icon-open,.launcher .icon-close{display:none}.open .launcher .icon-close{display:block}' +
    '.unread .launcher::after{content:"";position:absolute;top:1px;right:1px;width:14px;height:14px;border-radius:50%;background:#e5484d;border:2px solid #fff}' +
    '.left .launcher,.left .panel{right:auto;left:20px}' +
    '.panel{position:fixed;bottom:92px;right:20px;width:380px;height:min(640px,calc(100vh - 112px));background:var(--bg);' +
      'border:1px solid var(--border);border-radius:18px;box-shadow:var(--shadow);display:flex;flex-direction:column;overflow:hidden;' +
      'animation:sb-in .18s ease-out}' +
    '@keyframes sb-in{from{opacity:0;transform:translateY(10px)}}' +
    '.header{background:var(--accent);color:var(--on-accent);padding:12px 10px 12px 14px;display:flex;align-items:center;gap:10px;flex:none}' +
    '.avatar{width:36px;height:36px;border-radius:50%;background:rgba(255,255,255,.22);display:grid;place-items:center;font-weight:700;flex:none}' +
    '.title{font-weight:650;font-size:16px;line-height:1.25}' +
    '.status{font-size:12.5px;opacity:.9;display:flex;align-items:center;gap:6px}' +
    '.status::before{content:"";width:8px;height:8px;border-radius:50%;background:#b0b5bb;box-shadow:0 0 0 1.5px rgba(255,255,255,.6)}' +
    '[data-conn=online] .status::before{background:#22c55e}[data-conn=offline] .status::before{background:#f59e0b}' +
    '[data-conn=unavailable] .status::before{background:#ef4444}' +
    '.close{margin-inline-start:auto;width:38px;height:38px;border-radius:50%;display:grid;place-items:center;flex:none}' +
    '.close:hover{background:rgba(127,127,127,.25)}' +
    '.log{flex:1;overflow-y:auto;padding:16px 14px;display:flex;flex-direction:column;gap:12px;overscroll-behavior:contain}' +
    '.turn,.turns{display:flex;flex-direction:column;gap:12px}.turn{gap:6px}' +
    '.msg{max-width:85%;padding:9px 13px;border-radius:18px;overflow-wrap:anywhere;unicode-bidi:plaintext}' +
    '.user{align-self:flex-end;background:var(--accent);color:var(--on-accent);border-end-end-radius:5px;white-space:pre-wrap}' +
    '.bot{align-self:flex-start;background:var(--bot-bg);border-end-start-radius:5px}' +
    '.bot p+*,.bot ul+*,.bot ol+*{margin-top:6px}.bot ul,.bot ol{padding-inline-start:20px}.bot li+li{margin-top:2px}' +
    '.bot a{color:inherit;text-decoration:underline;text-underline-offset:2px}.bot strong{font-weight:650}' +
    '.meta{align-self:flex-start;display:flex;align-items:center;flex-wrap:wrap;gap:4px 8px;max-width:85%;font-size:12.5px;color:var(--muted);padding-inline-start:4px}' +
    '.sources{flex-basis:100%}' +
    '.feedback{display:flex;gap:2px}.feedback button{width:30px;height:30px;border-radius:8px;display:grid;place-items:center;color:var(--muted)}' +
    '.feedback button:hover{background:var(--bot-bg)}.feedback svg{width:16px;height:16px}.feedback .down svg{transform:rotate(180deg)}' +
    '.feedback button[aria-pressed=true]{background:var(--accent);color:var(--on-accent)}' +
    '.contact{align-self:flex-start;max-width:85%;border:1px solid var(--border);border-radius:14px;padding:10px 12px;font-size:14px}' +
    '.contact b{font-weight:650}.contact div{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}' +
    '.contact a{padding:6px 12px;border-radius:999px;background:var(--accent);color:var(--on-accent);text-decoration:none;font-weight:550;font-size:13.5px}' +
    '.queued,.error{align-self:flex-end;font-size:12.5px;color:var(--muted);max-width:85%;text-align:end}.error{color:var(--error)}' +
    '.error button{text-decoration:underline;margin-inline-start:6px;color:var(--fg)}' +
    '.notice{align-self:center;font-size:13px;color:var(--muted);text-align:center}' +
    '.typing{align-self:flex-start;background:var(--bot-bg);border-radius:18px;padding:13px 14px;display:flex;gap:5px}' +
    '.typing i{width:7px;height:7px;border-radius:50%;background:var(--muted);animation:sb-bounce 1.2s infinite ease-in-out}' +
    '.typing i:nth-child(2){animation-delay:.15s}.typing i:nth-child(3){animation-delay:.3s}' +
    '@keyframes sb-bounce{0%,60%,100%{opacity:.35;transform:none}30%{opacity:1;transform:translateY(-3px)}}' +
    '.suggestions{display:flex;flex-wrap:wrap;gap:8px;justify-content:flex-end}' +
    '.suggestions button{border:1.5px solid var(--accent);border-radius:999px;padding:7px 13px;font-size:14px;line-height:1.3;text-align:start;background:var(--bg)}' +
    '.suggestions button:hover,.did-you-mean button:hover{background:var(--bot-bg)}' +
    '.did-you-mean{align-self:flex-start;max-width:85%;display:flex;flex-wrap:wrap;gap:6px;font-size:13.5px;color:var(--muted)}' +
    '.did-you-mean b{flex-basis:100%;font-weight:550}' +
    '.did-you-mean button{border:1.5px solid var(--accent);border-radius:14px;padding:6px 12px;text-align:start;color:var(--fg);background:var(--bg)}' +
    '.composer{display:flex;align-items:flex-end;gap:8px;padding:10px 12px 12px;border-top:1px solid var(--border);flex:none}' +
    'textarea{flex:1;resize:none;border:1px solid var(--border);border-radius:20px;padding:9px 14px;font-size:16px;line-height:1.35;' +
      'height:42px;max-height:120px;background:var(--bg);outline:none}' +
    'textarea:focus-visible{border-color:var(--fg);outline:0}textarea::placeholder{color:var(--muted);opacity:1}' +
    '.send{width:42px;height:42px;border-radius:50%;background:var(--accent);color:var(--on-accent);display:grid;place-items:center;flex:none}' +
    '.send:disabled,textarea:disabled{opacity:.5;cursor:default}' +
    '.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}' +
    // phones: full screen, sized to the visual viewport so the keyboard never hides the input
    '@media (max-width:480px){.panel,.left .panel{left:0;right:0;top:var(--vt,0);bottom:auto;width:100%;height:var(--vh,100%);' +
      'border-radius:0;border:0}.open .launcher{display:none}}' +
    '@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}';

  // ---- The websocket: backoff with jitter, pings, resumed by conversation id ----
  class Connection {
    constructor(events) {
      this.events = events;
      this.socket = null;
      this.ready = false;
      this.stopped = false; // refused for good (unknown shop, origin not allowed)
      this.attempt = 0;
      this.retryTimer = this.pingTimer = this.pongTimer = this.readyTimer = 0;
      W.addEventListener('online', safe(() => { if (this.retryTimer) events.onRetry(); }));
    }
    get retrying() { return !!this.retryTimer; }
    open(conversation) {
      if (this.socket || this.stopped) return;
      clearTimeout(this.retryTimer); this.retryTimer = 0;
      // The page (without query or fragment, which may carry private data) is shown to the owner.
      const query = '?page=' + encodeURIComponent(location.origin + location.pathname) +
        (conversation ? '&conversation=' + encodeURIComponent(conversation) : '') +
        (tag.lang ? '&lang=' + encodeURIComponent(tag.lang) : ''); // the server checks it
      let socket;
      try { socket = this.socket = new WebSocket(SOCKET_URL + query); }
      catch (e) { warn(e); this.socket = null; return this.closed({}); }
      socket.onmessage = safe((e) => { if (socket == this.socket) this.events.onFrame(JSON.parse(e.data)); });
      socket.onclose = safe((e) => { if (socket == this.socket) this.closed(e); });
      this.readyTimer = setTimeout(() => this.drop(), READY_TIMEOUT); // rather than spin
    }
    opened() {
      this.stopTimers();
      this.ready = true;
      this.attempt = 0;
      this.pingTimer = setInterval(safe(() => { // proxies cut idle sockets; a missing pong means a dead one
        if (this.send({ type: 'ping' })) { clearTimeout(this.pongTimer); this.pongTimer = setTimeout(() => this.drop(), PONG_TIMEOUT); }
      }), PING_EVERY);
    }
    pong() { clearTimeout(this.pongTimer); }
    send(frame) {
      if (!this.ready || !this.socket || this.socket.readyState != 1) return false;
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    drop() { const socket = this.socket; this.closed({}); try { socket.close(); } catch (e) {} }
    stopTimers() { clearInterval(this.pingTimer); clearTimeout(this.pongTimer); clearTimeout(this.readyTimer); }
    closed(event) {
      this.socket = null; this.ready = false;
      this.stopTimers();
      const code = event.code;
      if (code == CLOSE.UNKNOWN_SHOP || code == CLOSE.FORBIDDEN_ORIGIN) this.stopped = true;
      else {
        // Jitter: 50–100 % of the delay.
        const slow = code == CLOSE.TOO_MANY_CONNECTIONS || code == CLOSE.TOO_MANY_FRAMES;
        const delay = Math.min(slow ? 120000 : 30000, (slow ? 15000 : 500) * Math.pow(2, this.attempt++));
        this.retryTimer = setTimeout(safe(() => this.events.onRetry()), delay / 2 + Math.random() * delay / 2);
      }
      this.events.onClose(event);
    }
    pause() {
      const socket = this.socket;
      clearTimeout(this.retryTimer);
      this.stopTimers();
      this.socket = null; this.ready = false; this.retryTimer = 0;
      if (socket) socket.close();
    }
  }

  class Transcript {
    constructor(box) { this.box = box; this.clear(); }
    clear() {
      this.box.textContent = '';
      this.turns = {}; // ask id -> {id, box, question, note, answer, streamed, entry}
      this.answered = {};
    }
    get empty() { return !this.box.children.length; }
    turn(askId, text) {
      let turn = this.turns[askId];
      if (!turn) { turn = this.turns[askId] = { id: askId, box: el('div', 'turn') }; this.box.appendChild(turn.box); }
      if (text != null && !turn.question) {
        turn.question = el('div', 'msg user', String(text), { 'data-testid': 'sb-user', 'data-ask-id': askId });
        turn.box.insertBefore(turn.question, turn.box.firstChild);
      }
      return turn;
    }
    remove(turn) { turn.box.remove(); delete this.turns[turn.id]; }
    setNote(turn, node) { if (turn.note) turn.note.remove(); turn.note = node; if (node) turn.box.appendChild(node); }
    dropAnswer(turn) { if (turn.answer) { turn.answer.remove(); turn.answer = null; } }
    answerBubble(turn) {
      if (!turn.answer) {
        this.setNote(turn, null);
        turn.answer = el('div', 'msg bot', null, { 'data-testid': 'sb-bot', 'data-ask-id': turn.id, 'data-state': 'streaming', 'aria-busy': 'true' });
        turn.box.appendChild(turn.answer);
      }
      return turn.answer;
    }
    notice(text, testid) { this.box.appendChild(el('div', 'notice', text, { 'data-testid': testid })); }
  }

  class ShopBotWidget extends HTMLElement {
    constructor() {
      super();
      this.isOpen = false;
      this.name = TEXTS.chat;
      this.pendingFeedback = {}; // re-sent after a reconnect until saved
      this.atBottom = true;
      this.connection = new Connection({
        onFrame: (frame) => {
          const type = frame && frame.type;
          if (FRAME_HANDLERS.hasOwnProperty(type)) FRAME_HANDLERS[type].call(this, frame);
          else this.handoff('frame', frame);
        },
        onClose: (event) => this.closed(event),
        onRetry: () => this.connect()
      });
      this.build();
      this.showTexts();
      this.showBot();
    }

    build() {
      const root = this.root = this.attachShadow({ mode: 'open' });
      const ui = this.ui = {};
      ui.widget = el('div', 'widget', null, { 'data-testid': 'sb-root', 'data-conn': 'idle' });
      ui.launcher = el('button', 'launcher', null, { type: 'button', 'aria-expanded': 'false', 'aria-controls': 'sb-panel', 'data-testid': 'sb-launcher' });
      ui.launcher.append(icon(ICON_CHAT, 'icon-open'), icon(ICON_CLOSE, 'icon-close'));
      ui.panel = el('div', 'panel', null, { id: 'sb-panel', role: 'dialog', 'aria-modal': 'false', 'data-testid': 'sb-panel' });
      ui.panel.hidden = true;
      const header = el('div', 'header'), heading = el('div');
      ui.avatar = el('div', 'avatar', null, { 'aria-hidden': 'true' });
      ui.title = el('div', 'title', null, { 'data-testid': 'sb-title' });
      ui.status = el('div', 'status', null, { 'data-testid': 'sb-status' });
      ui.close = el('button', 'close', null, { type: 'button', 'data-testid': 'sb-close' });
      ui.close.appendChild(icon(ICON_CLOSE));
      heading.append(ui.title, ui.status);
      ui.talk = el('button', 'talk', null, { type: 'button' });
      heading.append(ui.talk);
      header.append(ui.avatar, heading, ui.close);
      ui.log = el('div', 'log', null, { role: 'region', tabindex: '0', 'data-testid': 'sb-log' });
      ui.greeting = el('div', 'msg bot', null, { 'data-testid': 'sb-greeting' });
      ui.suggestions = el('div', 'suggestions', null, { 'data-testid': 'sb-suggestions' });
      ui.turns = el('div', 'turns');
      ui.log.append(ui.greeting, ui.turns, ui.suggestions);
      ui.composer = el('form', 'composer');
      ui.input = el('textarea', null, null, { rows: '1', 'data-testid': 'sb-input' });
      ui.send = el('button', 'send', null, { type: 'submit', 'data-testid': 'sb-send' });
      ui.send.appendChild(icon(ICON_SEND));
      ui.composer.append(ui.input, ui.send);
      // Screen readers hear only final answers and errors, never each streamed chunk.
      ui.live = el('div', 'visually-hidden', null, { 'aria-live': 'polite', 'data-testid': 'sb-live' });
      ui.panel.append(header, ui.log, ui.composer);
      ui.widget.append(ui.panel, ui.launcher, ui.live);
      root.appendChild(ui.widget);
      try { // constructable stylesheet: also works under a strict CSP without 'unsafe-inline' styles
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
      } catch (e) { root.prepend(el('style', 0, CSS)); }
      this.transcript = new Transcript(ui.turns);
      this.listen();
    }

    listen() {
      const ui = this.ui, root = this.root;
      ui.log.addEventListener('scroll', () => { this.atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40; });
      ui.launcher.onclick = safe(() => { this.isOpen ? this.close() : this.open(); });
      ui.close.onclick = safe(() => this.close());
      ui.widget.addEventListener('click', safe((e) => { if (e.target.closest('.talk')) this.handoff('form'); }));
      ui.composer.onsubmit = safe((e) => { e.preventDefault(); this.submit(); });
      ui.input.oninput = safe(() => this.grow());
      ui.input.addEventListener('keydown', safe((e) => {
        if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
      }));
      ui.widget.addEventListener('keydown', safe((e) => {
        if (e.key == 'Escape' && this.isOpen) { e.preventDefault(); this.close(); }
        else if (e.key == 'Tab' && this.isOpen && ui.panel.contains(root.activeElement)) { // keep Tab inside the open panel
          const focusable = [...ui.panel.querySelectorAll('button,textarea,a[href],[tabindex="0"]')]
            .filter((x) => !x.disabled && x.getClientRects().length);
          const active = root.activeElement, first = focusable[0], last = focusable[focusable.length - 1];
          if (e.shiftKey ? active == first : active == last) { e.preventDefault(); (e.shiftKey ? last : first).focus(); }
        }
      }));
      // Keys typed in the widget must not trigger the host page's keyboard shortcuts.
      ['keydown', 'keyup', 'keypress'].forEach((k) => ui.widget.addEventListener(k, (e) => e.stopPropagation()));
      // Phones: keep the full-screen panel inside the visual viewport (above the on-screen keyboard).
      const viewport = W.visualViewport;
      if (viewport) ['resize', 'scroll'].forEach((k) => viewport.addEventListener(k, safe(() => this.fit())));
    }

    connectedCallback() {
      if (tag.open && !this.mounted) this.open();
      else if (this.isOpen || saved.conversation || saved.unanswered.length) this.connect();
      this.mounted = true;
    }
    disconnectedCallback() { this.connection.pause(); }

    say(key, slots) {
      slots = { name: this.name, ...slots };
      return String(saved.texts[key] || TEXTS[key] || '').replace(/\{(\w+)\}/g, (m, k) => (k in slots ? slots[k] : m));
    }

    showTexts() {
      const ui = this.ui;
      [[ui.close, 'closeButton'], [ui.log, 'conversation'], [ui.input, 'input'], [ui.send, 'send']]
        .forEach(([node, key]) => node.setAttribute('aria-label', this.say(key)));
      ui.input.placeholder = this.say('placeholder');
      ui.talk.hidden = !(ui.talk.textContent = this.say('talkToPerson'));
      if (saved.language) ui.panel.lang = saved.language;
      ui.panel.dir = saved.dir == 'rtl' ? 'rtl' : 'ltr'; // Arabic, Hebrew: right to left
    }
    // On start (as saved) and on `ready`, never on open.
    showBot() {
      const bot = saved.bot || {}, ui = this.ui;
      this.name = String(bot.name || this.say('chat'));
      ui.title.textContent = this.name;
      ui.avatar.textContent = this.name.charAt(0).toUpperCase();
      ui.panel.setAttribute('aria-label', this.say('panel'));
      const accent = HEX_COLOUR.test(bot.accent) ? bot.accent : HEX_COLOUR.test(tag.color) ? tag.color : DEFAULT_ACCENT;
      ui.widget.style.setProperty('--accent', accent);
      ui.widget.style.setProperty('--on-accent', onAccent(accent));
      ui.widget.classList.toggle('left', (/^(left|right)$/.test(tag.position) ? tag.position : bot.position) == 'left');
      ui.greeting.hidden = !bot.greeting;
      markdown(ui.greeting, bot.greeting);
      ui.suggestions.textContent = '';
      list(bot.suggestions).slice(0, 6).forEach((s) => {
        const button = el('button', 0, String(s), { type: 'button', 'data-testid': 'sb-suggestion' });
        button.onclick = safe(() => { this.ask(s); ui.input.focus(); });
        ui.suggestions.appendChild(button);
      });
      this.showLauncher();
      this.refresh();
    }
    showLauncher() {
      const unread = this.ui.widget.classList.contains('unread');
      this.ui.launcher.setAttribute('aria-label', this.say(this.isOpen ? 'close' : 'open') +
        (unread ? ' ' + this.say('unread') : ''));
    }
    setStatus(state, text) {
      this.ui.widget.setAttribute('data-conn', state);
      this.ui.status.textContent = text;
      this.ui.input.disabled = this.ui.send.disabled = this.connection.stopped;
    }
    refresh() { this.ui.suggestions.hidden = this.connection.stopped || !this.transcript.empty; }
    announce(text) { const live = this.ui.live; live.textContent = ''; setTimeout(() => { live.textContent = text; }, 60); }
    // Keep the newest message in view unless the customer scrolled up to read.
    stick(force) {
      if (force) this.atBottom = true;
      if (this.atBottom) this.ui.log.scrollTop = this.ui.log.scrollHeight;
    }
    fit() {
      const viewport = W.visualViewport;
      if (!viewport || !this.isOpen) return;
      this.ui.widget.style.setProperty('--vh', viewport.height + 'px');
      this.ui.widget.style.setProperty('--vt', viewport.offsetTop + 'px');
    }

    open() {
      if (this.isOpen) return this.ui.input.focus();
      this.setOpen(true);
      this.ui.widget.classList.remove('unread');
      this.showLauncher();
      this.fit();
      if (!this.connection.socket && !this.connection.retrying) this.connect();
      this.stick(true);
      this.ui.input.focus();
    }
    close() {
      const launcher = this.ui.launcher, active = this.root.activeElement;
      if (!this.isOpen) return;
      this.setOpen(false);
      this.showLauncher();
      if (active && active != launcher) launcher.focus(); // focus was inside the panel
    }
    setOpen(open) {
      this.isOpen = open;
      this.ui.panel.hidden = !open;
      this.ui.widget.classList.toggle('open', open);
      this.ui.launcher.setAttribute('aria-expanded', String(open));
    }

    connect() {
      if (this.connection.socket || this.connection.stopped) return;
      if (!this.connection.attempt) this.setStatus('connecting', this.say('connecting')); // retrying: stays "offline"
      this.connection.open(saved.conversation);
    }
    closed(event) {
      if (this.connection.stopped) {
        if (event.code == CLOSE.FORBIDDEN_ORIGIN) warn('this website\'s origin (' + location.origin + ') is not allowed for shop key "' + shop + '"');
        else warn('unknown shop key "' + shop + '"');
        this.setStatus('unavailable', this.say('unavailable'));
        this.transcript.notice(this.say('unavailableNotice'), 'sb-unavailable');
        return this.refresh();
      }
      this.setStatus('offline', this.say('offline'));
      saved.unanswered.forEach((q) => { const turn = this.transcript.turns[q.id]; if (turn) this.waiting(turn); });
    }

    submit() {
      const input = this.ui.input, text = input.value;
      if (!text.trim()) return;
      input.value = '';
      this.grow();
      this.ask(text);
    }
    grow() { const input = this.ui.input; input.style.height = ''; input.style.height = Math.min(input.scrollHeight + 2, 120) + 'px'; }
    ask(text, entry) {
      text = String(text == null ? '' : text).trim();
      if (!text || this.connection.stopped) return;
      const question = { id: uid(), text };
      if (entry != null) question.entry = entry;
      saved.unanswered.push(question);
      saved.save();
      const turn = this.transcript.turn(question.id, text);
      turn.entry = question.entry; // for "Try again"
      this.waiting(turn);
      this.refresh();
      this.stick(true);
      if (!this.connection.send(askFrame(question)) && !this.connection.socket) this.connect(); // else sent on `ready`
    }
    // A half-streamed answer restarts after a resend.
    waiting(turn) {
      const ready = this.connection.ready;
      this.transcript.dropAnswer(turn);
      const note = ready
        ? el('div', 'typing', null, { role: 'img', 'aria-label': this.say('typing'), 'data-testid': 'sb-typing' })
        : el('div', 'queued', this.say('queued'), { 'data-testid': 'sb-queued' });
      if (ready) note.append(el('i'), el('i'), el('i'));
      this.transcript.setNote(turn, note);
      this.stick();
    }

    showAnswer(turn, frame) {
      const bubble = this.transcript.answerBubble(turn), meta = el('div', 'meta');
      markdown(bubble, frame.text);
      bubble.setAttribute('data-state', 'final');
      bubble.setAttribute('data-mode', frame.mode || '');
      bubble.removeAttribute('aria-busy');
      const sources = list(frame.sources).filter((s) => s && s.question);
      if (sources.length) {
        const line = el('div', 'sources', this.say('sources'), { 'data-testid': 'sb-sources' });
        sources.forEach((s, i) => {
          if (i) line.appendChild(D.createTextNode(' · '));
          line.appendChild((/^https?:\/\//i.test(s.url || '') && link(s.url, s.question)) || D.createTextNode(s.question));
        });
        meta.appendChild(line);
      }
      if (frame.message != null) {
        bubble.setAttribute('data-message-id', frame.message);
        meta.appendChild(this.feedbackButtons(frame, turn));
      }
      this.didYouMean(turn, frame.suggestions);
      if (frame.mode == 'fallback') this.contact(turn, frame.contact || saved.contact);
      if (meta.firstChild) turn.box.appendChild(meta);
      this.stick();
    }
    feedbackButtons(frame, turn) {
      const box = el('div', 'feedback', null, { role: 'group', 'aria-label': this.say('helpful') }), buttons = {};
      ['up', 'down'].forEach((value) => {
        const button = buttons[value] = el('button', value, null, { type: 'button', 'aria-label': this.say(value),
          'aria-pressed': String(frame.feedback == value), 'data-testid': 'sb-fb-' + value });
        button.appendChild(icon(ICON_THUMB));
        button.onclick = safe(() => {
          for (const k in buttons) buttons[k].setAttribute('aria-pressed', String(k == value));
          const feedback = this.pendingFeedback[frame.message] = { type: 'feedback', message: frame.message, value };
          this.connection.send(feedback);
          // Not helped: offer a person and the contact route, once.
          if (value == 'down' && !turn.box.querySelector('.contact')) this.contact(turn, saved.contact);
        });
        box.appendChild(button);
      });
      return box;
    }
    didYouMean(turn, options) {
      options = list(options).filter((s) => s && s.question && typeof s.id == 'number');
      if (!options.length) return;
      const label = this.say('didYouMean'), box = el('div', 'did-you-mean', null,
        { role: 'group', 'aria-label': label.replace(/\s*:$/, ''), 'data-testid': 'sb-did-you-mean' });
      box.appendChild(el('b', 0, label));
      options.slice(0, 3).forEach((s) => {
        const button = el('button', 0, String(s.question), { type: 'button', 'data-testid': 'sb-did-you-mean-option', 'data-entry': s.id });
        button.onclick = safe(() => { this.ask(s.question, s.id); this.ui.input.focus(); });
        box.appendChild(button);
      });
      turn.box.appendChild(box);
    }
    contact(turn, route) {
      if (!route) return;
      const box = el('div', 'contact', null, { 'data-testid': 'sb-contact' }), links = el('div');
      box.append(el('button', 'talk', this.say('talkToPerson')), links);
      const add = (href, label) => { const a = link(href, label); if (a) links.appendChild(a); };
      if (route.email && /^[^\s@:/]+@[^\s@/]+$/.test(route.email)) add('mailto:' + route.email, this.say('email', { email: route.email }));
      if (route.phone) add('tel:' + String(route.phone).replace(/[^\d+]/g, ''), this.say('call', { phone: route.phone }));
      if (route.url && /^https?:/i.test(route.url)) add(route.url, this.say('contactPage'));
      turn.box.appendChild(box);
    }
    handoff(...args) {
      this.extra = this.extra || import(HANDOFF_URL).then((m) => m.default(this, { el, safe, uid, saved }));
      this.extra.then((run) => run(...args)).catch(warn);
    }
  }

  function askFrame(question) {
    const frame = { type: 'ask', id: question.id, text: question.text };
    if (typeof question.entry == 'number') frame.entry = question.entry;
    return frame;
  }

  // ---- One handler per frame type; `this` is the widget ----
  const FRAME_HANDLERS = {
    ready(frame) {
      const transcript = this.transcript, connection = this.connection;
      connection.opened();
      saved.conversation = frame.conversation;
      if (frame.bot) saved.bot = frame.bot;
      if (frame.texts) {
        Object.assign(saved, { texts: frame.texts, language: frame.language, dir: frame.dir });
        this.showTexts();
      }
      this.showBot();
      this.setStatus('online', this.say('online'));
      const history = list(frame.history);
      if (frame.resumed || history.length) { // the server's transcript replaces what is shown
        transcript.clear();
        history.forEach((item) => {
          const id = item.id != null ? item.id : uid();
          if (item.role == 'shop') this.handoff('shop', item, transcript.box.appendChild(el('div')));
          else if (item.role == 'user') transcript.turn(id, item.text);
          else { transcript.answered[id] = 1; this.showAnswer(transcript.turn(id), item); }
        });
      }
      // Re-send unanswered asks with the SAME id: the server answers each id once.
      saved.unanswered = saved.unanswered.filter((q) => !transcript.answered[q.id]);
      saved.save();
      saved.unanswered.forEach((q) => { this.waiting(transcript.turn(q.id, q.text)); connection.send(askFrame(q)); });
      for (const k in this.pendingFeedback) connection.send(this.pendingFeedback[k]);
      this.refresh();
      this.stick(true);
    },
    pong() { this.connection.pong(); },
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
      saved.answered(frame.id);
      if (frame.contact) { saved.contact = frame.contact; saved.save(); }
      this.showAnswer(this.transcript.turn(frame.id), frame);
      this.refresh();
      this.announce(this.name + ': ' + (frame.text || ''));
      if (!this.isOpen) { this.ui.widget.classList.add('unread'); this.showLauncher(); }
    },
    feedback_saved(frame) { delete this.pendingFeedback[frame.message]; },
    error(frame) {
      const transcript = this.transcript, text = String(frame.message || '');
      const turn = frame.id != null && !transcript.answered[frame.id] && transcript.turns[frame.id];
      if (turn) { // retried under a fresh id
        saved.answered(frame.id);
        transcript.dropAnswer(turn);
        const note = el('div', 'error', text, { role: 'note', 'data-testid': 'sb-error' });
        if (turn.question && RETRYABLE_ERRORS.includes(frame.code)) {
          const again = el('button', 0, this.say('tryAgain'), { type: 'button' });
          again.onclick = safe(() => { transcript.remove(turn); this.ask(turn.question.textContent, turn.entry); });
          note.appendChild(again);
        }
        transcript.setNote(turn, note);
        // The next connection starts a new conversation ("Try again" asks there).
        if (frame.code == 'conversation_full') { saved.conversation = null; saved.save(); this.connection.drop(); }
      } else {
        transcript.notice(text, 'sb-error');
      }
      this.announce(text);
      this.stick();
    }
  };

  // ---- Start ----
  let shop, SOCKET_URL, HANDOFF_URL, tag, saved;
  safe(function () {
    if (W.ShopBot || !W.customElements || customElements.get(TAG)) return; // tag loaded twice: do nothing
    let script = D.currentScript;
    if (!script || !script.getAttribute('data-shop')) {
      D.querySelectorAll('script[data-shop]').forEach((s) => { if (/\/widget\.js([?#]|$)/.test(s.src)) script = s; });
    }
    shop = script && script.getAttribute('data-shop');
    if (!shop) return warn('missing data-shop on the widget <script> tag');
    const src = new URL(script.src, location.href), option = (name) => script.getAttribute('data-' + name);
    HANDOFF_URL = new URL('widget-handoff.js', src).href;
    SOCKET_URL = (src.protocol == 'https:' ? 'wss://' : 'ws://') + src.host + '/ws/chat/' + encodeURIComponent(shop) + '/';
    tag = { position: option('position'), color: option('color'), open: option('open') == 'true', lang: option('lang') };
    saved = new SavedState('shopbot:' + shop);
    customElements.define(TAG, ShopBotWidget);
    const widget = D.createElement(TAG);
    W.ShopBot = {
      open: safe(() => widget.open()),
      close: safe(() => widget.close()),
      ask: safe((text) => { widget.open(); widget.ask(text); })
    };
    const mount = () => (D.body || D.documentElement).appendChild(widget);
    if (D.body) mount(); else D.addEventListener('DOMContentLoaded', safe(mount));
  })();
})();
