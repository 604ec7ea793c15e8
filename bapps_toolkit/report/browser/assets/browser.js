// The failure browser's behaviour: sort the rows by a column, filter them by metric, set and text.
// No network, no eval, no innerHTML: rows are moved and hidden, text is read with textContent and
// data-* attributes only.
"use strict";
(function () {
  var table = document.getElementById("items");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var fMetric = document.getElementById("f-metric");
  var fSet = document.getElementById("f-set");
  var fText = document.getElementById("f-text");
  var count = document.getElementById("count");

  function applyFilters() {
    var m = fMetric.value, s = fSet.value, t = fText.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var ok = (!m || row.dataset.metric === m) && (!s || row.dataset.set === s) &&
        (!t || row.dataset.text.indexOf(t) !== -1);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
  }

  function keyOf(row, col, numeric) {
    var cell = row.cells[col];
    if (!numeric) { return cell.textContent.toLowerCase(); }
    var v = parseFloat(cell.dataset.v);
    return isNaN(v) ? null : v;
  }

  function compare(a, b, ascending) {
    if (a === b) { return 0; }
    if (a === null) { return 1; }   // missing values last, either direction
    if (b === null) { return -1; }
    var r = a < b ? -1 : 1;
    return ascending ? r : -r;
  }

  function sortBy(th) {
    var col = th.cellIndex, numeric = th.dataset.sort === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (row, i) { return { row: row, key: keyOf(row, col, numeric), i: i }; });
    keyed.sort(function (a, b) { return compare(a.key, b.key, ascending) || a.i - b.i; });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    rows = keyed.map(function (k) { return k.row; });
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    if (!th.dataset.sort) { return; }
    th.querySelector("button").addEventListener("click", function () { sortBy(th); });
  });
  [fMetric, fSet].forEach(function (el) { el.addEventListener("change", applyFilters); });
  fText.addEventListener("input", applyFilters);
  document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  applyFilters();
  document.body.dataset.ready = "1";
}());
