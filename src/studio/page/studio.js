// alert-relay template studio. Everything shown that came from an event or a template is put in
// the page as text (textContent), never as markup: a hostile event stays inert here.
"use strict";

const $ = (id) => document.getElementById(id);
/** How often the page asks what the relay offers (events received since it loaded). */
const CATALOG_EVERY = 10000;
/** Everything the page keeps between requests. */
const state = {
  csrf: document.querySelector('meta[name="csrf-token"]').content,
  catalog: null,
  timer: null,
  retry: null,
  sequence: 0,
};

/** Makes an element with a class and text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** The relay could not be reached (restarting, stopped): said once, until it answers again. */
class Offline extends Error {}

/**
 * A GET (no body) or a POST of `body` to the studio's API, answered as JSON. A POST refused for
 * its CSRF token (the relay restarted since the page loaded) fetches a fresh one and is made
 * again, so that what is being edited is kept.
 */
async function api(path, body, again = true) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": state.csrf },
    body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    connection(false);
    throw new Offline("The relay is not answering (restarting or stopped); the page tries again by itself.");
  }
  connection(true);
  const answer = await response.json().catch(() => ({ error: "the studio answered something other than JSON" }));
  if (response.status === 403 && body !== undefined && again && /CSRF/.test(answer.error || "")) {
    state.csrf = (await api("/api/token")).csrf;
    return api(path, body, false);
  }
  if (!response.ok) {
    const error = new Error(answer.error || ("HTTP " + response.status));
    error.answer = answer;
    throw error;
  }
  return answer;
}

/** Shows whether the relay answers; while it does not, the preview is asked for again. */
function connection(up) {
  $("connection").textContent = up ? "" : "The relay is not answering (restarting or stopped); trying again…";
  clearTimeout(state.retry);
  if (!up) state.retry = setTimeout(render, 2000);
}

// ---------------------------------------------------------------- Slack mrkdwn and Block Kit

const EMOJI = {
  red_circle: "🔴", large_green_circle: "🟢", white_check_mark: "✅", heavy_check_mark: "✔️",
  warning: "⚠️", x: "❌", fire: "🔥", rotating_light: "🚨", information_source: "ℹ️",
  bell: "🔔", test_tube: "🧪", large_yellow_circle: "🟡", large_orange_circle: "🟠",
  large_blue_circle: "🔵", grey_question: "❔", question: "❓", eyes: "👀", tada: "🎉",
};

