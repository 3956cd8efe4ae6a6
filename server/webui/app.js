// smtpfault's page: the catalog, the profile in force and its editor, live sessions from the event stream,
// captured messages, counters. Plain JavaScript against the HTTP API of the admin port (docs/http.md); served
// from the binary. The token (--admin-token) is asked once and kept in sessionStorage.
'use strict';

const $ = (id) => document.getElementById(id);
const SESSIONS_SHOWN = 200; // older sessions leave the page (the server keeps its own recent ones)
const TRANSCRIPT_SHOWN = 500; // lines per session
const state = { scope: sessionStorage.getItem('scope') || '', sessions: new Map(), openMessage: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function status(text, error) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function headers() {
  const token = sessionStorage.getItem('token');
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// api - one request; a 401 asks for the token once and retries. Resolves to the Response.
async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(path, {
      method,
      headers: { ...headers(), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    if (res.status !== 401 || attempt > 0) return res;
    const token = window.prompt('This smtpfault needs its admin token (--admin-token):');
    if (!token) return res;
    sessionStorage.setItem('token', token);
  }
}

// command - POST /api/v1/<cmd> in the page's scope; the response object
async function command(cmd, args) {
  const body = { ...(args || {}) };
  if (state.scope && cmd !== 'scope.list') body.scope = state.scope;
  const res = await api('POST', `/api/v1/${cmd}`, body);
  const out = await res.json();
  if (!out.ok && cmd !== 'profile.validate') status(`${cmd}: ${out.error.message}`, true);
  return out;
}

function scoped(path) {
  if (!state.scope) return path;
  return path + (path.includes('?') ? '&' : '?') + `scope=${encodeURIComponent(state.scope)}`;
}

async function get(path) {
  const res = await api('GET', scoped(path));
  return res.json();
}

// -- catalog and profile ----------------------------------------------------------------------------------

async function loadCatalog() {
  const out = await get('/api/v1/profiles');
  const list = $('catalog');
  list.replaceChildren();
  for (const p of out.profiles || []) {
    const li = el('li', { 'data-name': p.name },
      el('div', {}, el('span', { class: 'name' }, p.name), ' ',
        el('button', { class: 'load', onclick: () => loadProfile({ name: p.name }) }, 'Load')),
      el('div', { class: 'desc' }, p.valid ? p.description : '(invalid)'));
    list.append(li);
  }
  filterCatalog();
}

function filterCatalog() {
  const q = $('catalog-filter').value.toLowerCase();
  for (const li of $('catalog').children) li.hidden = q !== '' && !li.textContent.toLowerCase().includes(q);
}

async function showProfile() {
  const out = await command('profile.get');
  if (!out.ok) return;
  $('profile-name').textContent = out.name ? `${out.name} (${out.rules} rules)` : '(none: every command accepted)';
  $('editor').value = JSON.stringify(out.profile, null, 2);
  for (const li of $('catalog').children) li.classList.toggle('active', li.dataset.name === out.name);
}

async function loadProfile(args) {
  const out = await command('profile.load', args);
  showErrors(out);
  if (out.ok) {
    status(`loaded ${out.name || 'the profile'}`);
    await showProfile();
    await refreshStats();
  }
}

function editorProfile() {
  try {
    return JSON.parse($('editor').value);
  } catch (e) {
    showErrors({ ok: false, errors: [`profile: ${e.message}`] });
    return undefined;
  }
}

// showErrors - each error of profile.load/validate, its JSON path marked
function showErrors(out) {
  const list = $('errors');
  list.replaceChildren();
  if (out.ok) {
    if (out.valid) list.append(el('li', { class: 'ok' }, `valid: ${out.rules} rules`));
    return;
  }
  for (const text of out.errors || [out.error.message]) {
    const m = /^[^:]*: ((?:[A-Za-z_][\w]*|\[\d+\])(?:\.[A-Za-z_]\w*|\[\d+\])*): (.*)$/.exec(text);
    list.append(m ? el('li', { 'data-path': m[1] }, el('span', { class: 'path' }, m[1]), `: ${m[2]}`)
      : el('li', {}, text));
  }
}

// -- sessions -----------------------------------------------------------------------------------------------

function sessionView(id) {
  let s = state.sessions.get(id);
  if (s) return s;
  const facts = el('div', { class: 'facts' });
  const lines = el('ol');
  const summary = el('summary', {}, `#${id}`);
  const node = el('details', { class: 'session', 'data-session': id, open: '' }, summary, facts, lines);
  s = { id, node, summary, facts, lines, faults: 0 };
  state.sessions.set(id, s);
  $('sessions').prepend(node);
  while (state.sessions.size > SESSIONS_SHOWN) {
    const [oldest] = state.sessions.keys();
    state.sessions.get(oldest).node.remove();
    state.sessions.delete(oldest);
  }
  return s;
}

function addLine(s, ev) {
  const line = el('li', { class: `ev-${ev.event}` }, `${ev.time.slice(11, 23)} ${ev.event} ${ev.text}`);
  s.lines.append(line);
  if (s.lines.children.length > TRANSCRIPT_SHOWN) s.lines.firstChild.remove();
  if (ev.event === 'fault') {
    s.faults++;
    s.node.classList.add('has-fault');
  }
}

// showFacts - what sessions.get knows: TLS version and cipher, AUTH user, close reason
function showFacts(s, info) {
  const parts = [info.client, info.listener, info.helo ? `HELO ${info.helo}` : ''];
  if (info.tls) parts.push(`TLS ${info.tls.version || ''} ${info.tls.cipher || ''}`.trim());
  if (info.auth) parts.push(`AUTH ${info.auth.user || JSON.stringify(info.auth)}`);
  if (info.close_reason) parts.push(`closed: ${info.close_reason}`);
  s.facts.textContent = parts.filter(Boolean).join(' · ');
  s.summary.textContent = `#${s.id} ${info.live ? 'live' : 'closed'}${s.faults ? ` · ${s.faults} fault(s)` : ''}`;
}

async function refreshSession(s) {
  const out = await get(`/api/v1/sessions/${s.id}`);
  if (out.ok) showFacts(s, out.session);
}

async function loadSessions() {
  const out = await get('/api/v1/sessions');
  if (!out.ok) return;
  for (const info of [...out.recent, ...out.live].sort((a, b) => a.id - b.id)) {
    const s = sessionView(info.id);
    const full = await get(`/api/v1/sessions/${info.id}`);
    if (!full.ok) continue;
    s.lines.replaceChildren();
    for (const ev of full.session.transcript) addLine(s, ev);
    showFacts(s, full.session);
  }
}

function onEvent(ev) {
  if (ev.event === 'scope_end') {
    status(`scope ${ev.scope} ended`, true);
    return;
  }
  if (!ev.session) return;
  const s = sessionView(ev.session);
  addLine(s, ev);
  if (['connect', 'tls', 'auth', 'close'].includes(ev.event)) refreshSession(s);
  if (ev.event === 'message') loadMessages();
  if (['fault', 'close', 'message', 'connect'].includes(ev.event)) refreshStatsSoon();
  $('live').textContent = `${[...state.sessions.values()].filter((x) => !x.node.querySelector('.ev-close')).length} live`;
}

// streamEvents - GET /api/v1/events read with fetch (EventSource cannot send the token); reconnects
async function streamEvents(generation) {
  while (generation === state.generation) {
    try {
      const res = await api('GET', scoped('/api/v1/events'));
      if (!res.ok) throw new Error(`events: ${res.status}`);
      status('live');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done || generation !== state.generation) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          for (const line of block.split('\n')) if (line.startsWith('data: ')) onEvent(JSON.parse(line.slice(6)));
        }
      }
      reader.cancel().catch(() => {});
    } catch (e) {
      status(`event stream: ${e.message}; reconnecting`, true);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// -- messages -------------------------------------------------------------------------------------------

async function loadMessages() {
  const out = await get('/api/v1/messages?limit=200');
  if (!out.ok) return;
  const list = $('messages');
  list.replaceChildren();
  for (const m of out.messages.reverse()) {
    list.append(el('li', { 'data-message': m.id, onclick: () => openMessage(m.id) },
      `${m.received.slice(11, 19)} ${m.sender || '<>'} → ${m.recipients.join(', ')} (${m.size} bytes)`));
  }
}

function showTab(name) {
  for (const t of document.querySelectorAll('.tab')) t.classList.toggle('shown', t.id === `tab-${name}`);
}

async function openMessage(id) {
  state.openMessage = id;
  for (const li of $('messages').children) li.classList.toggle('open', li.dataset.message === id);
  const [env, mp, raw] = await Promise.all([
    get(`/api/v1/messages/${id}`), get(`/api/v1/message/${id}`),
    api('GET', scoped(`/api/v1/messages/${id}/raw`)).then((r) => r.blob()),
  ]);
  if (!env.ok) return;
  $('tab-headers').replaceChildren(...env.headers.map(([k, v]) => el('div', {}, el('b', {}, `${k}: `), v)),
    ...(mp.Attachments || []).map((a) => el('div', {}, `attachment: ${a.FileName} (${a.ContentType}, ${a.Size} bytes)`)));
  $('tab-text').textContent = mp.Text || '(no text part)';
  // The HTML part in a sandboxed frame: no scripts, no same-origin access, no forms.
  $('tab-html').srcdoc = mp.HTML || '<p>(no HTML part)</p>';
  $('tab-raw').textContent = await raw.text();
  const link = $('download');
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(raw);
  link.download = `${id}.eml`;
  $('message').hidden = false;
  showTab('text');
}

// -- counters -------------------------------------------------------------------------------------------

let statsTimer = null;
function refreshStatsSoon() {
  if (!statsTimer) statsTimer = setTimeout(() => { statsTimer = null; refreshStats(); }, 300);
}

async function refreshStats() {
  const out = await get('/api/v1/stats');
  if (!out.ok) return;
  const f = out.faults;
  const rows = [['sessions', `${out.sessions.live} live, ${out.sessions.total} in all`],
    ['messages', `${out.messages.accepted} accepted, ${out.messages.kept} kept`],
    ['faults fired', f.fired], ['profile', f.profile || '(none)'],
    ['limits, greylisted, magic', `${f.limits}, ${f.greylisted}, ${f.magic}`]];
  $('counters').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-counter': k }, v)]));
  $('by-rule').replaceChildren(...f.by_rule.map((r) => el('tr', {}, el('td', {}, `rule ${r.rule}${r.name ? ` (${r.name})` : ''}`), el('td', {}, r.fired))));
  $('by-stage').replaceChildren(...Object.entries(f.by_stage).map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))));
}

