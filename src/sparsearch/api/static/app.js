// The search page: POST /v1/search with explain, then render hits with their matched tokens.
// Plain DOM (textContent only, never innerHTML), no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "sparsearch-api-key";

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) result["X-API-Key"] = key;
  return result;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body && JSON.stringify(body) });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const message = payload && payload.error ? payload.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return payload;
}

// Text with the [start, end) spans of `highlights` wrapped in <mark>, as DOM nodes.
function highlighted(text, highlights, contributions) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const span of [...highlights].sort((a, b) => a.start - b.start)) {
    if (span.start < at) continue;
    fragment.append(text.slice(at, span.start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(span.start, span.end);
    mark.dataset.tokens = span.tokens.join(" ");
    mark.title = span.tokens.map((t) => `${t}: +${contributions.get(t).toFixed(3)}`).join(", ");
    fragment.append(mark);
    at = span.end;
  }
  fragment.append(text.slice(at));
  return fragment;
}

function renderHit(hit) {
  const item = document.createElement("li");
  item.className = "hit";
  const explain = hit.explain || { matched: [], highlights: [] };
  const contributions = new Map(explain.matched.map((m) => [m.token, m.contribution]));
  const spans = (field) => explain.highlights.filter((h) => h.field === field);

  const title = document.createElement("div");
  title.className = "hit-title";
  title.append(highlighted(hit.title || hit.id, hit.title ? spans("title") : [], contributions));
  const meta = document.createElement("span");
  meta.className = "hit-meta";
  meta.textContent = `id ${hit.id} · score ${hit.score.toFixed(3)}`;
  title.append(meta);
  item.append(title);

  if (hit.snippet) {
    const snippet = document.createElement("p");
    snippet.className = "hit-snippet";
    snippet.append(highlighted(hit.snippet, spans("snippet"), contributions));
    item.append(snippet);
  }

  const tokens = document.createElement("ul");
  tokens.className = "tokens";
  tokens.setAttribute("aria-label", "matched tokens and their contributions");
  for (const m of explain.matched) {
    const chip = document.createElement("li");
    chip.className = "token";
    chip.dataset.token = m.token;
    chip.title = `query weight ${m.query_weight.toFixed(3)} × document weight ${m.document_weight.toFixed(3)}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = m.token;
    const value = document.createElement("span");
    value.className = "contribution";
    value.textContent = ` +${m.contribution.toFixed(3)}`;
    const share = document.createElement("span");
    share.className = "share";
    share.style.width = `${Math.max(2, Math.round((60 * m.contribution) / hit.score))}px`;
    chip.append(name, value, share);
    tokens.append(chip);
  }
  item.append(tokens);
  return item;
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value;
  if (!query.trim()) {
    setStatus("Type some words to search for.", true);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, $("api-key").value);
  const body = { query, top_k: Number($("top-k").value), explain: true };
  if ($("index").value) body.index = $("index").value;
  setStatus("Searching…");
  try {
    const result = await call("POST", "/v1/search", body);
    $("hits").replaceChildren(...result.hits.map(renderHit));
    const what = result.hits.length === 1 ? "1 hit" : `${result.hits.length} hits`;
    setStatus(`${what} from ${result.index} (${result.model}) in ${result.took_ms.toFixed(1)} ms`);
  } catch (error) {
    $("hits").replaceChildren();
    setStatus(error.message, true);
  }
}

async function loadIndexes() {
  try {
    const { indexes } = await call("GET", "/v1/indexes");
    $("index").replaceChildren(
      ...indexes.map((index) => {
        const option = document.createElement("option");
        option.value = index.name;
        option.textContent = `${index.name} · ${index.model} · ${index.documents} docs`;
        option.selected = index.default;
        return option;
      }),
    );
  } catch (error) {
    setStatus(`Could not list the indexes: ${error.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("search-form").addEventListener("submit", search);
  $("api-key").addEventListener("change", loadIndexes);
  loadIndexes();
});