function decodeEntities(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/** Slack's mrkdwn as DOM nodes: *bold*, _italic_, ~strike~, `code`, ```pre```, <links>, :emoji:. */
function mrkdwn(text) {
  const out = document.createDocumentFragment();
  const pieces = String(text).split(/(```[\s\S]*?```)/);
  for (const piece of pieces) {
    if (piece.startsWith("```") && piece.endsWith("```") && piece.length >= 6) {
      out.appendChild(el("pre", null, decodeEntities(piece.slice(3, -3))));
      continue;
    }
    for (const part of piece.split(/(<[^<>\n]*>)/)) {
      if (/^<[^<>\n]*>$/.test(part)) {
        out.appendChild(slackLink(part.slice(1, -1)));
      } else {
        inline(part, out);
      }
    }
  }
  return out;
}

function slackLink(inner) {
  const [target, label] = inner.split("|", 2);
  if (target.startsWith("!")) return el("span", "mention", "@" + target.slice(1).split("^")[0]);
  if (target.startsWith("@")) return el("span", "mention", "@" + (label || target.slice(1)));
  if (target.startsWith("#")) return el("span", "mention", "#" + (label || target.slice(1)));
  const link = el("span", "link", decodeEntities(label || target));
  link.title = decodeEntities(target);
  return link;
}

// Slack formats *bold*, _italic_ and ~strike~ only at word edges: ALERT_NOTIFICATION_TRIGGER stays.
const EDGE_L = "(?<![A-Za-z0-9])", EDGE_R = "(?![A-Za-z0-9])";
const INLINE = new RegExp("(" + [
  EDGE_L + "\\*[^*\\n]+\\*" + EDGE_R,
  EDGE_L + "_[^_\\n]+_" + EDGE_R,
  EDGE_L + "~[^~\\n]+~" + EDGE_R,
  "`[^`\\n]+`", ":[a-z0-9_+-]+:", "\\n",
].join("|") + ")");

function inline(text, out) {
  for (const token of text.split(INLINE)) {
    if (!token) continue;
    const inner = decodeEntities(token.slice(1, -1));
    const wrapped = (mark) => token.length > 2 && token.startsWith(mark) && token.endsWith(mark);
    if (token === "\n") out.appendChild(document.createElement("br"));
    else if (INLINE.test(token) && wrapped("*")) out.appendChild(el("strong", null, inner));
    else if (INLINE.test(token) && wrapped("_")) out.appendChild(el("em", null, inner));
    else if (INLINE.test(token) && wrapped("~")) out.appendChild(el("s", null, inner));
    else if (INLINE.test(token) && wrapped("`")) out.appendChild(el("code", null, inner));
    else if (/^:[a-z0-9_+-]+:$/.test(token) && EMOJI[token.slice(1, -1)]) {
      out.appendChild(document.createTextNode(EMOJI[token.slice(1, -1)]));
    } else out.appendChild(document.createTextNode(decodeEntities(token)));
  }
}

/** A text object: mrkdwn formatted, plain_text as it is but for :emoji: codes. */
function slackText(object) {
  if (!object || typeof object.text !== "string") return document.createTextNode("");
  if (object.type === "mrkdwn") return mrkdwn(object.text);
  const text = object.emoji === false ? object.text
    : object.text.replace(/:([a-z0-9_+-]+):/g, (code, name) => EMOJI[name] || code);
  return document.createTextNode(text);
}

function slackButton(element) {
  const button = el("span", "bk-button " + (element.style || ""));
  button.appendChild(slackText(element.text));
  if (element.url) button.title = element.url;
  return button;
}

function blockKit(message) {
  const out = document.createDocumentFragment();
  const blocks = Array.isArray(message.blocks) ? message.blocks : [];
  if (blocks.length === 0 && message.text) {
    out.appendChild(el("div", "bk-section")).appendChild(mrkdwn(message.text));
  }
  for (const block of blocks) {
    switch (block.type) {
      case "header": out.appendChild(el("div", "bk-header")).appendChild(slackText(block.text)); break;
      case "section": {
        const section = out.appendChild(el("div", "bk-section"));
        if (block.text) section.appendChild(el("div")).appendChild(slackText(block.text));
        if (Array.isArray(block.fields)) {
          const fields = section.appendChild(el("div", "bk-fields"));
          for (const field of block.fields) fields.appendChild(el("div")).appendChild(slackText(field));
        }
        if (block.accessory && block.accessory.type === "button") section.appendChild(slackButton(block.accessory));
        break;
      }
      case "context": {
        const context = out.appendChild(el("div", "bk-context"));
        for (const element of block.elements || []) {
          if (element.type === "image") context.appendChild(el("span", "bk-image", "[image: " + (element.alt_text || "") + "] "));
          else context.appendChild(slackText(element));
          context.appendChild(document.createTextNode(" "));
        }
        break;
      }
      case "divider": out.appendChild(el("hr", "bk-divider")); break;
      case "actions": {
        const actions = out.appendChild(el("div", "bk-actions"));
        for (const element of block.elements || []) actions.appendChild(slackButton(element));
        break;
      }
      case "image": out.appendChild(el("div", "bk-image", "[image: " + (block.alt_text || block.image_url || "") + "]")); break;
      default: out.appendChild(el("div", "bk-context", "[" + block.type + " block]"));
    }
  }
  return out;
}

// ---------------------------------------------------------------- Adaptive Cards

/** The markdown subset Teams renders in a TextBlock: **bold**, _italic_, [text](url). */
function cardMarkdown(text) {
  const out = document.createDocumentFragment();
  const pattern = /(\*\*[^*\n]+\*\*|(?<![A-Za-z0-9])_[^_\n]+_(?![A-Za-z0-9])|\[[^\]\n]*\]\([^)\n]*\)|\n)/;
  for (const token of String(text).split(pattern)) {
    if (!token) continue;
    if (token === "\n") out.appendChild(document.createElement("br"));
    else if (/^\*\*[^*\n]+\*\*$/.test(token)) out.appendChild(el("strong", null, token.slice(2, -2)));
    else if (/^_[^_\n]+_$/.test(token) && pattern.test(token)) out.appendChild(el("em", null, token.slice(1, -1)));
    else if (/^\[[^\]\n]*\]\([^)\n]*\)$/.test(token)) {
      const [, label, url] = token.match(/^\[([^\]\n]*)\]\(([^)\n]*)\)$/);
      const link = el("span", "link", label);
      link.title = url;
      out.appendChild(link);
    } else out.appendChild(document.createTextNode(token));
  }
  return out;
}

