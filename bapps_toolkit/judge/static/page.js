"use strict";
// bapps judge page: 2AFC and JND trials as in BAPPS; no resource outside this server is used.
(function () {
  const q = new URLSearchParams(location.search);
  const rater = q.get("rater") || "";
  const token = q.get("token") || "";
  const $ = (id) => document.getElementById(id);
  let cfg = null, trial = null, shownAt = 0, busy = false, state = "intro";
  window.bappsJudge = { state: () => state, lastTimings: null, answers: 0 };

  function auth() {
    const p = new URLSearchParams({ rater: rater });
    if (token) p.set("token", token);
    return p.toString();
  }
  function show(name) {
    state = name;
    for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== "screen-" + name;
  }
  function fail(msg) { $("error-text").textContent = msg; show("error"); }
  async function api(path, opts) {
    const r = await fetch(path, opts);
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
    return body;
  }
  function imgUrl(role) { return "/api/image/" + trial.item + "/" + role + "?" + auth(); }
  function loadImg(el, url) {
    return new Promise((res, rej) => { el.onload = res; el.onerror = () => rej(new Error("image failed")); el.src = url; });
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

  async function next() {
    trial = await api("/api/next?" + auth());
    progress(trial);
    if (trial.done) { show("done"); return; }
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
    try {
      await api("/api/answer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      state = "wait";  // screens stay as they are until the next trial is loaded
      $("jnd-answer").hidden = true;
      window.bappsJudge.answers += 1;
      await next();
    } catch (e) { fail(e.message); }
  }
  function start() { if (state === "intro" || state === "break") next().catch((e) => fail(e.message)); }

  $("start").onclick = start;
  $("continue").onclick = start;
  $("btn-left").onclick = () => answer("left");
  $("btn-right").onclick = () => answer("right");
  $("btn-same").onclick = () => answer("same");
  $("btn-different").onclick = () => answer("different");
  document.addEventListener("keydown", (ev) => {
    const k = ev.key.toLowerCase();
    if (k === " " && (state === "intro" || state === "break")) { ev.preventDefault(); start(); return; }
    if (state === "2afc" && (k === "a" || k === "arrowleft")) answer("left");
    else if (state === "2afc" && (k === "l" || k === "arrowright")) answer("right");
    else if (state === "jnd" && k === "s") answer("same");
    else if (state === "jnd" && k === "d") answer("different");
  });

  api("/api/study").then((c) => {
    cfg = c;
    $("instructions").textContent = c.instructions;
    $("scaling-note").textContent = "Images shown at " + c.display_px + " px, " + c.scaling + " scaling";
    for (const el of document.querySelectorAll(".patch")) {
      el.width = c.display_px; el.height = c.display_px; el.classList.add(c.scaling);
    }
    if (!rater) fail("No rater id: open this page as /?rater=YOUR_ID");
  }).catch((e) => fail(e.message));
})();
