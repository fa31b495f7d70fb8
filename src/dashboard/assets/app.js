// drover dashboard: live refresh over server-sent events, and the run actions.
// Served as a file (no inline script) so the Content-Security-Policy can forbid inline code.
(function () {
  'use strict';

  var body = document.body;
  var liveUrl = body.getAttribute('data-live');
  var isRunPage = Boolean(document.querySelector('[data-run-status]'));
  // The run page follows its run closely; the lists refresh at most about three times a second.
  var debounceMs = isRunPage ? 100 : 300;
  var timer = null;
  var inflight = false;
  var again = false;

  function focusKey(el) {
    if (!el || !el.getAttribute) return null;
    if (el.getAttribute('data-step')) return '[data-step="' + CSS.escape(el.getAttribute('data-step')) + '"]';
    if (el.getAttribute('data-action')) return '[data-action="' + CSS.escape(el.getAttribute('data-action')) + '"]';
    if (el.id) return '#' + CSS.escape(el.id);
    return null;
  }

  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      var res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      var doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      var next = doc.getElementById('live');
      var current = document.getElementById('live');
      if (!next || !current) return;
      var key = current.contains(document.activeElement) ? focusKey(document.activeElement) : null;
      current.replaceWith(document.adoptNode(next));
      if (key) {
        var target = document.querySelector('#live ' + key);
        if (target) target.focus();
      }
    } catch (e) {
      // A failed refresh is retried on the next change.
    } finally {
      inflight = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; refresh(); }, debounceMs);
  }

  if (liveUrl && window.EventSource) {
    var state = document.getElementById('live-state');
    var source = new EventSource(liveUrl, { withCredentials: true });
    source.addEventListener('change', schedule);
    source.addEventListener('open', function () {
      if (state) { state.textContent = 'live'; state.classList.remove('off'); }
      // Changes made before the stream opened (or while it was down) were not heard.
      schedule();
    });
    source.addEventListener('error', function () {
      if (state) { state.textContent = 'reconnecting…'; state.classList.add('off'); }
    });
    window.addEventListener('pagehide', function () { source.close(); });
  }

  // Actions: each button confirms in the dialog, then calls the JSON API.
  var dialog = document.getElementById('confirm');
  var errorBox = document.getElementById('action-error');
  var pending = null;

  function showError(text) {
    if (errorBox) errorBox.textContent = text;
  }

  async function send(action, runId, path, body) {
    showError('');
    var res;
    // A path of its own (a button's data-url, such as a schedule's) or one under the run.
    var url = path && path.charAt(0) === '/' ? path : '/api/runs/' + encodeURIComponent(runId) + '/' + (path || action);
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', accept: 'application/json' },
        body: body || '{}',
        credentials: 'same-origin',
      });
    } catch (e) {
      showError('Could not reach the server: ' + e.message);
      return;
    }
    var json = null;
    try { json = await res.json(); } catch (e) { json = null; }
    if (!res.ok) {
      var message = json && json.error && json.error.message ? json.error.message : 'the server answered HTTP ' + res.status;
      showError('That did not work: ' + message + '.');
      return;
    }
    if (action === 'rerun' && json && json.id) {
      location.assign('/runs/' + encodeURIComponent(json.id));
      return;
    }
    refresh();
  }

  // Send signal: a small form (the payload, JSON) in a dialog of its own; Send is the confirmation.
  var signalDialog = document.getElementById('signal-dialog');
  var signalPending = null;

  document.addEventListener('click', function (event) {
    var button = event.target.closest ? event.target.closest('button[data-action]') : null;
    if (button && signalDialog && button.getAttribute('data-action') === 'signal') {
      signalPending = { runId: button.getAttribute('data-run'), signal: button.getAttribute('data-signal') };
      document.getElementById('signal-title').textContent = 'Send signal "' + signalPending.signal + '"?';
      document.getElementById('signal-text').textContent = button.getAttribute('data-confirm') || '';
      signalDialog.returnValue = '';
      signalDialog.showModal();
      return;
    }
    if (!button || !dialog) return;
    pending = { action: button.getAttribute('data-action'), runId: button.getAttribute('data-run'), url: button.getAttribute('data-url'), label: button.textContent };
    document.getElementById('confirm-title').textContent = button.textContent + '?';
    document.getElementById('confirm-text').textContent = button.getAttribute('data-confirm') || '';
    dialog.returnValue = '';
    dialog.showModal();
  });

  if (signalDialog) {
    signalDialog.addEventListener('close', function () {
      var chosen = signalPending;
      signalPending = null;
      if (!chosen || signalDialog.returnValue !== 'confirm') return;
      var text = document.getElementById('signal-payload').value.trim();
      var payload = null;
      if (text !== '') {
        try { payload = JSON.parse(text); } catch (e) { showError('The payload is not JSON: ' + e.message + '.'); return; }
      }
      send('signal', chosen.runId, 'signals/' + encodeURIComponent(chosen.signal), JSON.stringify({ payload: payload }));
    });
  }

  if (dialog) {
    dialog.addEventListener('close', function () {
      var chosen = pending;
      pending = null;
      if (chosen && dialog.returnValue === 'confirm') send(chosen.action, chosen.runId, chosen.url);
    });
  }
})();