function cardElements(items, into) {
  for (const item of items || []) {
    const node = cardElement(item);
    if (item.separator) node.classList.add("ac-separator");
    into.appendChild(node);
  }
}

function cardElement(item) {
  switch (item.type) {
    case "TextBlock": {
      const classes = ["ac-text"];
      if (item.size) classes.push("ac-" + String(item.size).toLowerCase());
      if (item.weight && String(item.weight).toLowerCase() === "bolder") classes.push("ac-bolder");
      if (item.color) classes.push("ac-" + String(item.color).toLowerCase());
      if (item.isSubtle) classes.push("ac-subtle");
      const block = el("div", classes.join(" "));
      block.appendChild(cardMarkdown(item.text || ""));
      return block;
    }
    case "FactSet": {
      const facts = el("dl", "ac-facts");
      for (const fact of item.facts || []) {
        facts.appendChild(el("dt")).appendChild(cardMarkdown(fact.title || ""));
        facts.appendChild(el("dd")).appendChild(cardMarkdown(fact.value || ""));
      }
      return facts;
    }
    case "ColumnSet": {
      const set = el("div", "ac-columns");
      for (const column of item.columns || []) {
        const node = set.appendChild(el("div", "ac-column"));
        if (column.width === "auto") node.style.flex = "0 0 auto";
        cardElements(column.items, node);
      }
      return set;
    }
    case "Container": {
      const container = el("div", "ac-container " + (item.style ? String(item.style).toLowerCase() : ""));
      cardElements(item.items, container);
      return container;
    }
    case "Image": return el("div", "bk-image", "[image: " + (item.altText || item.url || "") + "]");
    case "ActionSet": return cardActions(item.actions);
    default: return el("div", "ac-text ac-subtle", "[" + item.type + "]");
  }
}

function cardActions(actions) {
  const set = el("div", "ac-actions");
  for (const action of actions || []) {
    const button = set.appendChild(el("span", "ac-action", action.title || action.type));
    if (action.url) button.title = action.url;
  }
  return set;
}

function adaptiveCard(card) {
  const out = document.createDocumentFragment();
  const body = el("div");
  cardElements(card.body, body);
  out.appendChild(body);
  if (Array.isArray(card.actions) && card.actions.length) out.appendChild(cardActions(card.actions));
  return out;
}

// ---------------------------------------------------------------- the page

function setVerdict(region, preview) {
  const verdict = region.querySelector(".verdict");
  if (preview.failure) {
    verdict.className = "verdict bad";
    verdict.textContent = "✗ " + preview.failure.text + " — the relay would send its fallback message.";
  } else {
    verdict.className = "verdict ok";
    verdict.textContent = "✓ valid for this destination (" + preview.templates.join(" + ") + ")";
  }
  region.querySelector(".note").textContent = preview.note || "";
}

/** How the kinds with a picture of their own are drawn; every other kind shows what it sends. */
const VISUALS = {
  slack: (message) => blockKit(message.json || {}),
  teams: (message) => adaptiveCard(message.json || {}),
};

function label(kind) {
  return kind.charAt(0).toUpperCase() + kind.slice(1);
}

function disclosure(parent, title, content) {
  const details = el("details");
  details.appendChild(el("summary", null, title));
  details.appendChild(content);
  parent.appendChild(details);
}

/** The region of `kind`'s preview, made the first time the kind is shown, by what it sends. */
function region(kind, message) {
  const id = "preview-" + kind;
  const found = $(id);
  if (found) return found;
  const section = el("section", "preview");
  section.id = id;
  section.setAttribute("role", "region");
  section.setAttribute("aria-label", label(kind) + " preview");
  section.appendChild(el("h2", null, label(kind)));
  section.appendChild(el("div", "verdict"));
  section.appendChild(el("p", "note"));
  const source = el("pre", "source");
  // It scrolls: reachable by keyboard.
  source.tabIndex = 0;
  source.setAttribute("aria-label", label(kind) + " message as sent");
  if (VISUALS[kind]) {
    section.appendChild(el("div", "visual " + kind));
    disclosure(section, "JSON as sent", source);
  } else if (message.html !== undefined) {
    section.appendChild(el("p", "subject"));
    const frame = el("iframe", "html");
    frame.setAttribute("sandbox", "");
    frame.title = label(kind) + " HTML";
    section.appendChild(frame);
    disclosure(section, "Plain text", source);
  } else {
    section.appendChild(source);
  }
  $("previews").appendChild(section);
  return section;
}

