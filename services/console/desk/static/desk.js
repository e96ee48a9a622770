// Baton desk: live updates over SSE, actions through the agent API, the composer.
// The server decides what is allowed (it renders the buttons and their reasons); this script
// only asks it again when something changes, and shows what it answers.

const body = document.body;
const csrf = body.dataset.csrf;
const query = body.dataset.query || "";
const cid = body.dataset.conversation ? Number(body.dataset.conversation) : null;
const words = JSON.parse(document.getElementById("i18n").textContent);
const baseTitle = document.title;
const $ = (id) => document.getElementById(id);

function say(key, params = {}) {
  let text = words[key] || key;
  for (const [name, value] of Object.entries(params)) text = text.replace(`{${name}}`, value);
  return text;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- times in the agent's own clock and language -------------------------------------------
const timeFormats = {
  time: new Intl.DateTimeFormat(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" }),
  datetime: new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" }),
};
function localizeTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.textContent = timeFormats[el.dataset.format || "time"].format(when);
  }
}

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  localizeTimes(template.content);
  return template.content;
}

async function get(url) {
  const response = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
  if (response.status === 401) {
    location.assign(`/login?expired=1&next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("signed out");
  }
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.text();
}

function post(url, { json, key } = {}) {
  const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["Idempotency-Key"] = key;
  return fetch(url, { method: "POST", headers, body: json !== undefined ? JSON.stringify(json) : undefined });
}

// --- the inbox -------------------------------------------------------------------------------
let lastWaiting = null;
async function refreshInbox() {
  const focused = document.activeElement && document.activeElement.id;
  const html = await get(`/desk/inbox?${query}${cid ? `&current=${cid}` : ""}`);
  const inbox = $("inbox");
  inbox.replaceChildren(fragment(html));
  if (focused && $(focused)) $(focused).focus();
  updateTitle();
}

function updateTitle() {
  const views = $("views");
  const waiting = views ? Number(views.dataset.waiting || 0) : 0;
  document.title = waiting > 0 ? `(${waiting}) ${baseTitle}` : baseTitle;
  if (lastWaiting !== null && waiting > lastWaiting) chime();
  lastWaiting = waiting;
}

// --- sound -------------------------------------------------------------------------------
const soundButton = $("sound");
let soundOn = localStorage.getItem("baton.sound") === "on";
function showSound() { soundButton.setAttribute("aria-pressed", String(soundOn)); }
soundButton.addEventListener("click", () => {
  soundOn = !soundOn;
  localStorage.setItem("baton.sound", soundOn ? "on" : "off");
  showSound();
  if (soundOn) chime();
});
showSound();
let audio = null;
function chime() {
  if (!soundOn) return;
  try {
    audio = audio || new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  } catch { /* no audio on this device: the title count still says it */ }
}

// --- the conversation ----------------------------------------------------------------------
const history = document.querySelector(".history");
const list = $("messages");
const pending = new Map(); // idempotency key → { li, wamid }

function nearBottom() {
  return !history || history.scrollHeight - history.scrollTop - history.clientHeight < 80;
}
function toBottom() { if (history) history.scrollTop = history.scrollHeight; }

function mergeMessages(html) {
  const stick = nearBottom();
  const incoming = fragment(html);
  for (const li of Array.from(incoming.querySelectorAll("li.msg"))) {
    const existing = $(li.id);
    if (existing) existing.replaceWith(li);
    else list.insertBefore(li, list.querySelector("li.pending"));
  }
  for (const [key, entry] of pending) {
    if (entry.wamid && list.querySelector(`li.msg[data-wamid="${CSS.escape(entry.wamid)}"]`)) {
      entry.li.remove();
      pending.delete(key);
    }
  }
  if (stick) toBottom();
}

async function refreshMessages() {
  if (!cid) return;
  mergeMessages(await get(`/desk/c/${cid}/messages`));
}

async function loadOlder(button) {
  const row = button.closest("li.older");
  const before = button.dataset.older;
  button.disabled = true;
  const html = await get(`/desk/c/${cid}/messages?before=${encodeURIComponent(before)}`);
  const height = history.scrollHeight;
  const older = fragment(html);
  row.replaceWith(older);
  history.scrollTop += history.scrollHeight - height; // keep what the agent was reading in place
  const next = list.querySelector("li.older button");
  if (next) watchOlder(next);
}

let olderWatcher = null;
function watchOlder(button) {
  if (!("IntersectionObserver" in window)) return;
  olderWatcher = olderWatcher || new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { olderWatcher.unobserve(entry.target); loadOlder(entry.target).catch(() => {}); }
    }
  }, { root: history });
  olderWatcher.observe(button);
}

async function refreshPanel() {
  if (!cid) return;
  const html = await get(`/desk/c/${cid}/panel`);
  const noteText = $("note-text") ? $("note-text").value : "";
  const noteFocused = document.activeElement && document.activeElement.id === "note-text";
  const incoming = fragment(html);
  for (const id of ["conv-head", "conv-aside", "composer-state"]) {
    const next = incoming.getElementById ? incoming.getElementById(id) : incoming.querySelector(`#${id}`);
    const current = $(id);
    if (next && current) {
      const focusedAction = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.action;
      current.replaceWith(next);
      if (focusedAction) {
        const again = document.querySelector(`[data-action="${focusedAction}"]`);
        if (again && !again.disabled) again.focus();
      }
    }
  }
  if ($("note-text")) {
    $("note-text").value = noteText;
    if (noteFocused) $("note-text").focus();
  }
  applyComposerState();
  fillTransfer();
  markRead();
}

function applyComposerState() {
  const state = $("composer-state");
  if (!state) return;
  const canSend = state.dataset.canSend === "true";
  $("composer-text").disabled = !canSend;
  $("composer-send").disabled = !canSend;
  if ($("composer-file")) $("composer-file").disabled = !canSend;
  $("composer-reason").textContent = canSend ? "" : state.content.textContent.trim();
}

let readTimer = null;
function markRead() {
  // The newest message on screen: what the agent has now seen.
  const ids = Array.from(document.querySelectorAll("#messages li.msg[data-id]"), (li) => Number(li.dataset.id));
  const newest = ids.length ? Math.max(...ids) : null;
  if (!cid || !newest || document.hidden) return;
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    post(`/desk/c/${cid}/read?through=${newest}`).then(() => scheduleInbox()).catch(() => {});
  }, 400);
}

