// doq admin UI: plain JavaScript, no framework, no build step (docs/ui.md).
// Three views by the URL's hash: #/ (queues), #/queues/<name> (one queue), #/cluster.
// Every call goes to the node that served this page; a follower relays what only the leader
// answers, so the UI works through any node.
// A node with API tokens answers 401 until the UI has one: the sign-in form asks for it, keeps it
// in sessionStorage (this tab only) and sends it as "Authorization: Bearer" on every call; a 403
// names the scope the token lacks. The token never goes into a URL, the page or the console.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "doq.token";
const HISTORY_POINTS = 60; // a sparkline's width in samples
const RATES = ["enqueue_rps", "dequeue_rps", "ack_rps", "nack_rps"];
const history = new Map(); // queue name -> {enqueue_rps: [...], ...}
let timer = null;

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function queuePath(name) {
  return "/API/v1/queues/" + encodeURIComponent(name);
}

// --- the bearer token ---------------------------------------------------------------------------

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// An answer the UI cannot show without a (better) token: the sign-in form is up instead.
class SignInNeeded extends Error {}

function askForToken(reason) {
  $("#sign-in-reason").textContent = reason;
  $("#sign-in").hidden = false;
  $("#view").replaceChildren();
  $("#sign-out").hidden = !storedToken();
  say("");
  $("#token").focus();
}

function signedIn() {
  return $("#sign-in").hidden;
}

function refused(status, detail, method, path) {
  if (status === 401) {
    const reason = storedToken()
      ? `This node refused the token (${detail}). Sign in with another.`
      : "This node asks for a bearer token.";
    askForToken(reason);
    return new SignInNeeded(reason);
  }
  // 403: the token is valid but lacks the route's scope; the problem's detail names it.
  const scope = /'([a-z]+)' scope/.exec(detail);
  const what = scope ? `the '${scope[1]}' scope` : "a scope";
  return new Error(`403 Forbidden: your token lacks ${what}, needed for ${method} ${path}`);
}

async function call(method, path, body) {
  const init = { method, headers: {} };
  const token = storedToken();
  if (token) init.headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : response.statusText;
    if (response.status === 401 || response.status === 403) {
      throw refused(response.status, detail, method, path.split("?")[0]);
    }
    const errors = data && data.errors ? data.errors.map((e) => e.message).join("; ") : "";
    throw new Error(`${response.status} ${detail}${errors ? ": " + errors : ""}`);
  }
  return data;
}

function say(message, ok = false) {
  const status = $("#status");
  status.textContent = message;
  status.className = ok ? "ok" : "";
  status.hidden = !message;
}

async function attempt(action, success) {
  try {
    const result = await action();
    if (success) say(typeof success === "function" ? success(result) : success, true);
    await refresh();
    return result;
  } catch (error) {
    if (!(error instanceof SignInNeeded)) say(error.message);
    return undefined;
  }
}

function record(queue) {
  let series = history.get(queue.name);
  if (!series) {
    series = Object.fromEntries(RATES.map((rate) => [rate, []]));
    history.set(queue.name, series);
  }
  for (const rate of RATES) {
    series[rate].push(queue[rate]);
    if (series[rate].length > HISTORY_POINTS) series[rate].shift();
  }
  return series;
}