function show(previews) {
  for (const [kind, preview] of Object.entries(previews)) {
    const message = preview.message || preview.fallback || {};
    const section = region(kind, message);
    setVerdict(section, preview);
    const source = section.querySelector("pre.source");
    const visual = section.querySelector(".visual");
    if (visual) visual.replaceChildren(VISUALS[kind](message));
    if (message.html !== undefined) {
      section.querySelector(".subject").textContent = "Subject: " + (message.subject || "");
      // Its own URL, under a policy that lets the email's inline styles apply.
      section.querySelector("iframe").src = message.html_url;
      source.textContent = message.text || "";
    } else if (message.json !== undefined) {
      source.textContent = JSON.stringify(message.sent || message.json, null, 2);
    } else {
      source.textContent = message.text || "";
    }
  }
}

/** Marks the previews as not of the event being edited (it cannot be read), or as current. */
function stale(why) {
  $("previews").classList.toggle("stale", Boolean(why));
  $("previews-state").textContent = why ? "These previews are of the last event that could be read." : "";
  $("event-problem").textContent = why || "";
}

/** Every variable of the context, `path = value`, each a button inserting `{{path}}`. */
function showVariables(context) {
  const list = $("variables");
  list.replaceChildren();
  const walk = (value, path) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(inner, path ? path + "." + key : key);
      return;
    }
    if (Array.isArray(value) && value.length && typeof value[0] === "object") {
      walk(value[0], path + ".[0]");
      return;
    }
    const button = el("button");
    button.type = "button";
    button.appendChild(el("span", null, path + " "));
    const shown = JSON.stringify(value);
    button.appendChild(el("span", "value", shown && shown.length > 80 ? shown.slice(0, 80) + "…" : shown));
    // Its name is what it shows (so that voice control can press it); the title says what it does.
    button.title = "Insert {{" + path + "}} at the cursor";
    button.addEventListener("click", () => insert("{{" + path + "}}"));
    list.appendChild(el("li")).appendChild(button);
  };
  walk(context, "");
}

function insert(text) {
  const area = $("template");
  const start = area.selectionStart, end = area.selectionEnd;
  area.setRangeText(text, start, end, "end");
  area.focus();
  edited();
}

function request() {
  return { event: $("event-json").value, source: $("source").value, template: $("template-file").value, text: $("template").value };
}

/** Lines shown as they are, scrolling sideways when long: reachable by keyboard. */
function excerpt(text, name) {
  const pre = el("pre", "excerpt", text);
  pre.tabIndex = 0;
  pre.setAttribute("aria-label", name);
  return pre;
}

/** The edited template's failure, said in words, with the line it points at and, for a message the
 *  destination would refuse, the rendered output around the error. */
function showProblem(failure) {
  const problem = $("problem");
  problem.replaceChildren();
  if (!failure) return;
  problem.appendChild(el("p", null, failure.text));
  const lines = $("template").value.split("\n");
  if (failure.line && failure.template === $("template-file").value && lines[failure.line - 1] !== undefined) {
    const pointer = " ".repeat(Math.max(0, (failure.column || 1) - 1)) + "^";
    problem.appendChild(excerpt("line " + failure.line + ": " + lines[failure.line - 1] + "\n" + " ".repeat(String(failure.line).length + 7) + pointer, "The template line"));
  }
  if (failure.output) {
    problem.appendChild(el("p", null, "The rendered message there:"));
    problem.appendChild(excerpt(failure.output, "The rendered message around the error"));
  }
}