function showActionError(text) {
  const box = $("action-error");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

async function act(button) {
  const action = button.dataset.action;
  button.disabled = true;
  showActionError("");
  try {
    const response = await post(`/conversations/${cid}/${action}`, action === "resolve" ? { json: {} } : {});
    if (response.status === 409) {
      const conflict = await response.json();
      const holder = conflict.state && conflict.state.assignee;
      await refreshPanel();
      showActionError(holder ? say("holds", { agent: holder }) : conflict.detail);
      return;
    }
    if (response.status === 401) { location.assign("/login?expired=1"); return; }
    if (!response.ok) { showActionError(say("busy")); }
    await refreshPanel();
  } catch {
    showActionError(say("offline"));
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const actionButton = event.target.closest("button[data-action]");
  if (actionButton && !actionButton.disabled) { act(actionButton); return; }
  const olderButton = event.target.closest("button[data-older]");
  if (olderButton && !olderButton.disabled) loadOlder(olderButton).catch(() => {});
});

// --- the composer: Enter sends, Shift+Enter is a new line; a retry reuses its key ---------------
const composer = $("composer");
function pendingBubble(text) {
  const li = document.createElement("li");
  li.className = "msg out author-human pending";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const p = document.createElement("p");
  p.className = "body";
  p.textContent = text;
  const foot = document.createElement("p");
  foot.className = "foot";
  const state = document.createElement("span");
  state.className = "sending";
  state.setAttribute("role", "status");
  state.textContent = say("status_pending");
  foot.append(state);
  bubble.append(p, foot);
  li.append(bubble);
  list.append(li);
  toBottom();
  return li;
}

function setPendingState(entry, text, failed = false) {
  const state = entry.li.querySelector(".sending");
  state.textContent = text;
  state.classList.toggle("failure", failed);
}

async function send(text) {
  const key = newKey();
  const entry = { li: pendingBubble(text), wamid: null, text };
  pending.set(key, entry);
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      const response = await post(`/conversations/${cid}/messages`, { json: { text }, key });
      if (response.status === 202) { setPendingState(entry, say("status_pending")); return; }
      if (response.status === 503) throw new Error("busy");
      let detail = `${response.status}`;
      try {
        const answer = await response.json();
        const holder = answer.state && answer.state.assignee;
        detail = answer.reason === "held_by_another_agent" && holder ? say("holds", { agent: holder }) : (typeof answer.detail === "string" ? answer.detail : detail);
      } catch { /* not JSON */ }
      setPendingState(entry, say("not_sent", { reason: detail }), true);
      pending.delete(key);
      refreshPanel().catch(() => {});
      return;
    } catch {
      // A network error: the same Idempotency-Key again, so the customer gets it once.
      setPendingState(entry, say("retrying"));
      await new Promise((resolve) => setTimeout(resolve, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
  setPendingState(entry, say("not_sent", { reason: say("offline") }), true);
}

if (composer) {
  const textarea = $("composer-text");
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text || textarea.disabled) return;
    textarea.value = "";
    send(text);
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      // `/shortcut` alone becomes the number's quick reply, to read before sending.
      const shortcut = textarea.value.trim().match(/^\/(\S+)$/);
      if (shortcut && quickReplies.has(shortcut[1])) {
        textarea.value = quickReplies.get(shortcut[1]);
        return;
      }
      composer.requestSubmit();
    }
  });
  const file = $("composer-file");
  if (file) {
    file.addEventListener("change", () => {
      if (!file.files.length) return;
      sendFile(file.files[0], textarea.value.trim());
      textarea.value = "";
      file.value = "";
    });
  }
}

