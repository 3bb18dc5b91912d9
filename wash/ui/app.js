// The dashboard: renders /api/snapshot, refreshes it on every lattice
// event from /api/events (and every few seconds, for uptimes and rates),
// and lists the events as they arrive.

const MAX_EVENTS = 100;
const REFRESH_MS = 5000;

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function rows(table, items, cells) {
  const body = $(`${table} tbody`);
  body.replaceChildren(...items.map((item) => el("tr", {}, ...cells(item).map((c) => el("td", {}, c)))));
  if (items.length === 0) body.append(el("tr", {}, el("td", { class: "muted", colspan: "4" }, "none")));
}

function rate(snapshot, component) {
  if (!Object.hasOwn(snapshot.rates, component)) return "";
  const r = snapshot.rates[component];
  return `${r.requests_per_second.toFixed(1)} req/s, ${r.errors_per_second.toFixed(1)} err/s`;
}

function renderHosts(snapshot) {
  const hosts = snapshot.hosts.map((host) => {
    const labels = Object.entries(host.labels).map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`));
    const components = el("table", {},
      el("thead", {}, el("tr", {}, ...["component", "image", "max instances", "rate"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...host.components.map((c) =>
        el("tr", { "data-component": c.id, "data-max": String(c.max_instances) },
          el("td", { class: "mono" }, c.id),
          el("td", { class: "mono muted" }, c.image_ref),
          el("td", { class: "max" }, c.max_instances),
          el("td", {}, rate(snapshot, c.id))))));
    const providers = el("table", {},
      el("thead", {}, el("tr", {}, ...["provider", "image", "name"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...host.providers.map((p) =>
        el("tr", { "data-provider": p.id },
          el("td", { class: "mono" }, p.id),
          el("td", { class: "mono muted" }, p.image_ref ?? ""),
          el("td", {}, p.name ?? "")))));
    return el("div", { class: "host", "data-host": host.host_id },
      el("h3", {}, host.friendly_name, " ", el("span", { class: "mono muted" }, host.host_id)),
      el("div", { class: "muted" }, `version ${host.version}, up ${host.uptime_human}`),
      el("div", {}, ...labels),
      components, providers);
  });
  $("#hosts").replaceChildren(...(hosts.length ? hosts : [el("p", { class: "muted" }, "no hosts")]));
}

function render(snapshot) {
  $("#lattice").textContent = snapshot.lattice;
  renderHosts(snapshot);
  rows("#apps", snapshot.apps, (app) => [
    app.name,
    app.deployed_version ?? app.latest_version,
    el("span", { class: `status-${app.status?.status ?? "undeployed"}`, "data-app-status": app.name }, app.status?.status ?? "undeployed"),
    (app.status?.reasons ?? []).join("; "),
  ]);
  rows("#links", snapshot.links, (link) => [
    link.source_id,
    link.target,
    link.name,
    `${link.wit_namespace}:${link.wit_package}/{${link.interfaces.join(",")}}`,
  ]);
  $("#config").replaceChildren(...snapshot.config.map((name) => el("li", { class: "mono" }, name)));
  $("#status").textContent = snapshot.wadm_error ? `wadm: ${snapshot.wadm_error}` : `updated ${new Date().toLocaleTimeString()}`;
}

let pending = null;
async function refresh() {
  pending = null;
  try {
    const response = await fetch("/api/snapshot");
    render(await response.json());
  } catch (err) {
    $("#status").textContent = `cannot reach wash ui: ${err}`;
  }
}

function soon() {
  if (pending === null) pending = setTimeout(refresh, 100);
}

function follow() {
  const source = new EventSource("/api/events");
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const type = (event.type ?? "").replace(/^com\.wasmcloud\.lattice\./, "");
    const data = event.data ?? {};
    const subject = data.component_id ?? data.provider_id ?? data.host_id ?? "";
    const list = $("#events");
    list.prepend(el("li", {}, `${new Date().toLocaleTimeString()} ${type} ${subject}`));
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
    soon();
  };
}

refresh();
follow();
setInterval(refresh, REFRESH_MS);
