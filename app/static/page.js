// Mental-R1 page: talks to this service's JSON API (GET /tasks, GET /readyz, POST /assess).
// No inline handlers; service text only ever becomes text nodes; nothing stored (no cookies, no web storage).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_TASKS = 8;                                      // app.protocol.MAX_TASKS_PER_REQUEST
  const DEFAULT_TASK = "DR";
  const LOCALE_RE = /^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$/;  // the API's locale pattern
  const maxChars = parseInt(document.body.dataset.maxChars, 10) || 4000;
  const labelOrder = {};                                    // task id -> its labels in the task's order
  let readyText = "";                                       // the status line between assessments

  // a DOM element with attributes and children (strings become text nodes: service text is never parsed as HTML)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  const chars = (s) => Array.from(s).length;               // code points, as the service counts them
  const pct = (p) => (100 * p).toFixed(1) + "%";

  function showError(message, focus) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
    if (focus) focus.focus();
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function showKeyField() {
    $("key-field").hidden = false;
  }

  function retrySeconds(resp) {
    const s = parseInt(resp.headers.get("Retry-After") || "", 10);
    return Number.isFinite(s) && s > 0 ? s : 5;
  }

  // a readable sentence for every error the API can answer (its envelope: {"error": {"type", "message"}})
  function errorMessage(status, message, retryAfter) {
    const msg = (message || "").replace(/Value error, /g, "");
    switch (status) {
      case 401:
        showKeyField();
        return msg === "invalid API key"
          ? "The API key was not accepted. Check it in the API key field and try again."
          : "This service needs an API key: enter it in the API key field above, then press Assess again.";
      case 413:
        return "The text is too large for this service. Shorten it and try again.";
      case 422:
        return "The service could not accept this request: " + msg;
      case 429:
        return "Too many requests. Try again in " + retryAfter + " seconds.";
      case 503:
        return "The service is not ready (" + (msg || "unavailable") + "). Try again in " + retryAfter + " seconds.";
      case 504:
        return "The assessment took longer than the service allows (" + msg + "). " +
          "Try a shorter text or fewer tasks.";
      default:
        return "The service answered with an error (HTTP " + status + ")" + (msg ? ": " + msg : ".");
    }
  }

  async function errorFrom(resp) {
    let message = "";
    try {
      const body = await resp.json();
      message = body && body.error && body.error.message ? body.error.message : "";
    } catch (_) { /* not JSON: the status says enough */ }
    return errorMessage(resp.status, message, retrySeconds(resp));
  }

  // ----- service status (the model may still be loading) -----
  async function checkReady() {
    const status = $("status");
    try {
      const resp = await fetch("readyz", { cache: "no-store" });
      if (resp.ok) {
        const body = await resp.json();
        readyText = body.model ? "Model " + body.model.name + " " + body.model.version + ": ready." : "Ready.";
        status.textContent = readyText;
        return;
      }
      let msg = "";
      try { msg = (await resp.json()).error.message; } catch (_) { /* keep it empty */ }
      status.textContent = "The service is not ready yet (" + (msg || "HTTP " + resp.status) + "); checking again shortly.";
      setTimeout(checkReady, 1000 * Math.min(retrySeconds(resp), 30));
    } catch (_) {
      status.textContent = "The service cannot be reached.";
    }
  }

  // ----- tasks -----
  async function loadTasks() {
    const box = $("tasks");
    let tasks;
    try {
      const resp = await fetch("tasks", { cache: "no-store" });
      if (!resp.ok) throw new Error(await errorFrom(resp));
      tasks = await resp.json();
    } catch (e) {
      box.replaceChildren(el("p", {}, "The list of tasks could not be loaded. Reload the page to try again."));
      return;
    }
    box.replaceChildren(...tasks.map((t, i) => {
      labelOrder[t.id] = Object.keys(t.labels);
      const id = "task-" + i;
      return el("label", { for: id },
        el("input", { type: "checkbox", id: id, value: t.id, checked: t.id === DEFAULT_TASK }),
        el("span", {}, el("code", {}, t.id), " ", t.question));
    }));
  }

  function pickedTasks() {
    return Array.from($("tasks").querySelectorAll("input[type=checkbox]:checked")).map((c) => c.value);
  }

  // ----- results -----
  function signalName(s) {
    if (typeof s === "string") return s.replace(/_/g, " ");
    const name = s.category || s.signal || s.name || "signal";
    return name.replace(/_/g, " ") + (s.source ? " (" + s.source + ")" : "");
  }

  // safety.urgent (an attempt in progress): the resources go to the top of the page, the emergency number first
  // (the service orders them), under a heading that says to call it now
  function crisisBlock(safety) {
    const signals = (safety.signals || []).map(signalName);
    const heading = safety.urgent
      ? "Emergency: this text may describe an attempt in progress. Call the emergency number now"
      : "Crisis resources: if someone may be in danger, reach out now";
    return el("section", { class: safety.urgent ? "crisis urgent" : "crisis", "aria-labelledby": "crisis-heading" },
      el("h2", { id: "crisis-heading" }, heading),
      el("p", {}, "This text shows signs of a possible crisis" +
        (safety.level ? " (level: " + safety.level + ")" : "") +
        (signals.length ? ": " + signals.join(", ") + "." : ".")),
      el("ul", {}, (safety.resources || []).map((r) =>
        el("li", {}, el("strong", {}, r.name), ": " + r.contact + (r.available ? " (" + r.available + ")" : "")))));
  }

  function stageBlock(stage) {
    return el("section", { class: "stage" },
      el("h5", {}, stage.title),
      stage.text
        ? el("p", {}, stage.text)
        : el("p", { class: "missing" }, "Missing: the model did not write this stage."));
  }

  function taskBlock(a, n) {
    const order = (labelOrder[a.task] || []).filter((l) => l in a.probabilities);
    const labels = order.length ? order : Object.keys(a.probabilities);
    const head = "task-heading-" + n;
    return el("article", { class: "task", "aria-labelledby": head },
      el("h3", { id: head }, el("code", {}, a.task), " " + a.question),
      el("p", { class: "label-sentence" }, "Label: ", el("strong", {}, a.label_text), " (" + a.label + ")",
        a.uncertain ? [" ", el("span", { class: "uncertain" }, a.uncertain)] : null),  // a label set of 2+ labels
      el("p", {}, "Confidence: ", el("strong", {}, pct(a.confidence)),
        " (the calibrated probability of this label)"),
      el("h4", {}, "Label probabilities"),
      el("ul", { class: "probs" }, labels.map((label, j) => {
        const id = "prob-" + n + "-" + j;
        const chosen = label === a.label;
        return el("li", { class: chosen ? "chosen" : null },
          el("span", { id: id }, label + (chosen ? " (chosen)" : "")),
          el("meter", { min: 0, max: 1, value: a.probabilities[label], "aria-labelledby": id }),
          el("span", { class: "pct" }, pct(a.probabilities[label])));
      })),
      el("h4", {}, "Reasoning in five appraisal stages"),
      a.stages.map(stageBlock),
      a.reasoning_agrees === false ? el("p", { class: "issues" },
        "None of the model's reasonings for this post led to this label on its own: read the stages with care.") : null,
      a.format_valid ? null : el("p", { class: "issues" },
        "The model's output departed from the expected format: " + a.format_issues.join("; ") + "."));
  }

  function render(r) {
    const results = $("results");
    const safety = r.safety || {};
    const urgent = Boolean(safety.crisis && safety.urgent);
    $("urgent").replaceChildren(...(urgent ? [crisisBlock(safety)] : []));
    $("urgent").hidden = !urgent;
    const blocks = [
      safety.crisis && !urgent ? crisisBlock(safety) : null,  // crisis resources come first
      el("h2", { id: "results-heading" }, "Assessment"),
      el("p", { class: "disclaimer" }, safety.disclaimer || ""),
      r.assessments.map(taskBlock),
      el("p", { class: "meta" }, "Model " + r.model.name + " " + r.model.version + ", " +
        (r.latency_ms / 1000).toFixed(1) + " s."),
    ];
    results.replaceChildren(...blocks.flat().filter(Boolean));
    results.hidden = false;
    (urgent ? $("urgent") : results).focus();             // an emergency is read first
  }

  // ----- submit -----
  async function onSubmit(ev) {
    ev.preventDefault();
    clearError();
    const text = $("text").value;
    const tasks = pickedTasks();
    if (!text.trim()) return showError("Enter a text to assess.", $("text"));
    if (chars(text) > maxChars) {
      return showError("The text is " + chars(text) + " characters; the limit is " + maxChars + ".", $("text"));
    }
    if (!tasks.length) return showError("Pick at least one task.", $("tasks").querySelector("input"));
    if (tasks.length > MAX_TASKS) return showError("Pick at most " + MAX_TASKS + " tasks.", $("tasks").querySelector("input"));
    const payload = { text: text, tasks: tasks };
    const locale = $("locale").value.trim();
    if (locale && LOCALE_RE.test(locale)) payload.locale = locale;
    const headers = { "Content-Type": "application/json" };
    const key = $("key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;

    const button = $("submit");
    button.disabled = true;
    button.textContent = "Assessing…";
    $("status").textContent = "Assessing " + tasks.length + (tasks.length > 1 ? " tasks" : " task") +
      "; each takes a few seconds.";
    try {
      let resp;
      try {
        resp = await fetch("assess", { method: "POST", headers: headers, body: JSON.stringify(payload),
          cache: "no-store", referrerPolicy: "no-referrer" });
      } catch (_) {
        return showError("The service could not be reached. Check that it is running, then try again.");
      }
      if (!resp.ok) return showError(await errorFrom(resp), resp.status === 401 ? $("key") : null);
      render(await resp.json());
    } finally {
      $("status").textContent = readyText;
      button.disabled = false;
      button.textContent = "Assess";
    }
  }

  function updateCount() {
    const n = chars($("text").value);
    $("count").textContent = n + " of " + maxChars + " characters";
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.keyRequired === "true") showKeyField();
    const lang = navigator.language || "";
    if (LOCALE_RE.test(lang)) $("locale").value = lang;
    $("form").addEventListener("submit", onSubmit);
    $("text").addEventListener("input", updateCount);
    updateCount();
    loadTasks();
    checkReady();
  });
})();
