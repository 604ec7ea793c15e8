"use strict";
// bapps judge page: 2AFC and JND trials as in BAPPS; no resource outside this server is used.
(function () {
  const q = new URLSearchParams(location.search);
  // A study on a crowd platform is opened through its link: the platform's participant id
  // (PROLIFIC_PID, or rater on a generic platform) and the study's key; /api/arrive then gives
  // the token this page sends with every request.
  let rater = q.get("rater") || q.get("PROLIFIC_PID") || "";
  let token = q.get("token") || "";
  const $ = (id) => document.getElementById(id);
  let cfg = null, trial = null, shownAt = 0, busy = false, state = "intro";
  window.bappsJudge = { state: () => state, lastTimings: null, answers: 0, completion: null };

  function auth() {
    const p = new URLSearchParams({ rater: rater });
    if (token) p.set("token", token);
    return p.toString();
  }
  function show(name) {
    state = name;
    for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== "screen-" + name;
  }
  // Every failure ends on the error screen with the server's message (or what went wrong on the
  // way) and, where trying again can help, a Retry button; 429 and a busy database are retried
  // after the server's Retry-After by themselves.
  const TIMEOUT_MS = 30000;
  class ServerError extends Error {
    constructor(message, status, retryAfter, retryable) {
      super(message);
      this.status = status; this.retryAfter = retryAfter; this.retryable = retryable;
    }
  }
  let retryAction = null, retryTimer = null;
  function fail(err, retry, hint) {
    const e = err instanceof ServerError ? err : new ServerError(String((err && err.message) || err), 0, 0, true);
    clearInterval(retryTimer);
    retryAction = retry && e.retryable ? retry : null;
    $("error-text").textContent = e.message;
    $("retry").hidden = !retryAction;
    $("error-hint").textContent = retryAction ? (hint || "Press Retry to go on from here.")
      : "Please tell the study's organiser, or reload the page later.";
    show("error");
    if (retryAction && e.retryAfter > 0) {
      let left = Math.min(Math.ceil(e.retryAfter), 120);
      const tick = () => {
        if (left <= 0) { retry_(); return; }
        $("error-hint").textContent = "Retrying in " + left + " s (or press Retry).";
        left -= 1;
      };
      tick();
      retryTimer = setInterval(tick, 1000);
    }
  }
  function retry_() {
    if (!retryAction || state !== "error") return;
    const again = retryAction;
    retryAction = null;
    clearInterval(retryTimer);
    $("retry").hidden = true;
    $("error-hint").textContent = "Retrying…";
    again();
  }
  async function api(path, opts) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let r, body = null;
    try {
      r = await fetch(path, Object.assign({ cache: "no-store", signal: ctl.signal }, opts || {}));
      try { body = await r.json(); } catch (e) { body = null; }
    } catch (e) {
      throw new ServerError(ctl.signal.aborted ? "The study server did not answer in time."
        : "The study server cannot be reached (network problem, or the server is stopped).", 0, 0, true);
    } finally { clearTimeout(timer); }
    if (r.ok && body !== null) return body;
    const msg = body && typeof body.error === "string" ? body.error
      : "The study server sent an unexpected answer (HTTP " + r.status + ").";
    const after = Number(r.headers.get("Retry-After")) || 0;
    throw new ServerError(msg, r.status, after, r.status === 408 || r.status === 429 || r.status >= 500 || r.ok);
  }
  const run = (step) => step().catch((e) => fail(e, () => run(step)));
  function imgUrl(role) { return "/api/image/" + trial.item + "/" + role + "?" + auth(); }
  function loadImg(el, url) {
    return new Promise((res, rej) => {
      el.onload = res;
      el.onerror = () => rej(new ServerError("An image of this trial could not be loaded.", 0, 0, true));
      el.src = url;
    });
  }
  const frame = () => new Promise((res) => requestAnimationFrame(res));
  // Keeps the current display for ms: t0 is the frame that shows it; we return on the last frame
  // before the target so the caller's change appears in the frame nearest t0 + ms. The frame
  // period is the shortest interval seen (the display's refresh), so a late frame never ends a
  // phase early; a dropped frame can still lengthen one, and the measured times are recorded.
  let period = 1000 / 60;
  async function holdFor(ms) {
    const t0 = await frame();
    let prev = t0, t = await frame();
    period = Math.min(period, t - prev > 1 ? t - prev : period);
    while (t - t0 + 1.5 * period <= ms) {
      prev = t; t = await frame();
      if (t - prev > 1) period = Math.min(period, t - prev);
    }
    return t0;
  }
  function progress(p) {
    $("progress").textContent = p.done ? p.answered + " of " + p.total + " trials answered"
      : "Trial " + (p.answered + 1) + " of " + p.total + " (" + p.answered + " answered)";
  }

  const TITLES = { complete: "Done — thank you!", screened_out: "Finished", no_trials: "No trials left" };
  function finish(c) {
    window.bappsJudge.completion = c;
    $("done-title").textContent = TITLES[c.outcome] || "Finished";
    $("done-text").textContent = c.message;
    $("done-code").textContent = c.code || "";
    $("done-code-row").hidden = !c.code;
    const url = typeof c.url === "string" && /^https?:\/\//.test(c.url) ? c.url : null;
    $("done-redirect").hidden = !url;
    show("done");
    if (!url) return;
    $("done-link").href = url;
    let left = Math.max(0, Math.floor(Number(c.redirect_after_s) || 0));
    const tick = () => {
      if (left <= 0) { location.assign(url); return; }
      $("done-countdown").textContent = "(you will be taken there in " + left + " s)";
      left -= 1;
      setTimeout(tick, 1000);
    };
    tick();
  }

  async function next() {
    trial = await api("/api/next?" + auth());
    progress(trial);
    if (trial.done) { if (trial.completion) finish(trial.completion); else show("done"); return; }
    if (trial.answered > 0 && trial.answered % cfg.break_every === 0 && state !== "break" && !trial.resumedBreak) {
      trial.resumedBreak = true; show("break"); return;
    }
    if (trial.kind === "2afc") await run2afc(); else await runJnd();
  }
  async function run2afc() {
    const [l, r] = trial.swapped ? ["p1", "p0"] : ["p0", "p1"];
    await Promise.all([loadImg($("img-left"), imgUrl(l)), loadImg($("img-ref"), imgUrl("ref")), loadImg($("img-right"), imgUrl(r))]);
    show("2afc");
    shownAt = await frame();
    busy = false;
  }
  async function runJnd() {
    const img = $("img-jnd");
    const a = new Image(), b = new Image();
    // as in BAPPS: the reference (p0) first, a blank, then the distorted image (p1)
    await Promise.all([loadImg(a, imgUrl("p0")), loadImg(b, imgUrl("p1"))]);
    $("jnd-answer").hidden = true;
    $("jnd-prompt").textContent = "Watch: first image, blank, second image.";
    img.style.visibility = "hidden";
    show("jnd");
    img.src = a.src; img.style.visibility = "visible";
    const t0 = await holdFor(cfg.jnd_ref_ms);
    img.style.visibility = "hidden";
    const t1 = await holdFor(cfg.jnd_blank_ms);
    img.src = b.src; img.style.visibility = "visible";
    const t2 = await holdFor(cfg.jnd_dist_ms);
    img.style.visibility = "hidden";
    const t3 = await frame();
    window.bappsJudge.lastTimings = { ref_ms: t1 - t0, blank_ms: t2 - t1, dist_ms: t3 - t2 };
    $("jnd-prompt").textContent = "Were the two images the same?";
    $("jnd-answer").hidden = false;
    shownAt = t3;
    busy = false;
  }
  async function answer(side) {
    if (busy || (state !== "2afc" && state !== "jnd")) return;
    if (state === "jnd" && $("jnd-answer").hidden) return;
    busy = true;
    const body = { rater: rater, item: trial.item, side: side, rt_ms: performance.now() - shownAt };
    if (token) body.token = token;
    if (trial.kind === "jnd") body.timings = window.bappsJudge.lastTimings;
    await submit(body);
  }
  // Posts an answer; on a failure the same answer is posted again by Retry. A 409 means the
  // server already has it (its acknowledgement was lost), so the page goes on.
  async function submit(body) {
    try {
      await api("/api/answer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    } catch (e) {
      if (!(e instanceof ServerError && e.status === 409)) {
        fail(e, () => submit(body), "Your answer is kept in this page: press Retry to send it again.");
        return;
      }
    }
    state = "wait";  // screens stay as they are until the next trial is loaded
    $("jnd-answer").hidden = true;
    window.bappsJudge.answers += 1;
    await run(next);
  }
  function start() { if (state === "intro" || state === "break") run(next); }

  $("start").onclick = start;
  $("continue").onclick = start;
  $("retry").onclick = retry_;
  $("btn-left").onclick = () => answer("left");
  $("btn-right").onclick = () => answer("right");
  $("btn-same").onclick = () => answer("same");
  $("btn-different").onclick = () => answer("different");
  document.addEventListener("keydown", (ev) => {
    const k = ev.key.toLowerCase();
    if (k === " " && (state === "intro" || state === "break")) { ev.preventDefault(); start(); return; }
    if (k === " " && state === "error") { ev.preventDefault(); retry_(); return; }
    if (state === "2afc" && (k === "a" || k === "arrowleft")) answer("left");
    else if (state === "2afc" && (k === "l" || k === "arrowright")) answer("right");
    else if (state === "jnd" && k === "s") answer("same");
    else if (state === "jnd" && k === "d") answer("different");
  });

  // Arrival through the study link of a crowd-platform study: only the link's own parameters are sent.
  const ARRIVAL = { prolific: ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "key"], generic: ["rater", "key"] };
  async function arrive(platform) {
    if (!q.get("key")) {
      throw new ServerError("This study must be opened through the link you were given (it has no study key).",
        0, 0, false);
    }
    const body = {};
    for (const name of ARRIVAL[platform] || []) if (q.has(name)) body[name] = q.get(name);
    const r = await api("/api/arrive", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    rater = r.rater; token = r.token;
  }

  async function load() {
    const c = await api("/api/study");
    if (c.platform && c.platform !== "none" && !token) await arrive(c.platform);
    cfg = c;
    $("instructions").textContent = c.instructions;
    $("scaling-note").textContent = "Images shown at " + c.display_px + " px, " + c.scaling + " scaling";
    for (const el of document.querySelectorAll(".patch")) {
      el.width = c.display_px; el.height = c.display_px; el.classList.add(c.scaling);
    }
    show("intro");
    if (!rater) fail(new ServerError("No rater id: open this page as /?rater=YOUR_ID", 0, 0, false));
  }
  run(load);
})();
