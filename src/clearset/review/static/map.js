// The embedding map: points drawn on a canvas; drag a box -> /region with the box in map coordinates.
"use strict";
(function () {
  const canvas = document.getElementById("map");
  if (!canvas) { return; }
  const ctx = canvas.getContext("2d");
  const status = document.getElementById("map-status");
  const legend = document.getElementById("map-legend");
  const colourBy = document.getElementById("map-colour");
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];
  const FLAGS = ["#d0d0d0", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd"];
  let data = null, bounds = null, drag = null;

  function toCanvas(x, y) {
    return [(x - bounds.x0) / (bounds.x1 - bounds.x0) * (canvas.width - 20) + 10,
            canvas.height - 10 - (y - bounds.y0) / (bounds.y1 - bounds.y0) * (canvas.height - 20)];
  }
  function toMap(cx, cy) {
    return [bounds.x0 + (cx - 10) / (canvas.width - 20) * (bounds.x1 - bounds.x0),
            bounds.y0 + (canvas.height - 10 - cy) / (canvas.height - 20) * (bounds.y1 - bounds.y0)];
  }
  function colour(i) {
    if (colourBy.value === "flag") { return FLAGS[data.flag[i]] || FLAGS[0]; }
    const l = data.label[i];
    return l < 0 ? "#000" : PALETTE[l % PALETTE.length];
  }
  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const order = colourBy.value === "flag" ? data.x.map((_, i) => i).sort((a, b) => data.flag[a] - data.flag[b])
                                            : data.x.map((_, i) => i);
    for (const i of order) {
      const [cx, cy] = toCanvas(data.x[i], data.y[i]);
      ctx.fillStyle = colour(i);
      ctx.fillRect(cx - 1, cy - 1, 3, 3);
    }
    if (drag && drag.lasso && drag.path.length > 1) {
      ctx.strokeStyle = "#000";
      ctx.beginPath();
      drag.path.forEach(([px, py], k) => (k ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
      ctx.closePath();
      ctx.stroke();
    } else if (drag && drag.x1 !== undefined) {
      ctx.strokeStyle = "#000";
      ctx.strokeRect(Math.min(drag.x0, drag.x1), Math.min(drag.y0, drag.y1), Math.abs(drag.x1 - drag.x0), Math.abs(drag.y1 - drag.y0));
    }
    legend.textContent = "";
    const names = colourBy.value === "flag" ? ["no finding"].concat(data.queues) : data.classes;
    names.forEach((name, k) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colourBy.value === "flag" ? FLAGS[k] : PALETTE[k % PALETTE.length];
      li.appendChild(sw);
      li.appendChild(document.createTextNode(" " + name));
      legend.appendChild(li);
    });
  }
  async function load() {
    const res = await fetch(canvas.dataset.map);
    const d = await res.json();
    if (d.state !== "ready") {
      status.textContent = d.state === "failed" ? "the map failed: " + (d.error || "") : "computing the projection…";
      if (d.state !== "failed") { setTimeout(load, 2000); }
      return;
    }
    data = d;
    const pad = (a) => { const lo = Math.min(...a), hi = Math.max(...a); const m = (hi - lo) * 0.02 || 1; return [lo - m, hi + m]; };
    const [x0, x1] = pad(d.x), [y0, y1] = pad(d.y);
    bounds = { x0, x1, y0, y1 };
    status.textContent = d.n + " images" + (d.shown < d.n ? " (" + d.shown + " drawn)" : "");
    canvas.dataset.ready = "1";
    draw();
  }
  canvas.addEventListener("mousedown", (ev) => {
    if (data) { drag = { x0: ev.offsetX, y0: ev.offsetY, lasso: ev.shiftKey, path: [[ev.offsetX, ev.offsetY]] }; }
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (!drag) { return; }
    drag.x1 = ev.offsetX; drag.y1 = ev.offsetY;
    if (drag.lasso) { drag.path.push([ev.offsetX, ev.offsetY]); }
    draw();
  });
  canvas.addEventListener("mouseup", (ev) => {
    if (!drag) { return; }
    const d = drag;
    drag = null;
    if (d.x1 === undefined || Math.abs(d.x1 - d.x0) + Math.abs(d.y1 - d.y0) < 6) {  // a click: nearest point
      let best = -1, bd = Infinity;
      data.x.forEach((_, i) => { const [cx, cy] = toCanvas(data.x[i], data.y[i]); const e = (cx - ev.offsetX) ** 2 + (cy - ev.offsetY) ** 2; if (e < bd) { bd = e; best = i; } });
      if (best >= 0 && bd < 100) { location.href = "/similar/" + data.index[best]; }
      draw();
      return;
    }
    if (d.lasso && d.path.length >= 3) {
      const step = Math.max(1, Math.ceil(d.path.length / 500));  // at most ~500 vertices in the URL
      const pts = d.path.filter((_, k) => k % step === 0).map(([px, py]) => toMap(px, py)).flat();
      location.href = "/region?poly=" + pts.map((v) => v.toFixed(4)).join(",");
      return;
    }
    const [ax, ay] = toMap(d.x0, d.y0), [bx, by] = toMap(d.x1, d.y1);
    location.href = "/region?x0=" + ax + "&x1=" + bx + "&y0=" + ay + "&y1=" + by;
  });
  colourBy.addEventListener("change", () => { if (data) { draw(); } });
  load();
})();
