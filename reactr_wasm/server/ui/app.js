// The reactr-wasm dashboard: plain JavaScript, no build step, no framework.
//
// Data: GET /ui/api/runnables every two seconds, finished jobs from GET /ui/api/events
// (server-sent events, read with fetch so the bearer token goes in a header), and the
// job API itself for the try-it form. Everything the server sends is rendered as text
// (textContent), never as HTML: a runnable's name, answer or error cannot inject code.
"use strict";

const TOKEN_KEY = "reactr-wasm-token"; // sessionStorage: this tab only, gone when it closes
const POLL_MS = 2000;
const MAX_ROWS = 100;
const OUTCOME_CLASS = {
  succeeded: "good", run_err: "warn", failed: "bad", timed_out: "bad", cancelled: "warn", rejected: "bad",
};

const $ = (id) => document.getElementById(id);

class AuthError extends Error {}

// --- the token ------------------------------------------------------------------------

let tokenWaiters = [];

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function withToken(headers = {}) {
  const value = token();
  return value ? { ...headers, Authorization: `Bearer ${value}` } : headers;
}

function askForToken(message) {
  $("token-form").hidden = false;
  $("forget-token").hidden = true;
  setBadge($("server-state"), message, "bad");
  $("token").focus();
}

function tokenGiven() {
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("token-form").hidden = true;
  $("forget-token").hidden = false;
  const waiters = tokenWaiters;
  tokenWaiters = [];
  waiters.forEach((resolve) => resolve());
  refresh();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: withToken(options.headers), cache: "no-store" });
  if (response.status === 401) {
    askForToken(token() ? "token refused" : "token needed");
    throw new AuthError(path);
  }
  return response;
}

// --- rendering helpers ----------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setBadge(node, text, kind) {
  node.textContent = text;
  node.className = `badge ${kind || ""}`;
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1e-3) return `${(value * 1e6).toFixed(0)} µs`;
  if (value < 1) return `${(value * 1e3).toFixed(value < 0.01 ? 2 : 1)} ms`;
  return `${value.toFixed(2)} s`;
}

