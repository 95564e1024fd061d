// nsnet's topology view: polls the view's JSON every two seconds and
// swaps in the SVG the daemon draws (statuses, reasons, counters), keeps
// the selection and a trace's overlay across refreshes, fills the
// attributes panel, asks for explain, and runs traces. No dependencies.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let view = null;          // the last /ui/api/view answer
  let selected = null;      // data-id of the selected node
  let overlay = null;       // {signature, svg} of the trace drawn
  let polling = null;

  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (resp.status === 401) {
      location.reload(); // back to the login form
      throw new Error("not logged in");
    }
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    return body;
  }

  function render(v) {
    view = v;
    $("graph").innerHTML = v.svg;
    const svg = $("topology");
    if (overlay && overlay.signature === v.signature) {
      $("trace-overlay").innerHTML = overlay.svg;
      svg.classList.add("traced");
    }
    if (selected) {
      const g = svg.querySelector(`.node[data-id="${CSS.escape(selected)}"]`);
      if (g) g.classList.add("selected");
      showDetails(selected, false);
    }
    fillSources();
  }

  async function refresh() {
    try {
      render(await api("/ui/api/view"));
      $("live").textContent = "live · " + new Date().toLocaleTimeString();
      $("live").classList.remove("stale");
    } catch (e) {
      $("live").textContent = "stale: " + e.message;
      $("live").classList.add("stale");
    }
  }

  function nodeOf(id) {
    return view && view.nodes.find((n) => n.id === id);
  }

  function row(table, key, value) {
    const tr = table.insertRow();
    tr.insertCell().textContent = key;
    tr.insertCell().textContent = value;
  }

  function showDetails(id, fresh) {
    const n = nodeOf(id);
    if (!n) return;
    $("details-empty").hidden = true;
    $("details-title").textContent = n.kind.replace("_", " ") + " " + n.name;
    const attrs = $("details-attrs");
    attrs.replaceChildren();
    if (n.reason) row(attrs, "reason", n.reason);
    for (const a of n.attrs) row(attrs, a.key, a.value);
    const counters = $("details-counters");
    counters.replaceChildren();
    if (n.counters) {
      const c = n.counters;
      row(counters, "received", `${c.RxBytes} B, ${c.RxPackets} packets`);
      row(counters, "sent", `${c.TxBytes} B, ${c.TxPackets} packets`);
      const drops = c.drops || {};
      const reasons = Object.keys(drops);
      if (reasons.length === 0) row(counters, "drops", "none");
      for (const r of reasons) row(counters, "drops: " + r, String(drops[r]));
    }
    const canExplain = ["router", "network", "external_network", "instance"].includes(n.kind);
    $("explain-button").hidden = !canExplain;
    if (fresh) $("explain-output").hidden = true;
  }

  function select(id) {
    const svg = $("topology");
    svg.querySelectorAll(".node.selected").forEach((g) => g.classList.remove("selected"));
    selected = id;
    const g = svg.querySelector(`.node[data-id="${CSS.escape(id)}"]`);
    if (g) g.classList.add("selected");
    showDetails(id, true);
  }

  async function explain() {
    const out = $("explain-output");
    out.hidden = false;
    out.textContent = "explaining…";
    try {
      const body = await api("/ui/api/explain?node=" + encodeURIComponent(selected));
      out.textContent = body.script;
    } catch (e) {
      out.textContent = "explain failed: " + e.message;
    }
  }

  function fillSources() {
    const sel = $("trace-source");
    const keep = sel.value;
    const options = [];
    for (const n of view.nodes) {
      if (n.kind === "instance") options.push(["source", n.name, n.name]);
    }
    for (const n of view.nodes) {
      if (n.kind === "external_network") options.push(["from_external", n.name, "outside, on " + n.name]);
    }
    const key = JSON.stringify(options);
    if (sel.dataset.key === key) return;
    sel.dataset.key = key;
    sel.replaceChildren();
    for (const [field, value, text] of options) {
      const o = document.createElement("option");
      o.value = field + ":" + value;
      o.textContent = text;
      sel.appendChild(o);
    }
    if (keep) sel.value = keep;
    $("trace-button").disabled = !view.can_trace;
    if (!view.can_trace) $("trace-status").textContent = "Tracing needs a member's or an admin's token.";
  }

  async function runTrace(ev) {
    ev.preventDefault();
    const [field, ...rest] = $("trace-source").value.split(":");
    const req = { destination: $("trace-destination").value, protocol: $("trace-protocol").value };
    req[field] = rest.join(":");
    if (req.protocol !== "icmp") req.port = Number($("trace-port").value);
    $("trace-status").textContent = "tracing… (captures on every hop; a few seconds)";
    $("trace-button").disabled = true;
    try {
      const body = await api("/ui/api/trace", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req),
      });
      overlay = { signature: body.view.signature, svg: body.overlay };
      render(body.view);
      const r = body.result;
      $("trace-status").textContent = r.answered ? "answered: " + r.answer : "stopped: the probe or its answer went no further";
      $("trace-status").dataset.answered = String(r.answered);
      const out = $("trace-output");
      out.hidden = false;
      out.textContent = body.text;
    } catch (e) {
      $("trace-status").textContent = "trace failed: " + e.message;
    } finally {
      $("trace-button").disabled = !view.can_trace;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("graph").addEventListener("click", (ev) => {
      const g = ev.target.closest(".node");
      if (g) select(g.dataset.id);
    });
    $("graph").addEventListener("keydown", (ev) => {
      const g = ev.target.closest(".node");
      if (g && (ev.key === "Enter" || ev.key === " ")) select(g.dataset.id);
    });
    $("explain-button").addEventListener("click", explain);
    $("trace-form").addEventListener("submit", runTrace);
    $("trace-clear").addEventListener("click", () => {
      overlay = null;
      $("trace-overlay").replaceChildren();
      $("trace-output").hidden = true;
      $("trace-status").textContent = "";
    });
    $("trace-protocol").addEventListener("change", () => {
      $("trace-port").disabled = $("trace-protocol").value === "icmp";
    });
    refresh();
    polling = setInterval(refresh, 2000);
  });
})();
