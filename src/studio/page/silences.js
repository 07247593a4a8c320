// alert-relay silences. Everything shown that came from the store (matchers, comments, event
// titles) is put in the page as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
/** How often the list is read again (silences added elsewhere, ended by time). */
const LIST_EVERY = 10000;
/** How long the preview waits for typing to pause. */
const PREVIEW_AFTER = 300;
const state = { previewTimer: null, previewSequence: 0 };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** A request to the silences API, answered as JSON; an error carries the relay's words. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    $("connection").textContent = "The relay is not answering (restarting or stopped); trying again…";
    throw new Error("The relay is not answering.");
  }
  $("connection").textContent = "";
  const answer = await response.json().catch(() => ({ error: "the relay answered something other than JSON" }));
  if (!response.ok) throw new Error(answer.error || ("HTTP " + response.status));
  return answer;
}

function matchers() {
  return $("matchers").value.split("\n").map((line) => line.trim()).filter((line) => line);
}

/** A time as the reader's clock shows it. */
function local(rfc3339) {
  const at = new Date(rfc3339);
  return isNaN(at) ? rfc3339 : at.toLocaleString();
}

async function list() {
  const all = $("show-ended").checked;
  try {
    const answer = await api("/api/silences" + (all ? "?all=true" : ""));
    const items = answer.silences.map(item);
    $("list").replaceChildren(...items);
    $("list-count").textContent = items.length
      ? `${items.length} silence${items.length === 1 ? "" : "s"}${all ? "" : " in force or to come"}.`
      : (all ? "The store keeps no silence." : "No silence is in force or to come.");
  } catch (e) {
    $("list-count").textContent = "Cannot read the silences: " + e.message;
  }
}

/** One silence in the list, with its Expire button while it has not ended. */
function item(silence) {
  const li = el("li", "silence " + silence.state);
  const head = el("p", "silence-head");
  head.append(el("span", "badge " + silence.state, silence.state), " ", el("code", null, silence.matchers.join(", ")));
  li.append(head);
  li.append(el("p", "hint", `${local(silence.starts_at)} → ${local(silence.ends_at)}${silence.created_by ? " · by " + silence.created_by : ""} · id ${silence.id}`));
  li.append(el("p", "silence-comment", silence.comment));
  if (silence.state !== "expired") {
    const button = el("button", null, "Expire");
    button.type = "button";
    button.setAttribute("aria-label", `Expire silence ${silence.id} (${silence.matchers.join(", ")})`);
    button.addEventListener("click", () => expire(silence, button));
    li.append(button);
  }
  return li;
}

async function expire(silence, button) {
  button.disabled = true;
  try {
    await api("/api/silences/" + encodeURIComponent(silence.id), { method: "DELETE" });
    $("list-status").textContent = `Silence ${silence.id} has ended: what it held that still fires is being sent.`;
  } catch (e) {
    $("list-status").textContent = `Silence ${silence.id} was not expired: ${e.message}`;
    button.disabled = false;
  }
  await list();
}

async function add(event) {
  event.preventDefault();
  $("add-problem").textContent = "";
  $("add-status").textContent = "";
  const body = {
    matchers: matchers(),
    duration: $("duration").value.trim(),
    comment: $("comment").value,
  };
  const by = $("created-by").value.trim();
  if (by) body.created_by = by;
  try {
    const silence = await api("/api/silences", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    $("add-status").textContent = `Silence ${silence.id} added: ${silence.state} until ${local(silence.ends_at)}.`;
    $("matchers").value = "";
    $("comment").value = "";
    preview();
    await list();
  } catch (e) {
    $("add-problem").textContent = "Not added: " + e.message;
  }
}

/** Which of the latest events the matchers typed would have matched. */
async function preview() {
  const typed = matchers();
  const sequence = ++state.previewSequence;
  if (!typed.length) {
    $("preview-summary").textContent = "Type a matcher to see which of the latest events it matches.";
    $("preview-list").replaceChildren();
    return;
  }
  const query = typed.map((m) => "match=" + encodeURIComponent(m)).join("&");
  try {
    const answer = await api("/api/silences/preview?" + query);
    if (sequence !== state.previewSequence) return;
    $("preview-summary").textContent = `${answer.matched} of the latest ${answer.checked} events${answer.matched > answer.events.length ? ` (the newest ${answer.events.length} listed)` : ""}.`;
    $("preview-list").replaceChildren(...answer.events.map((e) => {
      const li = el("li");
      li.append(el("span", "hint", local(e.received_at) + " · " + e.source + " · " + e.kind + " · "), el("span", null, e.title));
      return li;
    }));
  } catch (e) {
    if (sequence !== state.previewSequence) return;
    $("preview-summary").textContent = e.message;
    $("preview-list").replaceChildren();
  }
}

$("add").addEventListener("submit", add);
$("matchers").addEventListener("input", () => {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(preview, PREVIEW_AFTER);
});
$("show-ended").addEventListener("change", list);
list();
setInterval(list, LIST_EVERY);
