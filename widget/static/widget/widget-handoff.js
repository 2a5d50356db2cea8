/*! ShopBot chat widget: the hand-off to a person. widget.js loads this module the first time it is
 * needed (the customer asks for a person, or a person of the shop writes), so the widget itself
 * stays within its size budget and most chats never fetch it. Protocol: docs/protocol.md (handoff,
 * handoff_saved, shop_message, person, received). Like widget.js, nothing here is parsed as HTML. */
const CSS =
  '.talk{font-size:12.5px;text-decoration:underline}' +
  '.shop{align-self:flex-start;background:var(--bg);border:1.5px solid var(--accent);border-end-start-radius:5px;white-space:pre-wrap}' +
  '.shop b{display:block;font-size:12px;font-weight:600;color:var(--muted)}' +
  '.joined{background:var(--bot-bg);padding:6px 14px;font-size:13px;flex:none}' +
  '.handoff{display:flex;flex-direction:column;gap:8px;border:1px solid var(--border);border-radius:14px;padding:12px;font-size:14px}' +
  '.handoff b{font-weight:600}' +
  '.handoff input,.handoff textarea{height:auto;border-radius:10px;padding:7px 10px;border:1px solid var(--border);font:inherit;font-size:16px;background:var(--bg);color:inherit;resize:vertical}' +
  '.handoff [aria-invalid=true]{border-color:var(--error)}.handoff div{display:flex;gap:8px}' +
  '.handoff button{padding:7px 14px;border-radius:999px;border:1.5px solid var(--accent)}' +
  '.handoff .go{background:var(--accent);color:var(--on-accent)}.handoff .error{align-self:flex-start;text-align:start}';

// `widget` is widget.js's <shopbot-widget> element; `tools` its helpers. Returns the one entry
// point widget.js calls: run(kind, ...), kind being 'form', 'shop' or 'frame'.
export default function (widget, { el, safe, uid, saved }) {
  const ui = widget.ui, transcript = widget.transcript;
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    widget.root.adoptedStyleSheets = [...widget.root.adoptedStyleSheets, sheet];
  } catch (e) { widget.root.append(el('style', 0, CSS)); }
  // "A person from our team has joined the chat" under the header while a person has it.
  const joined = el('div', 'joined', widget.say('personJoined'), { role: 'status', 'data-testid': 'sb-person' });
  joined.hidden = true;
  ui.panel.insertBefore(joined, ui.log);
  let form = null;
  // The pending request's errors come here, and it is re-sent after a reconnect (its id makes the
  // server save it once).
  const events = widget.connection.events, onFrame = events.onFrame;
  events.onFrame = (frame) => {
    const pending = widget.pendingHandoff;
    if (frame.type == 'error' && pending && frame.id == pending.id) return frames.error(frame);
    onFrame(frame);
    if (frame.type == 'ready' && pending) widget.connection.send(pending);
  };

  function unread() {
    if (!widget.isOpen) { ui.widget.classList.add('unread'); widget.showLauncher(); }
  }
  function shopMessage(text, slot) {
    const message = el('div', 'msg shop', null, { 'data-testid': 'sb-shop' });
    message.append(el('b', 0, widget.say('team')), String(text || ''));
    if (slot) slot.replaceWith(message); else transcript.box.appendChild(message);
    widget.stick();
  }
  function lastQuestion() {
    const questions = transcript.box.querySelectorAll('.user');
    return questions.length ? questions[questions.length - 1].textContent : '';
  }

  // The form: email (or phone, if the shop calls back), optional name, the question pre-filled.
  function openForm() {
    widget.open();
    if (form) return form.elements.email.focus();
    const options = (saved.bot || {}).handoff || {};
    form = el('form', 'handoff', null, { 'data-testid': 'sb-handoff-form', 'aria-label': widget.say('talkToPerson') });
    const field = (name, text, tag, attrs) => form.appendChild(el(tag, 0, null,
      { name, 'aria-label': widget.say(text), placeholder: widget.say(text), 'data-testid': 'sb-handoff-' + name, ...attrs }));
    form.appendChild(el('b', 0, options.reply_time
      ? widget.say('handoffIntro', { time: options.reply_time }) : widget.say('handoffIntroShort')));
    field('email', 'yourEmail', 'input', { type: 'email', autocomplete: 'email', maxlength: '254' });
    if (options.phone) field('phone', 'yourPhone', 'input', { type: 'tel', autocomplete: 'tel', maxlength: '40' });
    field('name', 'yourName', 'input', { autocomplete: 'name', maxlength: '100' });
    field('note', 'yourQuestion', 'textarea', { rows: '3' }).value = lastQuestion();
    const buttons = form.appendChild(el('div'));
    const cancel = el('button', 0, widget.say('cancel'), { type: 'button', 'data-testid': 'sb-handoff-cancel' });
    buttons.append(el('button', 'go', widget.say('sendQuestion'), { type: 'submit', 'data-testid': 'sb-handoff-send' }), cancel);
    cancel.onclick = safe(() => { form.remove(); form = widget.pendingHandoff = null; });
    form.onsubmit = safe((e) => {
      e.preventDefault();
      // One id per request: re-sent after a reconnect, the server saves it once.
      const frame = widget.pendingHandoff = { type: 'handoff', id: uid() };
      for (const input of form.elements) {
        if (input.name) { frame[input.name] = input.value.trim(); input.removeAttribute('aria-invalid'); }
      }
      widget.connection.send(frame) || widget.connect(); // else sent on `ready`
    });
    transcript.box.appendChild(form);
    widget.stick(true);
    form.elements.email.focus();
  }

  const frames = {
    handoff_saved(frame) {
      if (!form) return;
      // What happens next, plainly: the server's sentence ("… will reply to you at …").
      form.replaceWith(el('div', 'notice', frame.message, { role: 'status', 'data-testid': 'sb-handoff-saved' }));
      form = widget.pendingHandoff = null;
      widget.announce(frame.message);
      widget.stick();
    },
    error(frame) { // for the pending request: shown in the form, which stays as typed
      widget.pendingHandoff = null;
      if (!form) return;
      const input = form.elements[frame.field];
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
      const old = form.querySelector('.error');
      if (old) old.remove();
      form.insertBefore(el('div', 'error', frame.message, { role: 'alert', 'data-testid': 'sb-handoff-error' }), form.lastChild);
      widget.announce(frame.message);
    },
    shop_message(frame) {
      shopMessage(frame.text);
      widget.announce(widget.say('team') + ': ' + frame.text);
      unread();
    },
    person(frame) { joined.hidden = !frame.present; widget.stick(); },
    // A person has the conversation: the question waits for them instead of the bot.
    received(frame) {
      transcript.answered[frame.id] = 1;
      saved.answered(frame.id);
      const turn = transcript.turns[frame.id];
      if (turn) transcript.setNote(turn, el('div', 'queued', widget.say('received')));
    }
  };

  return (kind, a, b) => {
    if (kind == 'form') openForm();
    else if (kind == 'shop') shopMessage(a.text, b);
    else if (frames.hasOwnProperty(a.type)) frames[a.type](a);
  };
}