async function sendFile(chosen, caption) {
  const key = newKey();
  const entry = { li: pendingBubble(`${chosen.name}${caption ? `\n${caption}` : ""}`), wamid: null };
  pending.set(key, entry);
  const form = new FormData();
  form.append("file", chosen);
  if (caption) form.append("text", caption);
  try {
    const response = await fetch(`/conversations/${cid}/messages`, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "Idempotency-Key": key, Accept: "application/json" },
      body: form,
    });
    if (response.status === 202) return;
    let detail = `${response.status}`;
    try { const answer = await response.json(); detail = typeof answer.detail === "string" ? answer.detail : detail; } catch { /* not JSON */ }
    setPendingState(entry, say("not_sent", { reason: detail }), true);
  } catch {
    setPendingState(entry, say("not_sent", { reason: say("offline") }), true);
  }
  pending.delete(key);
}

// --- agent workflow, where the console has it: quick replies, transfer, notes, presence -------
const quickReplies = new Map();
async function loadQuickReplies() {
  const number = composer && composer.dataset.number;
  if (!number) return;
  const response = await fetch(`/numbers/${encodeURIComponent(number)}/quick-replies`, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  for (const item of (await response.json()).items || []) quickReplies.set(item.shortcut.replace(/^\//, ""), item.text);
}

let agentsCache = null;
async function agents() {
  if (agentsCache) return agentsCache;
  const response = await fetch("/agents", { headers: { Accept: "application/json" } });
  agentsCache = response.ok ? (await response.json()).items || [] : [];
  return agentsCache;
}

async function fillTransfer() {
  const form = document.querySelector("form.transfer");
  if (!form) return;
  const select = form.querySelector("select");
  const listed = await agents();
  if (!listed.length) { form.hidden = true; return; }
  for (const agent of listed) {
    // Colleagues on this number; the server refuses anything else with 403 anyway.
    if (agent.id === form.dataset.me || (agent.numbers && !agent.numbers.includes(form.dataset.number))) continue;
    const option = document.createElement("option");
    option.value = agent.id;
    option.textContent = `${agent.id} · ${say(`presence_${agent.status}`)} · ${agent.held}/${agent.capacity}`;
    select.append(option);
  }
}

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.matches("form.transfer")) {
    event.preventDefault();
    const to = form.querySelector("select").value || null;
    const response = await post(`/conversations/${cid}/transfer`, { json: { to } });
    if (!response.ok) {
      let detail = `${response.status}`;
      try { const answer = await response.json(); detail = typeof answer.detail === "string" ? answer.detail : detail; } catch { /* not JSON */ }
      showActionError(detail);
    }
    agentsCache = null;
    await refreshPanel();
  } else if (form.matches("form.note")) {
    event.preventDefault();
    const text = form.querySelector("textarea").value.trim();
    if (!text) return;
    const response = await post(`/conversations/${cid}/notes`, { json: { text }, key: newKey() });
    if (response.status === 201) {
      form.querySelector("textarea").value = "";
      await refreshMessages();
    } else {
      showActionError(say("busy"));
    }
  }
});

async function setupPresence() {
  const select = $("presence");
  const me = body.dataset.me;
  const listed = await agents();
  const mine = listed.find((agent) => agent.id === me);
  if (!mine) return;
  select.value = mine.status;
  select.hidden = false;
  select.addEventListener("change", async () => {
    const response = await fetch("/me/presence", {
      method: "PUT",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ status: select.value }),
    });
    if (response.ok) select.value = (await response.json()).status;
    agentsCache = null;
  });
}

