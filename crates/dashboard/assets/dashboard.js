// durable dashboard: live refresh, actions submitted in place, JSON validation.
// Everything works without this script; it only makes the pages quicker to use.
"use strict";

(function () {
  const body = document.body;
  const interval = Number(body.dataset.refreshMs || 3000);

  // ---------------------------------------------------------------- live refresh
  const live = document.getElementById("live");
  const toggle = document.querySelector("[data-live-toggle]");
  const stamp = document.querySelector("[data-live-stamp]");
  let paused = false;
  let timer = null;

  function finished() {
    const details = live && live.querySelector("[data-terminal]");
    return details && details.dataset.terminal === "true";
  }

  async function refresh() {
    timer = null;
    if (!live || paused) return;
    if (document.visibilityState === "visible") {
      try {
        const response = await fetch(live.dataset.liveSrc, { credentials: "same-origin", headers: { "x-dashboard-fetch": "1" } });
        if (response.status === 401) { window.location.reload(); return; }
        if (response.status === 404) { live.innerHTML = await response.text(); return; }
        if (response.ok) {
          // Keep open disclosures (raw JSON) open across refreshes.
          const open = Array.from(live.querySelectorAll("details[open]")).map((d) => d.className);
          live.innerHTML = await response.text();
          open.forEach((c) => live.querySelectorAll("details").forEach((d) => { if (d.className === c) d.open = true; }));
          if (stamp) stamp.textContent = "Updated " + new Date().toLocaleTimeString();
        }
      } catch (e) {
        if (stamp) stamp.textContent = "Live updates interrupted; retrying";
      }
    }
    if (finished()) {
      if (stamp) stamp.textContent = "Finished: live updates stopped";
      return;
    }
    schedule();
  }

  function schedule() {
    if (!timer && live && !paused) timer = window.setTimeout(refresh, interval);
  }

  if (live) {
    if (!finished()) schedule();
    if (toggle) {
      toggle.addEventListener("click", () => {
        paused = !paused;
        toggle.setAttribute("aria-pressed", String(paused));
        toggle.textContent = paused ? "Resume live updates" : "Pause live updates";
        if (!paused) refresh();
      });
    }
  }

  // ---------------------------------------------------------------- JSON validation
  document.querySelectorAll("textarea[data-json]").forEach((area) => {
    const form = area.form;
    const message = form.querySelector("[data-json-msg]");
    const hint = message ? message.innerHTML : "";
    const check = () => {
      const text = area.value.trim();
      let error = "";
      if (text !== "") {
        try { JSON.parse(text); } catch (e) { error = "Not valid JSON: " + e.message; }
      }
      area.setAttribute("aria-invalid", error ? "true" : "false");
      area.setCustomValidity(error);
      if (message) {
        if (error) { message.textContent = error; message.classList.add("invalid"); }
        else { message.innerHTML = hint; message.classList.remove("invalid"); }
      }
    };
    area.addEventListener("input", check);
    check();
  });

  // ---------------------------------------------------------------- actions in place
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const result = document.getElementById("action-result");
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(form.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { "x-dashboard-fetch": "1" },
          body: new URLSearchParams(new FormData(form)),
        });
        const html = await response.text();
        if (result) {
          result.innerHTML = html;
          result.scrollIntoView({ block: "nearest" });
        }
        if (response.ok) {
          const details = form.closest("details");
          if (details) details.open = false;
          if (form.hasAttribute("data-clear")) form.reset();
          if (live) { paused = false; if (timer) { window.clearTimeout(timer); timer = null; } refresh(); }
        }
      } catch (e) {
        if (result) result.textContent = "The request failed: " + e.message;
      } finally {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      }
    });
  });
})();