// -- scope ----------------------------------------------------------------------------------------------

async function loadScopes() {
  const out = await command('scope.list');
  const select = $('scope');
  const ids = out.ok ? out.scopes.map((s) => s.scope) : [];
  if (state.scope && !ids.includes(state.scope)) ids.push(state.scope);
  select.replaceChildren(el('option', { value: '' }, "(the server's own)"), ...ids.map((id) => el('option', { value: id }, id)));
  select.value = state.scope;
}

async function start() {
  state.generation = (state.generation || 0) + 1;
  state.sessions.clear();
  $('sessions').replaceChildren();
  $('message').hidden = true;
  await Promise.all([showProfile(), loadMessages(), refreshStats(), loadSessions()]);
  streamEvents(state.generation);
}

document.addEventListener('DOMContentLoaded', async () => {
  const fromUrl = new URLSearchParams(location.search).get('scope');
  if (fromUrl !== null) state.scope = fromUrl;
  $('catalog-filter').addEventListener('input', filterCatalog);
  $('validate').addEventListener('click', async () => {
    const profile = editorProfile();
    if (profile !== undefined) showErrors(await command('profile.validate', { profile, source: 'profile' }));
  });
  $('load').addEventListener('click', () => {
    const profile = editorProfile();
    if (profile !== undefined) loadProfile({ profile, source: 'profile' });
  });
  $('clear').addEventListener('click', async () => { await command('profile.clear'); showProfile(); });
  $('revert').addEventListener('click', showProfile);
  $('reset').addEventListener('click', async () => {
    const out = await command('reset');
    if (out.ok) status('reset: profile, counters and messages back to the start');
    await Promise.all([showProfile(), loadMessages(), refreshStats()]);
    $('message').hidden = true;
  });
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('scope').addEventListener('change', () => {
    state.scope = $('scope').value;
    sessionStorage.setItem('scope', state.scope);
    start();
  });
  await loadCatalog();
  await loadScopes();
  await start();
  document.body.dataset.ready = 'true';
});