async function render() {
  const sequence = ++state.sequence;
  try {
    const answer = await api("/api/render", request());
    if (sequence !== state.sequence) return;
    if (answer.event_error) {
      stale(answer.event_error);
      return;
    }
    stale(null);
    show(answer.previews);
    showVariables(answer.context);
    const kind = $("template-file").value.split("/")[0];
    showProblem(answer.previews[kind] && answer.previews[kind].failure);
  } catch (e) {
    if (!(e instanceof Offline)) $("problem").textContent = e.message;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(render, 250);
}

/** The editor changed: its line numbers follow, and the previews. */
function edited() {
  numberLines();
  schedule();
}

function numberLines() {
  const count = $("template").value.split("\n").length;
  $("gutter").textContent = Array.from({ length: count }, (_, i) => i + 1).join("\n");
  $("gutter").scrollTop = $("template").scrollTop;
}

function pickSource(source) {
  const select = $("source");
  if (![...select.options].some((o) => o.value === source)) {
    const option = el("option", null, source);
    option.value = source;
    select.appendChild(option);
  }
  select.value = source;
}

async function loadEvent() {
  const answer = await api("/api/event?id=" + encodeURIComponent($("event").value));
  $("event-json").value = answer.json;
  pickSource(answer.source);
  schedule();
}

/** Says which file is edited: the file, or the file (or built-in) it starts from. */
function describeTemplate(answer) {
  $("template-source").textContent = answer.file
    ? "File: " + answer.id
    : "No file yet: starts from " + answer.from + ", which the relay uses for it today; Save creates " + answer.id + ".";
}

async function loadTemplate() {
  const answer = await api("/api/template?id=" + encodeURIComponent($("template-file").value));
  $("template").value = answer.text;
  describeTemplate(answer);
  fillDestinations();
  edited();
}

function fill(select, items, label) {
  // A list being picked from is left as it is until the pick is made.
  if (document.activeElement === select && select.options.length) return;
  const selected = select.value;
  select.replaceChildren();
  for (const item of items) {
    const option = el("option", null, label(item));
    option.value = item.id || item.name;
    select.appendChild(option);
  }
  if ([...select.options].some((o) => o.value === selected)) select.value = selected;
}

/** Send test goes to a destination of the edited template's kind only. */
function fillDestinations() {
  const kind = $("template-file").value.split("/")[0];
  const fitting = state.catalog.destinations.filter((d) => d.kind === kind);
  fill($("destination"), fitting, (d) => d.name);
  $("destination").disabled = fitting.length === 0;
  $("send").disabled = fitting.length === 0;
  $("send-note").textContent = fitting.length ? "" : "No " + kind + " destination in the config to send to.";
}

function fillTemplates() {
  fill($("template-file"), state.catalog.templates, (t) => t.id + (t.file ? "" : " (no file yet)"));
}

/** What the relay offers now: events received since, files saved, destinations and sources a
 *  reload brought. */
async function refreshCatalog() {
  state.catalog = await api("/api/catalog");
  fill($("event"), state.catalog.events, (e) => e.label);
  fill($("source"), state.catalog.sources, (s) => s.label);
  fillTemplates();
  fillDestinations();
}

/** Says how a save went, where the user is looking. */
function saved(text) {
  $("save-status").textContent = text;
  $("save-status").scrollIntoView({ block: "nearest" });
}

async function save() {
  try {
    const answer = await api("/api/save", request());
    const reload = answer.reload || {};
    saved(reload.applied === true ? "Saved " + answer.saved + "; the relay reloaded it and uses it now."
      : reload.applied === false ? "Saved " + answer.saved + ", but the relay refused to reload: " + reload.why
      : "Saved " + answer.saved + "; " + (reload.why || "the relay has not reloaded it yet") + ".");
    const entry = state.catalog.templates.find((t) => t.id === answer.saved);
    if (entry) entry.file = true;
    fillTemplates();
    describeTemplate({ file: true, id: answer.saved });
  } catch (e) {
    saved("Not saved: " + e.message);
  }
}

async function send() {
  $("status").textContent = "Sending…";
  try {
    const answer = await api("/api/send", Object.assign(request(), { destination: $("destination").value }));
    $("status").textContent = (answer.ok ? "Sent: " : "Not sent: ") + answer.answer;
  } catch (e) {
    $("status").textContent = "Not sent: " + e.message;
  }
}

async function start() {
  await refreshCatalog();
  $("save").disabled = !state.catalog.write;
  if (!state.catalog.write) $("save").title = "Saving is off: [studio] write = true allows it (after a restart)";
  const trigger = state.catalog.events.find((e) => e.id === "sample:thousandeyes/alert_trigger.json");
  if (trigger) $("event").value = trigger.id;
  const report = (e) => { if (!(e instanceof Offline)) $("problem").textContent = e.message; };
  $("event").addEventListener("change", () => loadEvent().catch(report));
  // Events the relay receives while the page is open join the list.
  setInterval(() => { if (!document.hidden) refreshCatalog().catch(report); }, CATALOG_EVERY);
  window.addEventListener("focus", () => refreshCatalog().catch(report));
  $("source").addEventListener("change", schedule);
  $("template-file").addEventListener("change", () => loadTemplate().catch(report));
  $("event-json").addEventListener("input", schedule);
  $("template").addEventListener("input", edited);
  $("template").addEventListener("scroll", () => { $("gutter").scrollTop = $("template").scrollTop; });
  $("save").addEventListener("click", save);
  $("send").addEventListener("click", send);
  await Promise.all([loadEvent(), loadTemplate()]);
}

start().catch((e) => { $("problem").textContent = "The studio could not start: " + e.message; });
