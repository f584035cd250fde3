// The sale waits for the terminal: ask for its status until it is no longer waiting, then show it.
(function () {
  const marker = document.getElementById("sale-status");
  if (!marker) { return; }
  const url = marker.dataset.url;
  async function poll() {
    try {
      const answer = await fetch(url, {headers: {"Accept": "application/json"}});
      const body = await answer.json();
      if (body.status !== "waiting") { window.location.reload(); return; }
    } catch (e) { /* the network blinked: ask again */ }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1500);
})();
