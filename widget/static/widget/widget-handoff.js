/*! ShopBot chat widget: the hand-off to a person. widget.js loads this module the first time it is
 * needed (the customer asks for a person, or a person of the shop writes), so most chats never
 * fetch it. Protocol: docs/protocol.md (handoff, handoff_saved, shop_message, person, received).
 * Like widget.js, nothing here is parsed as HTML. */
const CSS = `
.shop {
  align-self: flex-start; background: var(--bg); border: 1.5px solid var(--accent);
  border-bottom-left-radius: 5px; white-space: pre-wrap;
}
[dir=rtl] .shop { border-radius: 18px 18px 5px 18px; }
.shop b { display: block; font-size: 12px; font-weight: 600; color: var(--muted); }
.joined { background: var(--bot-bg); padding: 6px 14px; font-size: 13px; flex: none; }
.handoff {
  display: flex; flex-direction: column; gap: 8px; border: 1px solid var(--border);
  border-radius: 14px; padding: 12px; font-size: 14px;
}
.handoff b { font-weight: 600; }
.handoff input, .handoff textarea {
  height: auto; border-radius: 10px; padding: 7px 10px; border: 1px solid var(--border);
  font: inherit; font-size: 16px; background: var(--bg); color: inherit; resize: vertical;
}
.handoff [aria-invalid=true] { border-color: var(--error); }
.handoff div { display: flex; gap: 8px; }
.handoff button { padding: 7px 14px; border-radius: 999px; border: 1.5px solid var(--accent); }
.handoff .go { background: var(--accent); color: var(--on-accent); }
.handoff .error { align-self: flex-start; text-align: start; }
`;

// `widget` is widget.js's <shopbot-widget> element; `tools` its helpers and its FRAME_HANDLERS,
// where this module registers the hand-off's frames. Returns what widget.js calls: openForm()
// (with the question of the answer whose "Talk to a person" was clicked, else the latest),
// showShopMessage(text, slot) and showError(frame) (an error about the pending request).
export default function (widget, { el, safe, uid, addStyles, handlers }) {
  const ui = widget.ui;
  const transcript = widget.transcript;
  addStyles(widget.root, CSS);
  // "A person from our team has joined the chat" under the header while a person has it.
  const joined = el('div', 'joined', widget.say('personJoined'), {
    role: 'status',
    'data-testid': 'sb-person',
  });
  joined.hidden = true;
  ui.panel.insertBefore(joined, ui.log);
  let form = null;

  function unread() {
    if (widget.isOpen) return;
    ui.widget.classList.add('unread');
    widget.showLauncher();
  }

  function showShopMessage(text, slot = null) {
    const message = el('div', 'msg shop', null, { 'data-testid': 'sb-shop', dir: 'auto' });
    message.append(el('b', null, widget.say('team')), String(text || ''));
    if (slot) slot.replaceWith(message);
    else transcript.box.appendChild(message);
    widget.stick();
  }

  function lastQuestion() {
    const questions = transcript.box.querySelectorAll('.user');
    return questions.length ? questions[questions.length - 1].textContent : '';
  }

  function closeForm() {
    form.remove();
    form = null;
    widget.pendingHandoff = null;
  }

  // The form: email (or phone, if the shop calls back), optional name, the question pre-filled.
  function openForm(question = null) {
    widget.open();
    if (form) {
      form.elements.email.focus();
      return;
    }
    const options = (widget.saved.bot || {}).handoff || {};
    form = el('form', 'handoff', null, {
      'data-testid': 'sb-handoff-form',
      'aria-label': widget.say('talkToPerson'),
    });
    const field = (name, text, tagName, attrs) => {
      const label = widget.say(text);
      const input = el(tagName, null, null, {
        name,
        'aria-label': label,
        placeholder: label,
        'data-testid': 'sb-handoff-' + name,
        ...attrs,
      });
      return form.appendChild(input);
    };
    // Closed now: when a person will reply (the shop's hours), instead of the usual reply time.
    const intro = options.closed
      ? widget.say('handoffIntroShort') + ' ' + options.closed
      : options.reply_time
        ? widget.say('handoffIntro', { time: options.reply_time })
        : widget.say('handoffIntroShort');
    form.appendChild(el('b', null, intro));
    const email = { type: 'email', autocomplete: 'email', maxlength: '254' };
    field('email', 'yourEmail', 'input', email);
    if (options.phone) {
      field('phone', 'yourPhone', 'input', { type: 'tel', autocomplete: 'tel', maxlength: '40' });
    }
    field('name', 'yourName', 'input', { autocomplete: 'name', maxlength: '100' });
    field('note', 'yourQuestion', 'textarea', { rows: '3' }).value = question ?? lastQuestion();
    const buttons = form.appendChild(el('div'));
    const send = el('button', 'go', widget.say('sendQuestion'), {
      type: 'submit',
      'data-testid': 'sb-handoff-send',
    });
    const cancel = el('button', null, widget.say('cancel'), {
      type: 'button',
      'data-testid': 'sb-handoff-cancel',
    });
    buttons.append(send, cancel);
    cancel.onclick = safe(closeForm);
    form.onsubmit = safe((e) => {
      e.preventDefault();
      submit();
    });
    transcript.box.appendChild(form);
    widget.stick(true);
    form.elements.email.focus();
  }

  function submit() {
    // One id per request: re-sent after a reconnect, the server saves it once.
    const frame = { type: 'handoff', id: uid() };
    widget.pendingHandoff = frame;
    for (const input of form.elements) {
      if (!input.name) continue;
      frame[input.name] = input.value.trim();
      input.removeAttribute('aria-invalid');
    }
    if (!widget.connection.send(frame)) widget.connect(); // sent on `ready`
  }

  // An error about the pending request: shown in the form, which stays as typed.
  function showError(frame) {
    widget.pendingHandoff = null;
    if (!form) return;
    const input = form.elements[frame.field];
    if (input) input.setAttribute('aria-invalid', 'true');
    const old = form.querySelector('.error');
    if (old) old.remove();
    const error = el('div', 'error', frame.message, {
      role: 'alert',
      'data-testid': 'sb-handoff-error',
    });
    form.insertBefore(error, form.lastChild);
    // In view: the field to fix, down to Send and Cancel (which the error must not push away).
    widget.reveal(input || error, form.lastChild);
    if (input) input.focus({ preventScroll: true });
    widget.announce(frame.message);
  }

  Object.assign(handlers, {
    handoff_saved(frame) {
      if (!form) return;
      // What happens next, plainly: the server's sentence ("… will reply to you at …").
      const saved = el('div', 'notice', frame.message, {
        role: 'status',
        'data-testid': 'sb-handoff-saved',
      });
      form.replaceWith(saved);
      form = null;
      widget.pendingHandoff = null;
      widget.announce(frame.message);
      widget.stick();
    },
    shop_message(frame) {
      showShopMessage(frame.text);
      widget.announce(widget.say('team') + ': ' + frame.text);
      unread();
    },
    person(frame) {
      joined.hidden = !frame.present;
      widget.stick();
    },
    // A person has the conversation: the question waits for them instead of the bot.
    received(frame) {
      transcript.answered[frame.id] = 1;
      widget.saved.answered(frame.id);
      const turn = transcript.turns[frame.id];
      if (turn) transcript.setNote(turn, el('div', 'queued', widget.say('received')));
    },
  });

  return { openForm, showShopMessage, showError };
}
