// Keeps an open dashboard current: reloads the #live region from the server every
// data-refresh-seconds, and says "Syncing…" while a "Sync now" form is being submitted.
(() => {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(1, Number(live.dataset.refreshSeconds) || 10) * 1000;
  let submitting = false;

  async function refresh() {
    if (document.hidden || submitting) return;
    const response = await fetch(live.dataset.src, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.status === 401) {
      window.location.assign("/sign-in");
      return;
    }
    // The fragment is rendered by the server with every value escaped.
    if (response.ok && !submitting) live.innerHTML = await response.text();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("sync-now")) return;
    submitting = true;
    const button = form.querySelector("button");
    if (button) {
      button.disabled = true;
      button.textContent = "Syncing…";
    }
  });

  setInterval(() => {
    refresh().catch(() => {});
  }, every);
})();
