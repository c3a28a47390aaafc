// The Partners console: live rows, the Action menu's panels, and writes that show their
// refusal next to the field. Plain JavaScript, no build step; the page works as HTML first.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

function announce(text) {
  const region = document.getElementById("announce");
  if (region) region.textContent = text;
}

// The count above the table, once rows came or went live.
function count() {
  const shown = document.querySelectorAll("#partners tbody tr").length;
  document.getElementById("count").textContent = `${shown} partners shown`;
}

// Rows pushed by the server as the watch sees them change.
function live() {
  const table = document.querySelector("#partners tbody");
  if (!table) return;
  const url = new URL("/events" + location.search, location.href);
  if (table.closest("table").dataset.listed !== "true") url.searchParams.set("unlisted", "1");
  const source = new EventSource(url);
  source.addEventListener("row", (event) => {
    const { id, html } = JSON.parse(event.data);
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const row = template.content.firstElementChild;
    const old = document.getElementById(id);
    if (old) {
      if (old.querySelector("details[open]")) return; // the user is choosing: keep it
      old.replaceWith(row);
    } else {
      // A new row joins the last page while it has room; other pages show it once reloaded.
      const box = table.closest("table").dataset;
      if (box.room === "true" && table.rows.length < Number(box.pageSize)) table.appendChild(row);
    }
    count();
  });
  source.addEventListener("remove", (event) => {
    const old = document.getElementById(JSON.parse(event.data).id);
    if (old) old.remove();
    count();
  });
  source.addEventListener("reload", () => location.reload());
}

function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((e) => (e.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function showRefusal(form, answer) {
  let placed = false;
  for (const [field, message] of Object.entries(answer.fields || {})) {
    const slot = form.querySelector(`[data-error-for="${field}"]`);
    const input = form.querySelector(`[name="${field}"]`);
    if (slot) {
      slot.textContent = message;
      placed = true;
      if (input) input.setAttribute("aria-invalid", "true");
    }
  }
  const general = form.querySelector(".form-error");
  const conflict = form.querySelector(".conflict");
  if (answer.conflicts && conflict) {
    conflict.hidden = false;
    conflict.querySelector(".conflict-text").textContent = answer.message;
  }
  if (answer.forbidden) {
    general.textContent = answer.forbidden + " (" + answer.message + ")";
  } else if (!placed) {
    general.textContent = answer.message;
  }
  const first = form.querySelector("[aria-invalid]");
  if (first) first.focus();
}

async function submit(form) {
  clearErrors(form);
  const body = new URLSearchParams(new FormData(form));
  let answer;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body,
      credentials: "same-origin",
    });
    answer = await response.json();
  } catch (error) {
    answer = { ok: false, message: "The console did not answer: " + error };
  }
  if (answer.ok) {
    form.closest("dialog").close();
    announce(answer.message);
  } else {
    showRefusal(form, answer);
  }
}

function slug(text) {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63);
}

function openPanel(button) {
  const action = button.dataset.action;
  const dialog = document.getElementById("dialog-" + action);
  if (!dialog) return;
  const form = dialog.querySelector("form");
  form.reset();
  clearErrors(form);
  const conflict = form.querySelector(".conflict");
  if (conflict) conflict.hidden = true;
  const row = button.closest("tr");
  if (row) {
    form.elements.namespace.value = row.dataset.namespace;
    form.elements.name.value = row.dataset.name;
    const organization = row.querySelector("th a").textContent;
    form.querySelector(".target").textContent = `${organization} (${row.dataset.namespace}/${row.dataset.name})`;
    row.querySelector("details").open = false;
  }
  if (action === "auto-upgrade") {
    const on = button.dataset.on === "true";
    form.querySelector(on ? "#upgrade-on" : "#upgrade-off").checked = true;
    const end = button.dataset.trialEnd;
    const notice = button.dataset.notice;
    let text = "The partner is not in a trial: automatic upgrade matters only during one.";
    if (end) {
      text = `The trial ends on ${end}.`;
      text += notice ? ` The upgrade notice goes out on ${notice}.` : " No upgrade notice is sent.";
    }
    form.querySelector(".trial-end").textContent = text;
  }
  if (action === "delete") {
    form.querySelector(".tenant-fate").textContent = button.dataset.fate;
  }
  dialog.showModal();
  const first = form.querySelector("input:not([type=hidden]), select");
  if (first) first.focus();
}

function wire() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) openPanel(button);
    const close = event.target.closest("[data-close]");
    if (close) close.closest("dialog").close();
  });
  document.querySelectorAll("dialog form").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(form);
    });
  });
  const org = document.getElementById("add-org");
  const name = document.getElementById("add-name");
  if (org && name) {
    name.addEventListener("input", () => (name.dataset.edited = "1"));
    org.addEventListener("input", () => {
      if (!name.dataset.edited) name.value = slug(org.value);
    });
  }
  const search = document.getElementById("search");
  if (search) {
    let timer;
    search.q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => search.submit(), 400);
    });
    search.level.addEventListener("change", () => search.submit());
  }
  live();
}

document.addEventListener("DOMContentLoaded", wire);
