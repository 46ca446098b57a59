// The web view: the cluster as cytoscape draws it, flows as they come (server-sent
// events), a trace drawn over the map, and the details of what is clicked.
"use strict";

const VERDICT_COLOURS = {FORWARDED: "#2e8b57", TRANSLATED: "#1f77b4", DROPPED: "#c0392b", REJECTED: "#d35400",
                         AUDIT: "#8e44ad"};
const NAMESPACE_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];
const MAX_ROWS = 200;

const cy = cytoscape({
  container: document.getElementById("map"),
  wheelSensitivity: 0.3,
  style: [
    {selector: "node", style: {"label": "data(label)", "font-size": 10, "text-wrap": "wrap", "text-valign": "bottom",
                               "text-margin-y": 3, "width": 18, "height": 18, "background-color": "data(colour)"}},
    {selector: "node.machine", style: {"shape": "round-rectangle", "background-color": "#eef1f5",
                                       "border-color": "#9aa5b1", "border-width": 1, "text-valign": "top",
                                       "font-size": 12, "font-weight": "bold", "padding": 18}},
    {selector: "node.service", style: {"shape": "diamond", "background-color": "#34495e", "width": 22, "height": 22}},
    {selector: "node.outside", style: {"shape": "hexagon", "background-color": "#7f8c8d"}},
    {selector: "edge", style: {"width": 2, "curve-style": "bezier", "target-arrow-shape": "triangle",
                               "line-color": "data(colour)", "target-arrow-color": "data(colour)", "opacity": 0.8}},
    {selector: "edge.trace", style: {"line-color": "#f1c40f", "target-arrow-color": "#f1c40f", "width": 4,
                                     "line-style": "dashed", "z-index": 10}},
    {selector: ".on-trace", style: {"border-color": "#f1c40f", "border-width": 4}},
  ],
});
window.cy = cy;  // for the browser test and for curious people at the console

const byAddress = {};  // IP (of either family) -> map element id

function addressesOf(thing) {
  // a dual-stack pod, node or Service has an address per family, the primary first
  return thing.ips || thing.clusterIPs || (thing.ip ? [thing.ip] : []);
}

function namespaceColour(namespace) {
  let hash = 0;
  for (const c of namespace) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return NAMESPACE_COLOURS[hash % NAMESPACE_COLOURS.length];
}

async function loadCluster() {
  const cluster = await (await fetch("/api/cluster")).json();
  document.getElementById("lab").textContent = `lab ${cluster.lab} · ${cluster.backend} · pods ${cluster.podSubnet}`;
  const elements = [];
  cluster.nodes.forEach((node, i) => {
    elements.push({group: "nodes", classes: "machine", data: {id: `node:${node.name}`, kind: "node", name: node.name,
                   label: `${node.name} ${addressesOf(node).join(" ")}`}});
    addressesOf(node).forEach(address => { byAddress[address] = `node:${node.name}`; });
    const pods = cluster.pods.filter(p => p.node === node.name);
    pods.forEach((pod, j) => {
      const id = `pod:${pod.namespace}/${pod.name}`;
      const addresses = addressesOf(pod);
      addresses.forEach(address => { byAddress[address] = id; });
      elements.push({group: "nodes", data: {id, parent: `node:${node.name}`, kind: "pod", namespace: pod.namespace,
                     name: pod.name, ip: pod.ip, ips: addresses, ready: pod.ready,
                     label: `${pod.namespace}/${pod.name}\n${addresses.join("\n")}`,
                     colour: namespaceColour(pod.namespace)},
                     position: {x: i * 330 + (j % 2) * 150, y: Math.floor(j / 2) * 70}});
    });
  });
  cluster.services.forEach((service, k) => {
    const id = `svc:${service.namespace}/${service.name}`;
    const addresses = addressesOf(service);
    addresses.forEach(address => { byAddress[address] = id; });
    elements.push({group: "nodes", classes: "service", data: {id, kind: "service",
                   label: `svc ${service.namespace}/${service.name}\n${addresses.join("\n")}`},
                   position: {x: k * 170, y: -170}});
  });
  cy.add(elements);
  cy.layout({name: "preset", fit: true, padding: 30}).run();
  document.body.dataset.ready = "true";
}

