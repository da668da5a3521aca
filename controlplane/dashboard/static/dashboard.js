// ctl dashboard: refresh the page's main part while a rollout runs; copy buttons. No library.
"use strict";
(function () {
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  const POLL_MS = 2000;

  async function poll() {
    const url = main.dataset.poll;
    if (!url) return;
    try {
      const state = await (await fetch(url, { cache: "no-store" })).json();
      if (state.etag !== main.dataset.etag) {
        const html = await (await fetch(location.pathname, { cache: "no-store" })).text();
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        if (fresh) {
          const focused = document.activeElement && document.activeElement.getAttribute("href");
          main.innerHTML = fresh.innerHTML;
          main.dataset.etag = state.etag;
          if (!fresh.dataset.poll) delete main.dataset.poll;
          if (focused) {
            const again = main.querySelector('a[href="' + CSS.escape(focused) + '"]');
            if (again) again.focus();
          }
          live.textContent = "updated " + new Date().toLocaleTimeString();
        }
      }
      if (state.terminal && !main.dataset.poll) return;
      if (state.terminal) delete main.dataset.poll;
    } catch (err) {
      live.textContent = "dashboard unreachable; retrying";
    }
    if (main.dataset.poll) setTimeout(poll, POLL_MS);
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button.copy");
    if (!button) return;
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (err) {
      const code = button.previousElementSibling;
      const range = document.createRange();
      range.selectNodeContents(code);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      button.textContent = "Selected: Ctrl+C";
    }
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  });

  if (main.dataset.poll) setTimeout(poll, POLL_MS);
})();
