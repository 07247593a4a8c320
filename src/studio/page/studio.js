// alert-relay template studio. Everything shown that came from an event or a template is put in
// the page as text (textContent), never as markup: a hostile event stays inert here.
"use strict";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;

/** Makes an element with a class and text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const answer = await response.json().catch(() => ({ error: "the studio answered something other than JSON" }));
  if (!response.ok) throw new Error(answer.error || ("HTTP " + response.status));
  return answer;
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

const state = { catalog: null, timer: null, sequence: 0, source: "thousandeyes" };

function setVerdict(region, preview) {
  const verdict = region.querySelector(".verdict");
  if (preview.failure) {
    verdict.className = "verdict bad";
    verdict.textContent = "✗ " + preview.failure.text + " — the relay would send its fallback message.";
  } else {
    verdict.className = "verdict ok";
    verdict.textContent = "✓ valid for this destination (" + preview.templates.join(" + ") + ")";
  }
}

/** How the kinds with a picture of their own are drawn; every other kind shows what it sends. */
const VISUALS = {
  slack: (message) => blockKit(message.json || {}),
  teams: (message) => adaptiveCard(message.json || {}),
};

/** What a Teams card is sent in: the Workflows envelope. */
const SENT = {
  teams: (message) => ({ type: "message", attachments: [{ contentType: "application/vnd.microsoft.card.adaptive", contentUrl: null, content: message.json }] }),
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
      const sent = SENT[kind] ? SENT[kind](message) : message.json;
      source.textContent = JSON.stringify(sent, null, 2);
    } else {
      source.textContent = message.text || "";
    }
  }
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
  schedule();
}

function request() {
  return { event: $("event-json").value, source: state.source, template: $("template-file").value, text: $("template").value };
}

async function render() {
  const sequence = ++state.sequence;
  try {
    const answer = await api("/api/render", request());
    if (sequence !== state.sequence) return;
    if (answer.event_error) {
      $("problem").textContent = answer.event_error;
      return;
    }
    show(answer.previews);
    showVariables(answer.context);
    const kind = $("template-file").value.split("/")[0];
    const failure = answer.previews[kind] && answer.previews[kind].failure;
    $("problem").textContent = failure ? failure.text : "";
  } catch (e) {
    $("problem").textContent = e.message;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(render, 250);
}

async function loadEvent() {
  const answer = await api("/api/event?id=" + encodeURIComponent($("event").value));
  $("event-json").value = answer.json;
  state.source = answer.source;
  schedule();
}

async function loadTemplate() {
  const answer = await api("/api/template?id=" + encodeURIComponent($("template-file").value));
  $("template").value = answer.text;
  $("template-source").textContent = answer.file ? "File: " + answer.source : "No file yet: the built-in default (" + answer.source + "); Save creates the file.";
  schedule();
}

function fill(select, items, label) {
  select.replaceChildren();
  for (const item of items) {
    const option = el("option", null, label(item));
    option.value = item.id || item.name;
    select.appendChild(option);
  }
}

async function start() {
  const catalog = await api("/api/catalog");
  state.catalog = catalog;
  fill($("event"), catalog.events, (e) => e.label);
  fill($("template-file"), catalog.templates, (t) => t.id + (t.file ? "" : " (built-in)"));
  fill($("destination"), catalog.destinations, (d) => d.name + " (" + d.kind + ")");
  $("save").disabled = !catalog.write;
  if (!catalog.write) $("save").title = "Saving is off: [studio] write = true allows it";
  const trigger = catalog.events.find((e) => e.id === "sample:thousandeyes/alert_trigger.json");
  if (trigger) $("event").value = trigger.id;
  $("event").addEventListener("change", () => loadEvent().catch((e) => { $("problem").textContent = e.message; }));
  $("template-file").addEventListener("change", () => loadTemplate().catch((e) => { $("problem").textContent = e.message; }));
  $("event-json").addEventListener("input", schedule);
  $("template").addEventListener("input", schedule);
  $("save").addEventListener("click", async () => {
    try {
      const answer = await api("/api/save", request());
      $("status").textContent = "Saved " + answer.saved + "; the relay reloads it.";
    } catch (e) {
      $("status").textContent = "Not saved: " + e.message;
    }
  });
  $("send").addEventListener("click", async () => {
    $("status").textContent = "Sending…";
    try {
      const answer = await api("/api/send", Object.assign(request(), { destination: $("destination").value }));
      $("status").textContent = (answer.ok ? "Sent: " : "Not sent: ") + answer.answer;
    } catch (e) {
      $("status").textContent = "Not sent: " + e.message;
    }
  });
  await Promise.all([loadEvent(), loadTemplate()]);
}

start().catch((e) => { $("problem").textContent = "The studio could not start: " + e.message; });