function endOf(address, pod, node) {
  if (pod) return `pod:${pod}`;
  if (node) return `node:${node}`;
  if (byAddress[address]) return byAddress[address];
  const id = `ip:${address}`;
  if (cy.getElementById(id).empty()) {
    cy.add({group: "nodes", classes: "outside", data: {id, label: address}, position: {x: -160, y: -170}});
  }
  return id;
}

function ensurePod(id) {
  // a pod the map did not have when it was drawn (made since, or gone): drawn on its own
  if (id.startsWith("pod:") && cy.getElementById(id).empty()) {
    cy.add({group: "nodes", data: {id, label: id.slice(4), colour: "#bbb"}, position: {x: -160, y: 0}});
  }
  return id;
}

function addEdge(from, to, verdict) {
  ensurePod(from);
  ensurePod(to);
  const id = `${from}->${to}:${verdict}`;
  if (from === to || !cy.getElementById(id).empty()) return;
  cy.add({group: "edges", data: {id, source: from, target: to, colour: VERDICT_COLOURS[verdict] || "#999"}});
}

function drawFlow(flow) {
  try {
    drawFlowEdges(flow);
  } catch (error) {  // one flow the map cannot show must not stop the others
    console.warn("flow not drawn", flow, error);
  }
}

function drawFlowEdges(flow) {
  const source = endOf(flow.source, flow.source_pod, flow.source_node);
  if (flow.service) {
    const service = `svc:${flow.service.split(":")[0]}`;
    if (!cy.getElementById(service).empty()) {
      addEdge(source, service, flow.verdict);
      if (flow.endpoint_pod) addEdge(service, `pod:${flow.endpoint_pod}`, flow.verdict);
      return;
    }
  }
  addEdge(source, endOf(flow.destination, flow.destination_pod, flow.destination_node), flow.verdict);
}

function end(address, port, pod, node) {
  const where = pod || (node ? `node/${node}` : address);
  return port ? `${where.includes(":") ? `[${where}]` : where}:${port}` : where;  // an IPv6 address in brackets
}

function summary(flow) {
  const parts = [];
  if (flow.service) parts.push(`svc ${flow.service} -> ${flow.endpoint_pod || flow.endpoint}`);
  if (flow.masqueraded_to) parts.push(`masqueraded to ${flow.masqueraded_to}`);
  if (flow.reason) parts.push(flow.reason + (flow.policy ? `: ${flow.policy}` : ""));
  if (flow.tcp_flags) parts.push(flow.tcp_flags);
  return parts.join("; ");
}

