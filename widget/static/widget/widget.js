/*! ShopBot chat widget.
 * Embed: <script src="https://HOST/widget.js" data-shop="PUBLIC_KEY" async></script>
 * Optional: data-position="left|right", data-open="true".
 * Plain JS, no dependencies. Everything lives in the shadow root of <shopbot-widget>;
 * the only global is window.ShopBot = {open(), close(), ask(text)}.
 * Server text is never parsed as HTML: the markdown subset is built with createElement/textContent. */
(function () {
  'use strict';
  var W = window, D = document, TAG = 'shopbot-widget';
  function warn() { try { console.warn.apply(console, ['[ShopBot]'].concat([].slice.call(arguments))); } catch (e) {} }
  // Wrap every entry point so nothing ever throws into the host page.
  function safe(fn) { return function () { try { return fn.apply(this, arguments); } catch (e) { warn(e); } }; }

  safe(function () {
    if (W.ShopBot || !W.customElements || customElements.get(TAG)) return; // tag loaded twice: do nothing

    // ---- Find our own <script> tag and derive the server from its src ----
    var me = D.currentScript;
    if (!me || !me.getAttribute('data-shop')) {
      [].forEach.call(D.querySelectorAll('script[data-shop]'), function (s) {
        if (/\/widget\.js([?#]|$)/.test(s.src)) me = s;
      });
    }
    var shop = me && me.getAttribute('data-shop');
    if (!shop) return warn('missing data-shop on the widget <script> tag');
    var src = new URL(me.src, location.href);
    var URL_WS = (src.protocol == 'https:' ? 'wss://' : 'ws://') + src.host + '/ws/chat/' + encodeURIComponent(shop) + '/';
    var posAttr = me.getAttribute('data-position'), colorAttr = me.getAttribute('data-color'), startOpen = me.getAttribute('data-open') == 'true';

    // ---- Persistence: {c: conversation id, b: bot config, k: last contact, q: unanswered asks [{id, text, entry}]} ----
    var KEY = 'shopbot:' + shop, store = {};
    try { store = JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) {}
    if (!Array.isArray(store.q)) store.q = [];
    function save() { try { localStorage.setItem(KEY, JSON.stringify(store)); } catch (e) {} }

    // ---- DOM helpers: nodes and textContent only, nothing is ever parsed as HTML ----
    function el(tag, cls, text, attrs) {
      var e = D.createElement(tag);
      if (cls) e.className = cls;
      if (text != null) e.textContent = text;
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      return e;
    }
    function ico(d, cls) {
      var NS = 'http://www.w3.org/2000/svg', s = D.createElementNS(NS, 'svg'), p = D.createElementNS(NS, 'path');
      s.setAttribute('viewBox', '0 0 24 24');
      s.setAttribute('aria-hidden', 'true');
      if (cls) s.setAttribute('class', cls);
      p.setAttribute('d', d);
      s.appendChild(p);
      return s;
    }
    var I_CHAT = 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z',
      I_X = 'M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z',
      I_SEND = 'M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z',
      I_THUMB = 'M2 21h4V9H2v12zm20-11a2 2 0 0 0-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.5-1.1L13.2 1 7.6 6.6C7.2 7 7 7.5 7 8v11a2 2 0 0 0 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7c.1-.3.2-.5.2-.8v-2z';

    // ---- Safe markdown subset: **bold**, *italic*, "- " / "1. " lists, [text](url), bare http(s) URLs ----
    var INLINE = /\*\*(.+?)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>"]*[^\s<>"'.,;:!?)\]])/g;
    function link(href, label) {
      var u;
      try { u = new URL(href); } catch (e) { return null; }
      if (!/^(https?|mailto|tel):$/.test(u.protocol)) return null;
      return el('a', 0, label, { href: u.href, target: '_blank', rel: 'noopener noreferrer' });
    }
    function inline(p, s) {
      var m, i = 0;
      INLINE.lastIndex = 0;
      while ((m = INLINE.exec(s))) {
        p.appendChild(D.createTextNode(s.slice(i, m.index)));
        p.appendChild(m[1] ? el('strong', 0, m[1]) : m[2] ? el('em', 0, m[2]) :
          link(m[4] || m[5], m[3] || m[5]) || D.createTextNode(m[0]));
        i = INLINE.lastIndex;
      }
      p.appendChild(D.createTextNode(s.slice(i)));
    }
    function md(box, text) {
      var list = null, p = null;
      box.textContent = '';
      String(text || '').split('\n').forEach(function (line) {
        var m = /^\s*(?:([-*•])|(\d+)[.)])\s+(.*)$/.exec(line);
        if (m) {
          var tag = m[1] ? 'UL' : 'OL';
          if (!list || list.tagName != tag) {
            list = box.appendChild(el(tag));
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

    // Pick black or white text for the accent colour (whichever contrasts more).
    function onAccent(h) {
      h = h.slice(1);
      if (h.length == 3) h = h.replace(/./g, '$&$&');
      var L = [0.2126, 0.7152, 0.0722].reduce(function (s, w, k) {
        var c = parseInt(h.substr(k * 2, 2), 16) / 255;
        return s + w * (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4));
      }, 0);
      return L > 0.179 ? '#111' : '#fff';
    }

    // ---- Styles (scoped to the shadow root) ----
    var CSS =
      ':host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483647!important;' +
        'bottom:0!important;right:0!important;width:0!important;height:0!important}' +
      '.w{--a:#4f46e5;--at:#fff;--bg:#fff;--fg:#1f2328;--mut:#626a73;--bd:#e2e5e9;--bot:#f1f3f6;--err:#b42318;' +
        '--sh:0 10px 40px rgba(15,20,30,.2),0 2px 8px rgba(15,20,30,.08);' +
        'font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);-webkit-text-size-adjust:100%}' +
      '@media (prefers-color-scheme:dark){.w{--bg:#1b1c20;--fg:#e9eaed;--mut:#a3a8b0;--bd:#33363d;--bot:#2a2c32;--err:#ff9b8f;' +
        '--sh:0 10px 40px rgba(0,0,0,.5)}}' +
      '*,*::before,*::after{box-sizing:border-box;margin:0;padding:0}' +
      '[hidden]{display:none!important}' +
      'button,textarea{font:inherit;color:inherit;background:none;border:0}' +
      'button{cursor:pointer}' +
      ':focus-visible{outline:2px solid var(--fg);outline-offset:2px}' +
      '.h :focus-visible,.l:focus-visible{outline-color:var(--at)}.l:focus-visible{box-shadow:0 0 0 4px var(--fg)}' +
      'svg{width:24px;height:24px;fill:currentColor;display:block}' +
      // launcher bubble
      '.l{position:fixed;bottom:20px;right:20px;width:60px;height:60px;border-radius:50%;background:var(--a);color:var(--at);' +
        'box-shadow:var(--sh);display:grid;place-items:center;transition:transform .15s}' +
      '.l:hover{transform:scale(1.06)}.l svg{width:28px;height:28px}.open .l .i1,.l .i2{display:none}.open .l .i2{display:block}' +
      '.unread .l::after{content:"";position:absolute;top:1px;right:1px;width:14px;height:14px;border-radius:50%;background:#e5484d;border:2px solid #fff}' +
      '.left .l,.left .p{right:auto;left:20px}' +
      // panel
      '.p{position:fixed;bottom:92px;right:20px;width:380px;height:min(640px,calc(100vh - 112px));background:var(--bg);' +
        'border:1px solid var(--bd);border-radius:18px;box-shadow:var(--sh);display:flex;flex-direction:column;overflow:hidden;' +
        'animation:sbIn .18s ease-out}' +
      '@keyframes sbIn{from{opacity:0;transform:translateY(10px)}}' +
      '.h{background:var(--a);color:var(--at);padding:12px 10px 12px 14px;display:flex;align-items:center;gap:10px;flex:none}' +
      '.av{width:36px;height:36px;border-radius:50%;background:rgba(255,255,255,.22);display:grid;place-items:center;font-weight:700;flex:none}' +
      '.n{font-weight:650;font-size:16px;line-height:1.25}' +
      '.st{font-size:12.5px;opacity:.9;display:flex;align-items:center;gap:6px}' +
      '.st::before{content:"";width:8px;height:8px;border-radius:50%;background:#b0b5bb;box-shadow:0 0 0 1.5px rgba(255,255,255,.6)}' +
      '[data-conn=online] .st::before{background:#22c55e}[data-conn=offline] .st::before{background:#f59e0b}' +
      '[data-conn=unavailable] .st::before{background:#ef4444}' +
      '.x{margin-left:auto;width:38px;height:38px;border-radius:50%;display:grid;place-items:center;flex:none}' +
      '.x:hover{background:rgba(127,127,127,.25)}' +
      // conversation
      '.g{flex:1;overflow-y:auto;padding:16px 14px;display:flex;flex-direction:column;gap:12px;overscroll-behavior:contain}' +
      '.t,.ts{display:flex;flex-direction:column;gap:12px}.t{gap:6px}' +
      '.m{max-width:85%;padding:9px 13px;border-radius:18px;overflow-wrap:anywhere}' +
      '.u{align-self:flex-end;background:var(--a);color:var(--at);border-bottom-right-radius:5px;white-space:pre-wrap}' +
      '.b{align-self:flex-start;background:var(--bot);border-bottom-left-radius:5px}' +
      '.b p+*,.b ul+*,.b ol+*{margin-top:6px}.b ul,.b ol{padding-left:20px}.b li+li{margin-top:2px}' +
      '.b a{color:inherit;text-decoration:underline;text-underline-offset:2px}.b strong{font-weight:650}' +
      '.mt{align-self:flex-start;display:flex;align-items:center;flex-wrap:wrap;gap:4px 8px;max-width:85%;font-size:12.5px;color:var(--mut);padding-left:4px}' +
      '.src{flex-basis:100%}' +
      '.fb{display:flex;gap:2px}.fb button{width:30px;height:30px;border-radius:8px;display:grid;place-items:center;color:var(--mut)}' +
      '.fb button:hover{background:var(--bot)}.fb svg{width:16px;height:16px}.fb .down svg{transform:rotate(180deg)}' +
      '.fb button[aria-pressed=true]{background:var(--a);color:var(--at)}' +
      '.ct{align-self:flex-start;max-width:85%;border:1px solid var(--bd);border-radius:14px;padding:10px 12px;font-size:14px}' +
      '.ct b{font-weight:650}.ct div{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}' +
      '.ct a{padding:6px 12px;border-radius:999px;background:var(--a);color:var(--at);text-decoration:none;font-weight:550;font-size:13.5px}' +
      '.q,.er{align-self:flex-end;font-size:12.5px;color:var(--mut);max-width:85%;text-align:right}.er{color:var(--err)}' +
      '.er button{text-decoration:underline;margin-left:6px;color:var(--fg)}' +
      '.sys{align-self:center;font-size:13px;color:var(--mut);text-align:center}' +
      '.dots{align-self:flex-start;background:var(--bot);border-radius:18px;padding:13px 14px;display:flex;gap:5px}' +
      '.dots i{width:7px;height:7px;border-radius:50%;background:var(--mut);animation:sbB 1.2s infinite ease-in-out}' +
      '.dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}' +
      '@keyframes sbB{0%,60%,100%{opacity:.35;transform:none}30%{opacity:1;transform:translateY(-3px)}}' +
      '.sg{display:flex;flex-wrap:wrap;gap:8px;justify-content:flex-end}' +
      '.sg button{border:1.5px solid var(--a);border-radius:999px;padding:7px 13px;font-size:14px;line-height:1.3;text-align:left;background:var(--bg)}' +
      '.sg button:hover,.dm button:hover{background:var(--bot)}' +
      '.dm{align-self:flex-start;max-width:85%;display:flex;flex-wrap:wrap;gap:6px;font-size:13.5px;color:var(--mut)}.dm b{flex-basis:100%;font-weight:550}' +
      '.dm button{border:1.5px solid var(--a);border-radius:14px;padding:6px 12px;text-align:left;color:var(--fg);background:var(--bg)}' +
      // composer
      '.f{display:flex;align-items:flex-end;gap:8px;padding:10px 12px 12px;border-top:1px solid var(--bd);flex:none}' +
      'textarea{flex:1;resize:none;border:1px solid var(--bd);border-radius:20px;padding:9px 14px;font-size:16px;line-height:1.35;' +
        'height:42px;max-height:120px;background:var(--bg);outline:none}' +
      'textarea:focus-visible{border-color:var(--fg);outline:0}textarea::placeholder{color:var(--mut);opacity:1}' +
      '.s{width:42px;height:42px;border-radius:50%;background:var(--a);color:var(--at);display:grid;place-items:center;flex:none}' +
      '.s:disabled,textarea:disabled{opacity:.5;cursor:default}' +
      '.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}' +
      // phones: full screen, sized to the visual viewport so the keyboard never hides the input
      '@media (max-width:480px){.p,.left .p{left:0;right:0;top:var(--vt,0);bottom:auto;width:100%;height:var(--vh,100%);' +
        'border-radius:0;border:0}.open .l{display:none}}' +
      '@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}';

    // ---- Build the UI ----
    customElements.define(TAG, class extends HTMLElement {});
    var host = D.createElement(TAG), root = host.attachShadow({ mode: 'open' });
    var wrap = el('div', 'w', null, { 'data-testid': 'sb-root', 'data-conn': 'idle' });
    var launcher = el('button', 'l', null, { type: 'button', 'aria-expanded': 'false', 'aria-controls': 'sb-panel', 'data-testid': 'sb-launcher' });
    launcher.append(ico(I_CHAT, 'i1'), ico(I_X, 'i2'));
    var panel = el('div', 'p', null, { id: 'sb-panel', role: 'dialog', 'aria-modal': 'false', 'data-testid': 'sb-panel' });
    panel.hidden = true;
    var head = el('div', 'h'), avatar = el('div', 'av', null, { 'aria-hidden': 'true' }), tbox = el('div');
    var title = el('div', 'n', null, { 'data-testid': 'sb-title' }), status = el('div', 'st', null, { 'data-testid': 'sb-status' });
    var closeBtn = el('button', 'x', null, { type: 'button', 'aria-label': 'Close chat', 'data-testid': 'sb-close' });
    closeBtn.appendChild(ico(I_X));
    tbox.append(title, status);
    head.append(avatar, tbox, closeBtn);
    var log = el('div', 'g', null, { role: 'region', 'aria-label': 'Conversation', tabindex: '0', 'data-testid': 'sb-log' });
    var greet = el('div', 'm b', null, { 'data-testid': 'sb-greeting' }), sugg = el('div', 'sg', null, { 'data-testid': 'sb-suggestions' });
    var turnsBox = el('div', 'ts');
    log.append(greet, turnsBox, sugg);
    var form = el('form', 'f');
    var input = el('textarea', null, null, { rows: '1', placeholder: 'Ask a question…', 'aria-label': 'Your question', 'data-testid': 'sb-input' });
    var sendBtn = el('button', 's', null, { type: 'submit', 'aria-label': 'Send', 'data-testid': 'sb-send' });
    sendBtn.appendChild(ico(I_SEND));
    form.append(input, sendBtn);
    // Screen readers hear only final answers and errors, never each streamed chunk.
    var live = el('div', 'vh', null, { 'aria-live': 'polite', 'data-testid': 'sb-live' });
    panel.append(head, log, form);
    wrap.append(panel, launcher, live);
    root.appendChild(wrap);
    try { // constructable stylesheet: also works under a strict CSP without 'unsafe-inline' styles
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) { root.prepend(el('style', 0, CSS)); }

    // ---- State ----
    var isOpen = false, name = 'Chat', turns = {}, answered = {}, fbq = {}, atBottom = true;
    var ws = null, ready = false, stopped = false, attempt = 0, retryT = 0, pingT = 0, pongT = 0, openT = 0;

    function setConn(state, text) {
      wrap.setAttribute('data-conn', state);
      status.textContent = text;
      input.disabled = sendBtn.disabled = stopped;
    }
    function announce(s) { live.textContent = ''; setTimeout(function () { live.textContent = s; }, 60); }
    function stick(force) { if (force) atBottom = true; if (atBottom) log.scrollTop = log.scrollHeight; }
    log.addEventListener('scroll', function () { atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40; });
    function refresh() { sugg.hidden = stopped || turnsBox.children.length > 0; }

    function applyBot() {
      var b = store.b || {};
      name = String(b.name || 'Chat');
      title.textContent = name;
      avatar.textContent = name.charAt(0).toUpperCase();
      panel.setAttribute('aria-label', name + ' chat');
      launcher.setAttribute('aria-label', (isOpen ? 'Close ' : 'Open ') + name + ' chat' +
        (wrap.classList.contains('unread') ? ' (new message)' : ''));
      // The shop's accent once a connection has told it; until then the tag's data-color.
      var hex = /^#([0-9a-f]{3}){1,2}$/i, a = hex.test(b.accent) ? b.accent : hex.test(colorAttr) ? colorAttr : '#4f46e5';
      wrap.style.setProperty('--a', a);
      wrap.style.setProperty('--at', onAccent(a));
      wrap.classList.toggle('left', (/^(left|right)$/.test(posAttr) ? posAttr : b.position) == 'left');
      greet.hidden = !b.greeting;
      md(greet, b.greeting);
      sugg.textContent = '';
      (Array.isArray(b.suggestions) ? b.suggestions : []).slice(0, 6).forEach(function (s) {
        var btn = el('button', 0, String(s), { type: 'button', 'data-testid': 'sb-suggestion' });
        btn.onclick = safe(function () { ask(s); input.focus(); });
        sugg.appendChild(btn);
      });
      refresh();
    }

    // ---- Transcript: one "turn" per ask id (user bubble, then status note or bot answer) ----
    function turn(id, text) {
      var t = turns[id];
      if (!t) { t = turns[id] = { id: id, el: el('div', 't') }; turnsBox.appendChild(t.el); }
      if (text != null && !t.u) {
        t.u = el('div', 'm u', String(text), { 'data-testid': 'sb-user', 'data-ask-id': id });
        t.el.insertBefore(t.u, t.el.firstChild);
      }
      refresh();
      return t;
    }
    function note(t, node) { if (t.n) t.n.remove(); t.n = node; if (node) t.el.appendChild(node); stick(); }
    function waiting(t) {
      if (t.b) { t.b.remove(); t.b = null; } // a half-streamed answer restarts after a resend
      note(t, ready ? el('div', 'dots', null, { role: 'img', 'aria-label': name + ' is typing', 'data-testid': 'sb-typing' })
        : el('div', 'q', 'Queued — will send when back online', { 'data-testid': 'sb-queued' }));
      if (ready) t.n.append(el('i'), el('i'), el('i'));
    }
    function bubble(t) {
      if (!t.b) {
        note(t, null);
        t.b = el('div', 'm b', null, { 'data-testid': 'sb-bot', 'data-ask-id': t.id, 'data-state': 'streaming', 'aria-busy': 'true' });
        t.el.appendChild(t.b);
      }
      return t.b;
    }
    // Final bot message (live answer or history item): text, sources, feedback, contact route.
    function botMsg(t, f) {
      var b = bubble(t), meta = el('div', 'mt');
      md(b, f.text);
      b.setAttribute('data-state', 'final');
      b.setAttribute('data-mode', f.mode || '');
      b.removeAttribute('aria-busy');
      var srcs = (Array.isArray(f.sources) ? f.sources : []).filter(function (s) { return s && s.question; });
      if (srcs.length) {
        // Each source links to its entry on the shop's FAQ page (http/https only, new tab).
        var sd = el('div', 'src', 'From our FAQ: ', { 'data-testid': 'sb-sources' });
        srcs.forEach(function (s, i) {
          if (i) sd.appendChild(D.createTextNode(' · '));
          sd.appendChild((/^https?:\/\//i.test(s.url || '') && link(s.url, s.question)) || D.createTextNode(s.question));
        });
        meta.appendChild(sd);
      }
      if (f.message != null) {
        b.setAttribute('data-message-id', f.message);
        meta.appendChild(thumbs(f));
      }
      didYouMean(t, f.suggestions);
      if (f.mode == 'fallback') contact(t, f.contact || store.k); // the way to a human, right under the answer
      if (meta.firstChild) t.el.appendChild(meta);
      stick();
    }
    function thumbs(f) {
      var box = el('div', 'fb', null, { role: 'group', 'aria-label': 'Was this helpful?' }), btns = {};
      ['up', 'down'].forEach(function (v) {
        var btn = btns[v] = el('button', v, null, { type: 'button', 'aria-label': v == 'up' ? 'Helpful' : 'Not helpful',
          'aria-pressed': String(f.feedback == v), 'data-testid': 'sb-fb-' + v });
        btn.appendChild(ico(I_THUMB));
        btn.onclick = safe(function () {
          for (var k in btns) btns[k].setAttribute('aria-pressed', String(k == v));
          fbq[f.message] = { type: 'feedback', message: f.message, value: v }; // resent after reconnect until saved
          tx(fbq[f.message]);
        });
        box.appendChild(btn);
      });
      return box;
    }
    // "Did you mean": each button asks that entry's question, naming the entry.
    function didYouMean(t, list) {
      list = (Array.isArray(list) ? list : []).filter(function (s) { return s && s.question && typeof s.id == 'number'; });
      if (!list.length) return;
      var box = el('div', 'dm', null, { role: 'group', 'aria-label': 'Did you mean', 'data-testid': 'sb-did-you-mean' });
      box.appendChild(el('b', 0, 'Did you mean:'));
      list.slice(0, 3).forEach(function (s) {
        var btn = el('button', 0, String(s.question), { type: 'button', 'data-testid': 'sb-did-you-mean-option', 'data-entry': s.id });
        btn.onclick = safe(function () { ask(s.question, s.id); input.focus(); });
        box.appendChild(btn);
      });
      t.el.appendChild(box);
    }
    function contact(t, c) {
      if (!c) return;
      var box = el('div', 'ct', null, { 'data-testid': 'sb-contact' }), links = el('div');
      box.append(el('b', 0, 'Talk to a person'), links);
      function add(href, label) { var a = link(href, label); if (a) links.appendChild(a); }
      if (c.email && /^[^\s@:/]+@[^\s@/]+$/.test(c.email)) add('mailto:' + c.email, 'Email ' + c.email);
      if (c.phone) add('tel:' + String(c.phone).replace(/[^\d+]/g, ''), 'Call ' + c.phone);
      if (c.url && /^https?:/i.test(c.url)) add(c.url, 'Contact page');
      if (links.firstChild) t.el.appendChild(box);
    }
    function dropQ(id) { store.q = store.q.filter(function (q) { return q.id != id; }); save(); }
    function uid() {
      try { return crypto.randomUUID(); } catch (e) { return 'a' + Date.now().toString(36) + Math.random().toString(36).slice(2, 12); }
    }

    // ---- Asking ----
    function ask(text, entry) {
      text = String(text == null ? '' : text).trim();
      if (!text || stopped) return;
      var q = { id: uid(), text: text };
      if (entry != null) q.entry = entry;
      store.q.push(q);
      save();
      waiting(turn(q.id, text));
      turns[q.id].entry = q.entry; // "Try again" repeats the click
      stick(true);
      if (!tx(askFrame(q)) && !ws) connect(); // else sent on 'ready'
    }
    function askFrame(q) {
      var o = { type: 'ask', id: q.id, text: q.text };
      if (typeof q.entry == 'number') o.entry = q.entry;
      return o;
    }
    function tx(o) {
      if (!ready || !ws || ws.readyState != 1) return false;
      ws.send(JSON.stringify(o));
      return true;
    }

    // ---- Websocket: lazy connect, exponential backoff with jitter, resume by conversation id ----
    function connect() {
      if (ws || stopped) return;
      clearTimeout(retryT); retryT = 0;
      if (!attempt) setConn('connecting', 'Connecting…'); // while retrying, the status stays "Offline"
      var s;
      // The page (without query or fragment, which may carry private data) is shown to the owner.
      var q = '?page=' + encodeURIComponent(location.origin + location.pathname);
      try { s = ws = new WebSocket(URL_WS + q + (store.c ? '&conversation=' + encodeURIComponent(store.c) : '')); }
      catch (e) { warn(e); ws = null; return closed({}); }
      s.onmessage = safe(function (e) { if (s == ws) frame(JSON.parse(e.data)); });
      s.onclose = safe(function (e) { if (s == ws) closed(e); });
      openT = setTimeout(drop, 12000); // no 'ready' in time: treat as failed instead of spinning
    }
    function drop() { var s = ws; closed({}); try { s.close(); } catch (e) {} }
    function closed(e) {
      ws = null; ready = false;
      clearInterval(pingT); clearTimeout(pongT); clearTimeout(openT);
      var c = e.code;
      if (c == 4404 || c == 4403) {
        stopped = true;
        if (c == 4403) warn('this website\'s origin (' + location.origin + ') is not allowed for shop key "' + shop + '"');
        else warn('unknown shop key "' + shop + '"');
        setConn('unavailable', 'This chat is not available');
        turnsBox.appendChild(el('div', 'sys', 'This chat is not available right now.', { 'data-testid': 'sb-unavailable' }));
        return refresh();
      }
      var slow = c == 4429 || c == 4008, d = Math.min(slow ? 120000 : 30000, (slow ? 15000 : 500) * Math.pow(2, attempt++));
      retryT = setTimeout(safe(connect), d / 2 + Math.random() * d / 2); // jitter: 50–100 % of the delay
      setConn('offline', 'Offline — reconnecting…');
      store.q.forEach(function (q) { if (turns[q.id]) waiting(turns[q.id]); });
    }
    W.addEventListener('online', safe(function () { if (retryT) connect(); }));

    function frame(f) {
      var t, type = f && f.type;
      if (type == 'ready') {
        clearTimeout(openT);
        ready = true; attempt = 0;
        store.c = f.conversation;
        if (f.bot) store.b = f.bot;
        applyBot();
        setConn('online', 'Online');
        var h = Array.isArray(f.history) ? f.history : [];
        if (f.resumed || h.length) { // the server's transcript replaces what is shown
          turnsBox.textContent = ''; turns = {}; answered = {};
          h.forEach(function (m) {
            var id = m.id != null ? m.id : uid();
            if (m.role == 'user') turn(id, m.text);
            else { answered[id] = 1; botMsg(turn(id), m); }
          });
        }
        // Resend unanswered asks with the SAME id: the server answers each id once.
        store.q = store.q.filter(function (q) { return !answered[q.id]; });
        save();
        store.q.forEach(function (q) { waiting(turn(q.id, q.text)); tx(askFrame(q)); });
        for (var k in fbq) tx(fbq[k]);
        refresh();
        stick(true);
        clearInterval(pingT);
        pingT = setInterval(safe(function () { // proxies cut idle sockets; a missing pong means a dead one
          if (tx({ type: 'ping' })) { clearTimeout(pongT); pongT = setTimeout(drop, 10000); }
        }), 25000);
      } else if (type == 'pong') {
        clearTimeout(pongT);
      } else if (type == 'delta') {
        if (answered[f.id] || !turns[f.id]) return;
        t = turns[f.id];
        t.raw = (t.b ? t.raw : '') + (f.text || '');
        md(bubble(t), t.raw);
        stick();
      } else if (type == 'answer') {
        if (answered[f.id]) return; // de-duplicate
        answered[f.id] = 1;
        dropQ(f.id);
        if (f.contact) { store.k = f.contact; save(); }
        botMsg(turn(f.id), f);
        announce(name + ': ' + (f.text || ''));
        if (!isOpen) { wrap.classList.add('unread'); applyBot(); }
      } else if (type == 'feedback_saved') {
        delete fbq[f.message];
      } else if (type == 'error') {
        var msg = String(f.message || 'Something went wrong.');
        t = f.id != null && !answered[f.id] && turns[f.id];
        if (t) { // failed ask: show on that ask, offer a retry with a fresh id
          dropQ(f.id);
          if (t.b) { t.b.remove(); t.b = null; }
          var er = el('div', 'er', msg, { role: 'note', 'data-testid': 'sb-error' }), again = el('button', 0, 'Try again', { type: 'button' });
          again.onclick = safe(function () { t.el.remove(); delete turns[t.id]; ask(t.u ? t.u.textContent : '', t.entry); });
          if (t.u && /rate_limited|unavailable|conversation_full/.test(f.code)) er.appendChild(again);
          note(t, er);
          // This conversation is full: the next connection starts a new one ("Try again" asks there).
          if (f.code == 'conversation_full') { store.c = null; save(); drop(); }
        } else {
          turnsBox.appendChild(el('div', 'sys', msg, { 'data-testid': 'sb-error' }));
        }
        announce(msg);
        stick();
      }
    }

    // ---- Open / close, keyboard ----
    function open() {
      if (isOpen) return input.focus();
      isOpen = true;
      panel.hidden = false;
      wrap.classList.add('open');
      wrap.classList.remove('unread');
      launcher.setAttribute('aria-expanded', 'true');
      applyBot();
      fit();
      if (!ws && !retryT) connect();
      stick(true);
      input.focus();
    }
    function close() {
      if (!isOpen) return;
      var inside = root.activeElement && root.activeElement != launcher;
      isOpen = false;
      panel.hidden = true;
      wrap.classList.remove('open');
      launcher.setAttribute('aria-expanded', 'false');
      applyBot();
      if (inside) launcher.focus();
    }
    launcher.onclick = safe(function () { isOpen ? close() : open(); });
    closeBtn.onclick = safe(close);
    form.onsubmit = safe(function (e) { e.preventDefault(); submit(); });
    function submit() { var v = input.value; if (!v.trim()) return; input.value = ''; grow(); ask(v); }
    function grow() { input.style.height = ''; input.style.height = Math.min(input.scrollHeight + 2, 120) + 'px'; }
    input.oninput = safe(grow);
    input.addEventListener('keydown', safe(function (e) {
      if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    }));
    wrap.addEventListener('keydown', safe(function (e) {
      if (e.key == 'Escape' && isOpen) { e.preventDefault(); close(); }
      else if (e.key == 'Tab' && isOpen && panel.contains(root.activeElement)) { // keep Tab inside the open panel
        var f = [].filter.call(panel.querySelectorAll('button,textarea,a[href],[tabindex="0"]'), function (x) {
          return !x.disabled && x.getClientRects().length;
        });
        var a = root.activeElement, first = f[0], last = f[f.length - 1];
        if (e.shiftKey ? a == first : a == last) { e.preventDefault(); (e.shiftKey ? last : first).focus(); }
      }
    }));
    // Keys typed in the widget must not trigger the host page's keyboard shortcuts.
    ['keydown', 'keyup', 'keypress'].forEach(function (k) { wrap.addEventListener(k, function (e) { e.stopPropagation(); }); });

    // Phones: keep the full-screen panel inside the visual viewport (above the on-screen keyboard).
    var vv = W.visualViewport;
    function fit() {
      if (!vv || !isOpen) return;
      wrap.style.setProperty('--vh', vv.height + 'px');
      wrap.style.setProperty('--vt', vv.offsetTop + 'px');
    }
    if (vv) { vv.addEventListener('resize', safe(fit)); vv.addEventListener('scroll', safe(fit)); }

    // ---- Public API and mount ----
    W.ShopBot = {
      open: safe(open),
      close: safe(close),
      ask: safe(function (text) { open(); ask(text); })
    };
    applyBot();
    function mount() {
      (D.body || D.documentElement).appendChild(host);
      if (startOpen) open();
      else if (store.c || store.q.length) connect(); // resume quietly so history is ready
    }
    if (D.body) mount(); else D.addEventListener('DOMContentLoaded', safe(mount));
  })();
})();