function onSent(data, failed) {
  for (const [key, entry] of pending) {
    if (data.idempotency_key && data.idempotency_key.endsWith(`:${key}`)) {
      if (failed) {
        setPendingState(entry, say("status_failed", { reason: data.reason || data.error_code || "" }), true);
        pending.delete(key);
      } else {
        entry.wamid = data.wamid;
      }
    }
  }
}

// --- live: the event stream, reconnecting by itself ------------------------------------------
let inboxTimer = null;
function scheduleInbox() {
  clearTimeout(inboxTimer);
  inboxTimer = setTimeout(() => refreshInbox().catch(() => {}), 250);
}
let convTimer = null;
function scheduleConversation(panelToo) {
  clearTimeout(convTimer);
  const panel = panelToo || scheduleConversation.panel;
  scheduleConversation.panel = panel;
  convTimer = setTimeout(async () => {
    scheduleConversation.panel = false;
    try {
      await refreshMessages();
      if (panel) await refreshPanel(); else markRead();
    } catch { /* shown by the offline indicator */ }
  }, 150);
}

function refreshAll() {
  scheduleInbox();
  if (cid) scheduleConversation(true);
}

const offline = $("offline");
let stream = null;
let wasOffline = false;
let retryDelay = 1000;
function setOffline(isOffline) {
  offline.hidden = !isOffline;
  if (wasOffline && !isOffline) refreshAll();
  wasOffline = isOffline;
}

const handlers = {
  "conversation.message_received": (d) => d.conversation_id === cid && scheduleConversation(false),
  "conversation.customer_waiting": (d) => d.conversation_id === cid && scheduleConversation(true),
  "conversation.mode_changed": (d) => d.conversation_id === cid && scheduleConversation(true),
  "conversation.assignee_changed": (d) => d.conversation_id === cid && scheduleConversation(true),
  "conversation.message_status": (d) => d.conversation_id === cid && scheduleConversation(false),
  "conversation.notice_skipped": () => {},
  "conversation.resolved": (d) => d.conversation_id === cid && scheduleConversation(true),
  "conversation.note_added": (d) => d.conversation_id === cid && scheduleConversation(false),
  "conversation.handoff_summary": (d) => d.conversation_id === cid && scheduleConversation(true),
  "conversation.media_updated": (d) => d.conversation_id === cid && scheduleConversation(false),
  "conversation.agent_acted": () => {},
  message_sent: (d) => { onSent(d, false); if (d.conversation_id === cid) scheduleConversation(false); },
  send_failed: (d) => { onSent(d, true); if (d.conversation_id === cid) scheduleConversation(false); },
  reply_fenced: () => {},
};

function connect() {
  const number = new URLSearchParams(query).get("number");
  stream = new EventSource(`/events${number ? `?number=${encodeURIComponent(number)}` : ""}`);
  stream.addEventListener("open", () => { retryDelay = 1000; setOffline(false); });
  stream.addEventListener("error", () => {
    setOffline(true);
    if (stream.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. 401 after the session ended): check, then try again later.
      const closed = stream;
      stream = null;
      fetch("/desk/session", { cache: "no-store" }).then((r) => {
        if (r.status === 401) location.assign(`/login?expired=1&next=${encodeURIComponent(location.pathname + location.search)}`);
      }).catch(() => {});
      setTimeout(() => { if (!stream && closed) connect(); }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    }
  });
  stream.addEventListener("reset", refreshAll);
  for (const [name, handle] of Object.entries(handlers)) {
    stream.addEventListener(name, (event) => {
      let data = {};
      try { data = JSON.parse(event.data); } catch { return; }
      handle(data);
      scheduleInbox();
    });
  }
}

window.addEventListener("offline", () => setOffline(true));
window.addEventListener("online", () => {
  // Back online: reconnect now rather than at the browser's next retry.
  if (stream) stream.close();
  stream = null;
  retryDelay = 1000;
  connect();
});
document.addEventListener("visibilitychange", () => { if (!document.hidden) markRead(); });
setInterval(scheduleInbox, 30000); // waits keep growing even when nothing happens

localizeTimes(document);
updateTitle();
applyComposerState();
if (cid) {
  toBottom();
  const older = list.querySelector("li.older button");
  if (older) watchOlder(older);
  markRead();
}
connect();
setupPresence().catch(() => {});
if (cid) {
  fillTransfer().catch(() => {});
  loadQuickReplies().catch(() => {});
}