function sparkline(values, label) {
  const width = 120;
  const height = 24;
  const top = Math.max(1, ...values);
  const step = width / (HISTORY_POINTS - 1);
  const offset = HISTORY_POINTS - values.length;
  const points = values
    .map((v, i) => `${((offset + i) * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`)
    .join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("aria-label", label);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

function rateCell(series, rate, value) {
  return el("td", { class: "num", "data-rate": rate }, sparkline(series[rate], rate), " ",
    value.toFixed(1));
}

function field(label, input) {
  return el("label", {}, label, input);
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function optionalInt(value) {
  return value === undefined || value === "" ? undefined : Number(value);
}

// --- the queue list ---------------------------------------------------------------------------

async function showQueues(view) {
  const { queues } = await call("GET", "/API/v1/queues");
  const rows = queues.map((q) => {
    const series = record(q);
    return el("tr", { "data-queue": q.name },
      el("td", {}, el("a", { href: "#/queues/" + encodeURIComponent(q.name) }, q.name)),
      el("td", {}, q.type),
      el("td", { class: "num", "data-count": "ready" }, q.ready),
      el("td", { class: "num", "data-count": "unacked" }, q.unacked),
      el("td", { class: "num", "data-count": "total" }, q.total),
      RATES.slice(0, 3).map((rate) => rateCell(series, rate, q[rate])));
  });
  if (!$("#queues-page", view)) {
    // Built once: the form keeps what is typed while the table refreshes under it.
    view.replaceChildren(el("div", { id: "queues-page" },
      el("h1", {}, "Queues"),
      el("table", { id: "queues" },
        el("thead", {}, el("tr", {}, ["name", "type", "ready", "unacked", "total",
          "enqueue/s", "dequeue/s", "ack/s"].map((h) => el("th", {}, h)))),
        el("tbody")),
      createQueueForm()));
  }
  $("#queues tbody").replaceChildren(...(rows.length ? rows : [el("tr", {},
    el("td", { colspan: 8, class: "muted" }, "No queues yet."))]));
}

function createQueueForm() {
  const form = el("form", { id: "create-queue" },
    field("name", el("input", { name: "name", required: "" })),
    field("type", el("select", { name: "type" }, el("option", {}, "delayed"),
      el("option", {}, "fair"))),
    field("strategy (fair)", el("select", { name: "strategy" }, el("option", { value: "" }, "-"),
      el("option", {}, "round_robin"), el("option", {}, "weighted"))),
    field("max unacked (fair)", el("input", { name: "max_unacked", type: "number", min: 0 })),
    field("ack timeout (s)", el("input", { name: "ack_timeout", type: "number", min: 1 })),
    el("button", { type: "submit" }, "Create queue"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = formValues(form);
    const settings = {};
    if (v.strategy) settings.strategy = v.strategy;
    if (v.max_unacked) settings.max_unacked = Number(v.max_unacked);
    if (v.ack_timeout) settings.ack_timeout = Number(v.ack_timeout);
    attempt(() => call("POST", "/API/v1/queues", { name: v.name, type: v.type, settings }),
      `Queue ${v.name} created`).then(() => form.reset());
  });
  return el("div", {}, el("h2", {}, "New queue"), form);
}

// --- one queue --------------------------------------------------------------------------------

let shownQueue = null; // the queue whose forms are on screen: rebuilt only when it changes

async function showQueue(view, name) {
  const info = await call("GET", queuePath(name));
  const series = record(info);
  const { messages } = await call("GET", queuePath(name) + "/peek?limit=10");
  if (shownQueue !== name || !$("#queue-page", view)) {
    shownQueue = name;
    view.replaceChildren(queuePage(name));
  }
  const s = info.settings;
  $("#queue-title").textContent = `${info.name} (${info.type})`;
  $("#settings").textContent = [`strategy: ${s.strategy || "-"}`,
    `max unacked: ${s.max_unacked}`, `ack timeout: ${s.ack_timeout} s`].join("   ");
  $("#counts").replaceChildren(...["ready", "unacked", "total"].map((key) =>
    el("div", { class: "card" }, el("div", { class: "label" }, key),
      el("div", { class: "value", "data-count": key }, info[key]))),
  ...RATES.map((rate) => el("div", { class: "card", "data-rate": rate },
    el("div", { class: "label" }, rate.replace("_rps", "/s")),
    el("div", { class: "value" }, info[rate].toFixed(1), " "), sparkline(series[rate], rate))));
  $("#peek tbody").replaceChildren(...(messages.length ? messages.map(peekRow(name)) :
    [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No ready messages."))]));
}

function peekRow(name) {
  return (m) => el("tr", { "data-message": m.id },
    el("td", {}, m.id), el("td", {}, m.group), el("td", { class: "num" }, m.priority),
    el("td", {}, m.content), el("td", {}, m.metadata ? JSON.stringify(m.metadata) : ""),
    el("td", {}, el("button", { class: "small danger", onclick: () => {
      if (confirm(`Delete message ${m.id}?`)) {
        attempt(() => call("DELETE", `${queuePath(name)}/messages/${m.id}`), "Message deleted");
      }
    } }, "Delete")));
}

function messageForm(id, title, fields, submit, onSubmit) {
  const form = el("form", { id }, ...fields, el("button", { type: "submit" }, submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(formValues(form), form);
  });
  return el("div", {}, el("h2", {}, title), form);
}

function queuePage(name) {
  const path = queuePath(name);
  const idField = () => field("message id", el("input", { name: "id", required: "" }));
  const shown = el("pre", { id: "dequeued" }, "-");
  return el("div", { id: "queue-page" },
    el("h1", { id: "queue-title" }, name),
    el("div", { id: "settings", class: "muted" }),
    el("div", { id: "counts", class: "cards" }),
    el("h2", {}, "Next messages"),
    el("table", { id: "peek" }, el("thead", {}, el("tr", {}, ["id", "group", "priority",
      "content", "metadata", ""].map((h) => el("th", {}, h)))), el("tbody")),
    el("div", { class: "grid" },
      messageForm("enqueue", "Enqueue", [
        field("content", el("input", { name: "content", required: "" })),
        field("priority", el("input", { name: "priority", type: "number", min: 0, value: 0 })),
        field("group (fair)", el("input", { name: "group", placeholder: "default" })),
        field("metadata (JSON)", el("input", { name: "metadata", placeholder: "{}" })),
      ], "Enqueue", (v) => {
        const body = { content: v.content, priority: Number(v.priority || 0) };
        if (v.group) body.group = v.group;
        if (v.metadata) body.metadata = JSON.parse(v.metadata);
        attempt(() => call("POST", path + "/messages", body), (m) => `Enqueued ${m.id}`);
      }),
      messageForm("dequeue", "Dequeue", [
        field("ack at once", el("input", { name: "ack", type: "checkbox" })),
      ], "Dequeue", (v) => {
        attempt(() => call("GET", `${path}/messages?ack=${v.ack ? "true" : "false"}`),
          (m) => { shown.textContent = JSON.stringify(m, null, 1); return `Dequeued ${m.id}`; });
      }),
      el("div", {}, el("h2", {}, "Dequeued"), shown),
      messageForm("ack", "Ack", [idField()], "Ack", (v) =>
        attempt(() => call("POST", `${path}/messages/${v.id}/ack`), `Acked ${v.id}`)),
      messageForm("nack", "Nack", [idField(), field("new priority (0 keeps)",
        el("input", { name: "priority", type: "number", min: 0, value: 0 }))], "Nack", (v) =>
        attempt(() => call("POST", `${path}/messages/${v.id}/nack`,
          { priority: Number(v.priority || 0) }), `Nacked ${v.id}`)),
      messageForm("priority", "Change priority", [idField(), field("priority",
        el("input", { name: "priority", type: "number", min: 0, required: "" }))], "Update",
      (v) => attempt(() => call("PUT", `${path}/messages/${v.id}/priority`,
        { priority: Number(v.priority) }), `Priority of ${v.id} changed`)),
      messageForm("delete-message", "Delete a message", [idField()], "Delete", (v) => {
        if (confirm(`Delete message ${v.id}?`)) {
          attempt(() => call("DELETE", `${path}/messages/${v.id}`), `Deleted ${v.id}`);
        }
      }),
      messageForm("update-queue", "Settings", [
        field("max unacked", el("input", { name: "max_unacked", type: "number", min: 0 })),
        field("ack timeout (s)", el("input", { name: "ack_timeout", type: "number", min: 1 })),
      ], "Update settings", (v) => {
        const settings = {};
        if (optionalInt(v.max_unacked) !== undefined) settings.max_unacked = Number(v.max_unacked);
        if (optionalInt(v.ack_timeout) !== undefined) settings.ack_timeout = Number(v.ack_timeout);
        attempt(() => call("PUT", path, { settings }), "Settings updated");
      })),
    el("h2", {}, "Danger"),
    el("button", { id: "delete-queue", class: "danger", onclick: () => {
      if (confirm(`Delete queue ${name} and all of its messages?`)) {
        attempt(() => call("DELETE", path), `Queue ${name} deleted`)
          .then(() => { location.hash = "#/"; });
      }
    } }, "Delete queue"));
}

// --- the cluster ------------------------------------------------------------------------------

async function showCluster(view) {
  const { members } = await call("GET", "/API/v1/cluster/members");
  const rows = members.map((m) => el("tr", { "data-member": m.id },
    el("td", {}, m.id), el("td", {}, m.addr), el("td", {}, m.http_addr || "-"),
    el("td", {}, m.reachable ? m.role : "unreachable"), el("td", {}, m.suffrage),
    el("td", { class: "num" }, m.term ?? "-"), el("td", { class: "num" }, m.applied_index ?? "-"),
    el("td", { class: "num" }, m.lag ?? "-"),
    el("td", {},
      !m.is_leader && m.suffrage === "Voter" ? el("button", { class: "small", onclick: () => {
        if (confirm(`Transfer leadership to ${m.id}?`)) {
          attempt(() => call("POST", "/API/v1/cluster/transfer", { id: m.id }),
            `Leadership is moving to ${m.id}`);
        }
      } }, "Make leader") : "",
      " ",
      el("button", { class: "small danger", onclick: () => {
        if (confirm(`Remove ${m.id} from the cluster?`)) {
          attempt(() => call("POST", "/API/v1/cluster/leave", { id: m.id }), `${m.id} removed`);
        }
      } }, "Remove"))));
  view.replaceChildren(
    el("h1", {}, "Cluster"),
    el("table", { id: "members" },
      el("thead", {}, el("tr", {}, ["id", "raft address", "http address", "role", "suffrage",
        "term", "applied", "lag", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
}

// --- routing ----------------------------------------------------------------------------------

async function refresh() {
  if (!signedIn()) return; // nothing to show until a token is given
  const view = $("#view");
  const hash = location.hash || "#/";
  $("#nav-queues").className = hash.startsWith("#/cluster") ? "" : "active";
  $("#nav-cluster").className = hash.startsWith("#/cluster") ? "active" : "";
  try {
    if (hash.startsWith("#/queues/")) {
      await showQueue(view, decodeURIComponent(hash.slice("#/queues/".length)));
    } else {
      shownQueue = null;
      if (hash.startsWith("#/cluster")) await showCluster(view);
      else await showQueues(view);
    }
  } catch (error) {
    if (!(error instanceof SignInNeeded)) say(error.message);
  }
}

async function showNode() {
  try {
    const node = await call("GET", "/API/v1/cluster/node");
    $("#served-by").textContent = `served by ${node.id} (${node.role})`;
  } catch (error) {
    $("#served-by").textContent = "";
    if (!(error instanceof SignInNeeded)) say(error.message);
  }
}

function signIn(event) {
  event.preventDefault();
  const field = $("#token");
  sessionStorage.setItem(TOKEN_KEY, field.value.trim());
  field.value = "";
  $("#sign-in").hidden = true;
  $("#sign-out").hidden = false;
  shownQueue = null;
  showNode().then(refresh);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#served-by").textContent = "";
  askForToken("Signed out.");
}

async function start() {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#sign-out").hidden = !storedToken();
  await showNode();
  window.addEventListener("hashchange", () => { say(""); refresh(); });
  await refresh();
  timer = setInterval(refresh, POLL_MS);
}

start();
