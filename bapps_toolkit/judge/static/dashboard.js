"use strict";
// bapps judge dashboard: polls /api/admin/summary with the admin token (sent in the Authorization
// header, never in a URL) and draws the study's progress; nothing outside this server is used.
(function () {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 3000;
  const KEY = "bappsJudgeAdminToken";
  let token = null, timer = null, lastOk = 0;
  window.bappsDashboard = { refreshes: 0, last: null };

  // The token arrives in the fragment (/admin#token=...), which browsers do not send to servers;
  // it is moved to this tab's session storage and removed from the address bar.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  token = sessionStorage.getItem(KEY);

  const pct = (x) => (x === null || x === undefined ? "–" : Math.round(100 * x) + "%");
  const ms = (x) => (x === null || x === undefined ? "–" : Math.round(x) + " ms");
  function ago(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return (s / 3600).toFixed(1) + " h ago";
  }
  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  // A histogram as CSS columns; heights set through the CSSOM (allowed by the page's CSP).
  function histogram(el, h, label, isDone) {
    el.replaceChildren();
    const top = Math.max(1, ...h.counts);
    h.counts.forEach((n, i) => {
      const col = text("div", "", "col");
      col.title = label(i) + ": " + n;
      const b = text("div", "", "b" + (isDone && isDone(i) ? " done" : ""));
      b.style.height = (100 * n / top) * 0.8 + "%";
      col.append(text("div", n ? String(n) : "", "n"), b, text("div", label(i), "x"));
      el.append(col);
    });
  }

  function raterRow(r) {
    const tr = document.createElement("tr");
    tr.className = (r.outcome || "") + (r.active ? " active" : "");
    const acc = r.sentinels ? r.sentinels_right + " / " + r.sentinels + " (" + pct(r.sentinel_accuracy) + ")" : "none yet";
    const agree = r.agreement_items ? pct(r.agreement) + " of " + r.agreement_items : "–";
    tr.append(text("td", r.rater), text("td", r.platform || "–"), text("td", r.answered + " / " + r.assigned, "num"),
      text("td", acc, "num"), text("td", agree, "num"), text("td", ms(r.median_rt_ms), "num"),
      text("td", r.outcome ? r.outcome.replace("_", " ") : (r.active ? "answering" : "–")),
      text("td", ago(r.seen_s_ago)));
    return tr;
  }

  function draw(s) {
    const p = s.progress, pol = s.policy;
    let policy = pol.assignment === "adaptive"
      ? "adaptive: stop at width " + pol.target_width + " (level " + pol.credible_level + ", prior Beta(" +
        pol.prior.join(", ") + ")), at most " + pol.judgments_per_item + " answers per item"
      : "balanced: " + pol.judgments_per_item + " answers per item";
    $("study-line").textContent = "study " + (pol.study_id || "?") + " · " + policy + " · platform " + pol.platform;
    $("items-done").textContent = p.items_done + " / " + p.items;
    $("items-bar").style.width = (p.items ? 100 * p.items_done / p.items : 0) + "%";
    $("items-sub").textContent = pct(p.items ? p.items_done / p.items : null) + " of the items need no more raters";
    $("answers").textContent = String(p.answers);
    $("answers-sub").textContent = p.answers_real + " on items, " + p.answers_sentinel + " on sentinels";
    $("raters").textContent = String(p.raters);
    $("raters-sub").textContent = p.raters_active + " active, " + p.raters_finished + " finished, " +
      p.raters_screened_out + " screened out";
    $("sentinels").textContent = pct(s.sentinel_accuracy);
    $("agreement").textContent = pct(s.agreement);
    $("rt").textContent = ms(s.median_rt_ms);
    const e = s.answers_per_item.edges;
    histogram($("hist-items"), s.answers_per_item, (i) => String(e[i]),
      pol.assignment === "balanced" ? (i) => e[i] >= pol.judgments_per_item : null);
    $("per-item-note").textContent = "(items by number of answers" +
      (pol.assignment === "balanced" ? "; green: " + pol.judgments_per_item + " reached)" : ")");
    $("widths-figure").hidden = !s.widths;
    if (s.widths) {
      const w = s.widths.edges;
      histogram($("hist-widths"), s.widths, (i) => (i % 4 === 0 ? w[i].toFixed(1) : ""), (i) => w[i + 1] <= pol.target_width);
      $("widths-note").textContent = "(green: narrower than the target " + pol.target_width + ")";
    }
    const r = s.response_ms.edges;
    histogram($("hist-rt"), s.response_ms, (i) => (r[i] >= 1000 ? r[i] / 1000 + "k" : String(r[i])));
    $("rater-rows").replaceChildren(...s.raters.map(raterRow));
    $("raters-note").textContent = "(" + s.raters_shown + " of " + p.raters + ", most recently seen first)";
  }

  function showError(msg) { $("error").textContent = msg; $("error").hidden = !msg; }
  function login(msg) {
    clearTimeout(timer);
    $("board").hidden = true; $("login").hidden = false;
    $("login-error").textContent = msg || ""; $("login-error").hidden = !msg;
    $("live").textContent = "not connected"; $("live").classList.add("stale");
  }

  async function poll() {
    let wait = POLL_MS;
    try {
      const r = await fetch("/api/admin/summary", { cache: "no-store", headers: { Authorization: "Bearer " + token } });
      const body = await r.json().catch(() => null);
      if (r.status === 401) { sessionStorage.removeItem(KEY); login((body && body.error) || "wrong admin token"); return; }
      if (!r.ok) {
        wait = 1000 * (Number(r.headers.get("Retry-After")) || POLL_MS / 1000);
        throw new Error((body && body.error) || "HTTP " + r.status);
      }
      draw(body);
      lastOk = Date.now();
      window.bappsDashboard.refreshes += 1; window.bappsDashboard.last = body;
      $("login").hidden = true; $("board").hidden = false; showError("");
      $("live").textContent = "live · updated " + new Date(lastOk).toLocaleTimeString();
      $("live").classList.remove("stale");
    } catch (err) {
      showError("Could not refresh: " + err.message + (lastOk ? " (showing the data of " +
        new Date(lastOk).toLocaleTimeString() + ")" : ""));
      $("live").classList.add("stale");
    }
    timer = setTimeout(poll, wait);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token-input").value.trim();
    $("token-input").value = "";
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    poll();
  });
  if (token) poll(); else login("");
})();
