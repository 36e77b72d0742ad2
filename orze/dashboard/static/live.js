// Live updates without reload: the server's event stream says when something a page shows has
// changed; the page then fetches itself again with X-Orze-Partial: 1 and swaps in the content.
// Ages ("12s ago") tick on the client from the server's clock, so a page whose daemon is down
// still shows how old the last heartbeat is.
(function () {
  const live = document.getElementById("live");
  const main = document.getElementById("content");
  let offset = parseFloat(document.body.dataset.serverNow || "0") - Date.now() / 1000;
  let loadedAt = Date.now() / 1000;
  let inflight = false, again = false;

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 120) return s + "s";
    if (s < 7200) return Math.floor(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function ages() {
    const elapsed = Date.now() / 1000 - loadedAt;
    document.querySelectorAll(".age[data-age]").forEach(function (el) {
      const a = parseFloat(el.dataset.age);
      if (!isNaN(a)) el.textContent = fmt(a + elapsed);
    });
  }
  async function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const r = await fetch(location.pathname + location.search, {headers: {"X-Orze-Partial": "1"}, credentials: "same-origin"});
      if (r.ok) {
        const html = await r.text();
        const active = document.activeElement && document.activeElement.closest && document.activeElement.closest("form");
        if (!active) {   // never replace a form the user is typing in
          main.innerHTML = html;
          loadedAt = Date.now() / 1000;
          document.body.dataset.refreshed = String(Date.now());
        }
      }
    } catch (e) { /* the next event retries */ }
    inflight = false;
    if (again) { again = false; refresh(); }
  }
  function connect() {
    const es = new EventSource("/stream", {withCredentials: true});
    es.onopen = function () { live.textContent = "live"; live.className = "live on"; };
    es.onerror = function () { live.textContent = "reconnecting…"; live.className = "live off"; };
    let first = true;
    es.addEventListener("update", function (e) {
      let v = null;
      try { v = JSON.parse(e.data).version; } catch (x) {}
      // The stream's first event states the current version: news only if the page is older.
      if (first && String(v) === document.body.dataset.version) { first = false; return; }
      first = false;
      document.body.dataset.version = String(v);
      refresh();
    });
    es.addEventListener("tick", function (e) {
      try { offset = JSON.parse(e.data).now - Date.now() / 1000; } catch (x) {}
    });
  }
  setInterval(ages, 1000);
  connect();
})();