function addRow(flow) {
  const body = document.querySelector("#flows tbody");
  const row = body.insertRow(0);
  const cells = [new Date(flow.time * 1000).toLocaleTimeString(), flow.node,
                 end(flow.source, flow.source_port, flow.source_pod, flow.source_node),
                 end(flow.destination, flow.destination_port, flow.destination_pod || flow.service.split(":")[0],
                     flow.destination_node), flow.protocol, flow.verdict, summary(flow)];
  cells.forEach((text, i) => {
    const cell = row.insertCell();
    if (i === 5) {
      const badge = document.createElement("span");
      badge.className = `v ${flow.verdict}`;
      badge.textContent = text;
      cell.appendChild(badge);
    } else {
      cell.textContent = text;
    }
    if (i === 6) cell.className = "summary";
  });
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

let stream = null;

function filterQuery() {
  const form = new FormData(document.getElementById("filters"));
  const query = new URLSearchParams();
  for (const [key, value] of form.entries()) if (value) query.append(key, value);
  return query.toString();
}

async function followFlows() {
  if (stream) stream.close();
  const query = filterQuery();
  document.querySelector("#flows tbody").innerHTML = "";
  const answer = await (await fetch(`/api/flows?${query}`)).json();
  document.getElementById("flows-error").textContent = answer.error || "";
  if (answer.error) return;  // a filter that means nothing (an IP that is none): no stream either
  for (const flow of answer) {
    addRow(flow);
    drawFlow(flow);
  }
  stream = new EventSource(`/api/flows/stream?${query}`);
  stream.onmessage = event => {
    const flow = JSON.parse(event.data);
    addRow(flow);
    drawFlow(flow);
  };
}

function drawTrace(trace) {
  cy.elements(".trace").remove();
  cy.elements(".on-trace").removeClass("on-trace");
  const list = document.getElementById("trace-steps");
  list.innerHTML = "";
  const shared = [];  // the steps before a service picks an endpoint
  const paths = {};  // then each endpoint's
  trace.steps.forEach(step => {
    const item = document.createElement("li");
    item.className = step.action;
    item.textContent = `${step.path ? `[path ${step.path}] ` : ""}${step.node ? `[${step.node}] ` : ""}` +
                       `${step.action}: ${step.text}`;
    const decided = document.createElement("span");
    decided.className = "decided";
    decided.textContent = step.decided_by;
    item.appendChild(decided);
    list.appendChild(item);
    // on the map: the node where the step happens, then the pods it names
    const names = [...step.text.matchAll(/pod ([\w.-]+\/[\w.-]+)/g)].map(m => `pod:${m[1]}`);
    if (step.node) names.unshift(`node:${step.node}`);
    if (step.path) (paths[step.path] = paths[step.path] || []).push(...names);
    else shared.push(...names);
  });
  const routes = Object.keys(paths).length ? Object.values(paths).map(names => shared.concat(names)) : [shared];
  const inside = (pod, node) => pod && node && cy.getElementById(pod).parent().id() === node;
  routes.forEach(names => {
    const known = names.filter(id => !cy.getElementById(id).empty())
                       .filter((id, i, all) => i === 0 || all[i - 1] !== id);
    // a node next to one of its own pods adds nothing: the pod is drawn inside it
    const present = known.filter((id, i) => !(id.startsWith("node:") &&
                                               (inside(known[i - 1], id) || inside(known[i + 1], id))));
    present.forEach(id => cy.getElementById(id).addClass("on-trace"));
    for (let i = 1; i < present.length; i++) {
      const id = `trace:${present[i - 1]}->${present[i]}`;
      if (cy.getElementById(id).empty()) {
        cy.add({group: "edges", classes: "trace", data: {id, source: present[i - 1], target: present[i],
                                                         colour: "#f1c40f"}});
      }
    }
  });
}

document.getElementById("trace-form").addEventListener("submit", async event => {
  event.preventDefault();
  const query = new URLSearchParams(new FormData(event.target)).toString();
  const answer = await (await fetch(`/api/trace?${query}`)).json();
  document.getElementById("trace-error").textContent = answer.error || "";
  if (!answer.error) drawTrace(answer);
});

document.getElementById("filters").addEventListener("change", followFlows);

function showDetails(details) {
  const box = document.getElementById("details");
  box.innerHTML = "";
  const list = document.createElement("dl");
  const add = (term, value) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = Array.isArray(value) ? (value.join(", ") || "–") : value;
    list.append(dt, dd);
  };
  add(details.kind, details.name);
  if (details.kind === "pod") {
    add("IPs", addressesOf(details)); add("node", details.node); add("ready", String(details.ready));
    add("labels", Object.entries(details.labels).map(([k, v]) => `${k}=${v}`));
    add("ports", details.ports);
    add("ingress policies", details.policies.Ingress); add("egress policies", details.policies.Egress);
  } else {
    add("IPs", addressesOf(details)); add("pod subnets", details.podCIDRs || [details.podCIDR]);
    add("bridge", details.gateways || [details.gateway]);
    add("backend", details.backend); add("routes", details.routes); add("pods", details.pods);
  }
  box.appendChild(list);
}

cy.on("tap", "node", async event => {
  const data = event.target.data();
  const url = data.kind === "pod" ? `/api/pod/${data.namespace}/${data.name}` :
              data.kind === "node" ? `/api/node/${data.name}` : null;
  if (url) showDetails(await (await fetch(url)).json());
});

loadCluster().then(followFlows);
