// dd0c/run console: progressive enhancement only. Every page works without this script;
// with it, the paste preview updates as you type, live executions refresh themselves and
// escalation deadlines count down.
"use strict";

function csrfToken() {
  const main = document.getElementById("main");
  return main ? main.dataset.csrf || "" : "";
}

async function fragment(url, body) {
  const init = { headers: { "X-Ddoc-Fragment": "1" }, credentials: "same-origin" };
  if (body) {
    init.method = "POST";
    init.headers["X-CSRF-Token"] = csrfToken();
    init.body = body;
  }
  const response = await fetch(url, init);
  return { ok: response.ok, status: response.status, html: await response.text() };
}

// Replace a region's HTML, keeping the keyboard focus on the same control (by id).
function swap(region, html) {
  const focused = document.activeElement && region.contains(document.activeElement)
    ? document.activeElement.id : null;
  const typed = {};
  region.querySelectorAll("input[id], textarea[id]").forEach((el) => {
    if (el.value) typed[el.id] = el.value;
  });
  region.innerHTML = html;
  Object.entries(typed).forEach(([id, value]) => {
    const el = document.getElementById(id);
    if (el && !el.value) el.value = value;
  });
  if (focused) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
}

function setUpPreview() {
  const form = document.getElementById("paste-form");
  if (!form) return;
  const content = form.querySelector("#content");
  const preview = document.getElementById("preview");
  const status = document.getElementById("preview-status");
  let timer = null;
  let sent = 0;
  const refresh = async () => {
    const mine = ++sent;
    status.textContent = "Parsing…";
    const body = new URLSearchParams();
    ["content", "format", "source_path"].forEach((name) => {
      const el = form.elements.namedItem(name);
      if (el) body.set(name, el.value);
    });
    try {
      const answer = await fragment(form.dataset.preview, body);
      if (mine !== sent) return; // a newer paste is on its way
      preview.innerHTML = answer.html;
      status.textContent = answer.ok ? "Preview up to date." : "The preview failed.";
    } catch (err) {
      status.textContent = "The preview failed: " + err;
    }
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
  form.addEventListener("input", (event) => {
    if (event.target.type !== "file") soon();
  });
  const file = form.querySelector("#file");
  if (file) {
    file.addEventListener("change", () => {
      const chosen = file.files && file.files[0];
      if (!chosen) return;
      const reader = new FileReader();
      reader.onload = () => {
        content.value = reader.result;
        const name = chosen.name.toLowerCase();
        const fmt = form.elements.namedItem("format");
        if (fmt) fmt.value = /\.html?$/.test(name) ? "html" : /\.md|\.markdown$/.test(name) ? "markdown" : "text";
        const path = form.elements.namedItem("source_path");
        if (path && !path.value) path.value = chosen.name;
        refresh();
      };
      reader.readAsText(chosen);
    });
  }
  if (content.value.trim()) refresh();
}

function setUpLive() {
  document.querySelectorAll("[data-live]").forEach((region) => {
    const tick = async () => {
      if (region.querySelector("[data-finished='true']")) return;
      const said = document.getElementById("live-status");
      try {
        const answer = await fragment(region.dataset.live);
        if (answer.ok && answer.html !== region.dataset.last) {
          region.dataset.last = answer.html;
          swap(region, answer.html);
          countDown();
        }
        if (said) {
          said.textContent = answer.ok ? "" : answer.status === 401
            ? "Your sign-in expired: reload the page to sign in again."
            : `The console answered ${answer.status}; trying again every second.`;
        }
        if (answer.status === 401) return;
      } catch (err) {
        // The next tick tries again; the page keeps what it showed and says so.
        if (said) said.textContent = "Lost the connection to the console; trying again…";
      }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  });
}

function countDown() {
  const now = Date.now();
  document.querySelectorAll("time.countdown[datetime]").forEach((el) => {
    const left = Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000);
    if (Number.isNaN(left)) return;
    const abs = Math.abs(left);
    const text = `${Math.floor(abs / 60)}:${String(abs % 60).padStart(2, "0")}`;
    el.textContent = left >= 0 ? `escalates in ${text}` : `escalation due ${text} ago`;
  });
}

function setUpConfirm() {
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpPreview();
  setUpLive();
  setUpConfirm();
  countDown();
  setInterval(countDown, 1000);
});