function bytes(value) {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

function tags(cell, items, kind) {
  for (const item of items) cell.append(el("span", item, `tag ${kind || ""}`));
}

function counts(cell, entries) {
  for (const [name, count] of entries) {
    const kind = count === 0 ? "zero" : OUTCOME_CLASS[name] || "";
    cell.append(el("span", `${name} ${count}`, `count ${kind}`));
  }
}

// --- runnables and the server's state --------------------------------------------------

function runnableRow(runnable) {
  const row = el("tr");
  row.dataset.runnable = runnable.name;
  row.append(el("td", runnable.name, "name"));

  const abi = el("td");
  if (runnable.kind === "python") {
    abi.append(el("span", "Python", "tag"));
  } else {
    abi.append(el("span", runnable.abi.ok ? "ABI ok" : "ABI problems", `tag ${runnable.abi.ok ? "good" : "bad"}`));
    for (const problem of runnable.abi.problems) abi.append(el("div", problem, "note"));
    if (runnable.abi.restartable) abi.append(el("span", "no side effects", "tag"));
  }
  row.append(abi);

  const caps = el("td");
  if (runnable.capabilities) {
    const { imports, granted, missing } = runnable.capabilities;
    tags(caps, imports.filter((name) => granted.includes(name)), "good");
    tags(caps, missing.map((name) => `${name}: not granted`), "bad");
    tags(caps, granted.filter((name) => !imports.includes(name)).map((name) => `${name} (granted, unused)`));
    if (!imports.length && !granted.length) caps.append(el("span", "none", "note"));
  } else {
    caps.append(el("span", "–", "note"));
  }
  row.append(caps);

  const pool = runnable.pool;
  const poolCell = el("td");
  const isolation = pool.isolation ? `${pool.isolation}, ` : "";
  poolCell.append(el("div", `${isolation}size ${pool.size}, ${pool.threads} thread(s)`));
  if (pool.isolation) poolCell.append(el("div", `instances: ${pool.idle} idle, ${pool.busy} busy`, "note"));
  poolCell.append(el("div", `${pool.queued} queued${pool.inline ? ", runs inline" : ""}`, "note"));
  const recycled = Object.entries(pool.recycled || {});
  if (recycled.length) {
    poolCell.append(el("div", `recycled: ${recycled.map(([why, n]) => `${why} ${n}`).join(", ")}`, "note"));
  }
  row.append(poolCell);

  const jobs = el("td");
  counts(jobs, Object.entries(runnable.counters.jobs));
  row.append(jobs);

  const runs = el("td");
  const { inline, worker } = runnable.counters.runs;
  runs.append(el("div", `${inline} inline, ${worker} on workers`));
  runs.append(el("div", `mean ${seconds(runnable.counters.mean_seconds)}`, "note"));
  row.append(runs);
  return row;
}

function renderRunnables(runnables) {
  const body = $("runnables").tBodies[0];
  body.replaceChildren(...runnables.map(runnableRow));
  $("no-runnables").hidden = runnables.length > 0;

  const select = $("try-runnable");
  const chosen = select.value;
  const names = runnables.map((runnable) => runnable.name);
  if (names.join("\n") !== Array.from(select.options, (option) => option.value).join("\n")) {
    select.replaceChildren(...names.map((name) => {
      const option = el("option", name);
      option.value = name;
      return option;
    }));
    if (names.includes(chosen)) select.value = chosen;
  }
}

function renderServer(server) {
  if (server.draining) setBadge($("server-state"), "draining", "warn");
  else setBadge($("server-state"), "serving", "good");
  const facts = [`v${server.version}`, `${server.in_flight} job(s) in flight`];
  if (server.store) facts.push(`store: ${server.store.items} result(s), ${bytes(server.store.bytes)}`);
  else facts.push("store: size unknown");
  const callbacks = server.callbacks;
  facts.push(`callbacks: ${callbacks.delivered} delivered, ${callbacks.failed} failed, ${callbacks.pending} pending`);
  $("server-facts").textContent = facts.join(" · ");
  $("forget-token").hidden = !token();
}

async function refresh() {
  try {
    const response = await api("/ui/api/runnables");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    renderServer(data.server);
    renderRunnables(data.runnables);
  } catch (error) {
    if (!(error instanceof AuthError)) setBadge($("server-state"), "unreachable", "bad");
  }
}

// --- try it ---------------------------------------------------------------------------

async function answerText(response) {
  const raw = new Uint8Array(await response.arrayBuffer());
  if (raw.length === 0) return "(empty body)";
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    const head = Array.from(raw.slice(0, 64), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `(${raw.length} bytes, not UTF-8) ${head}${raw.length > 64 ? " …" : ""}`;
  }
}

async function showAnswer(response, requests) {
  $("try-result").hidden = false;
  const status = `${response.status} ${response.statusText}`.trim();
  setBadge($("try-status"), status, response.ok ? "good" : "bad");
  $("try-request").textContent = requests.join(" → ");
  const rows = [];
  response.headers.forEach((value, name) => {
    const row = el("tr");
    row.append(el("td", name), el("td", value, "mono"));
    rows.push(row);
  });
  $("try-headers").tBodies[0].replaceChildren(...rows);
  $("try-answer").textContent = await answerText(response);
}

async function tryIt(event) {
  event.preventDefault();
  const name = $("try-runnable").value;
  if (!name) return;
  const wait = $("try-mode").value === "then";
  const path = `/do/${encodeURIComponent(name)}${wait ? "?then=true" : ""}`;
  const requests = [`POST ${path}`];
  $("try-run").disabled = true;
  try {
    let response = await api(path, { method: "POST", body: $("try-body").value });
    if (!wait && response.ok) {
      const { resultId } = await response.json();
      do {
        requests.push(`GET /then/${resultId}`);
        response = await api(`/then/${encodeURIComponent(resultId)}?wait=5`);
      } while (response.status === 202);
    }
    await showAnswer(response, requests);
  } catch (error) {
    if (!(error instanceof AuthError)) {
      $("try-result").hidden = false;
      setBadge($("try-status"), `request failed: ${error.message}`, "bad");
    }
  } finally {
    $("try-run").disabled = false;
  }
}

// --- recent jobs, live ------------------------------------------------------------------

function jobRow(job) {
  const row = el("tr");
  row.dataset.outcome = job.outcome;
  row.dataset.runnable = job.runnable;
  const at = new Date(job.at * 1000);
  const two = (n) => String(n).padStart(2, "0");
  const clock = `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
  row.append(el("td", `${clock}.${String(at.getMilliseconds()).padStart(3, "0")}`, "mono"));
  row.append(el("td", job.runnable));
  const outcome = el("td");
  outcome.append(el("span", job.outcome, `badge ${OUTCOME_CLASS[job.outcome] || ""}`));
  row.append(outcome);
  row.append(el("td", seconds(job.seconds)));
  row.append(el("td", job.id || "–", "mono"));
  row.append(el("td", job.error || "", "error"));
  return row;
}

function showJobs(message) {
  const body = $("jobs").tBodies[0];
  const rows = message.jobs.map(jobRow).reverse(); // newest first
  body.prepend(...rows);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  if (message.dropped) {
    const note = $("feed-dropped");
    note.hidden = false;
    note.textContent = `${message.dropped} job(s) finished too fast to list (the counters above include them).`;
  }
}

function handleFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue; // a comment: keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (event === "jobs" && data.length) showJobs(JSON.parse(data.join("\n")));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow() {
  let delay = 1000;
  for (;;) {
    try {
      const response = await api("/ui/api/events", { headers: { Accept: "text/event-stream" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setBadge($("feed-state"), "live", "good");
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (error instanceof AuthError) {
        setBadge($("feed-state"), "waiting for a token", "warn");
        await tokenGiven();
        continue;
      }
    }
    setBadge($("feed-state"), "reconnecting", "warn");
    await sleep(delay);
    delay = Math.min(delay * 2, 15000);
  }
}

// --- start ------------------------------------------------------------------------------

$("token-form").addEventListener("submit", useToken);
$("forget-token").addEventListener("click", forgetToken);
$("try-form").addEventListener("submit", tryIt);
refresh();
setInterval(refresh, POLL_MS);
follow();
