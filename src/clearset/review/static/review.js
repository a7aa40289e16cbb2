// clearset review: keyboard and buttons post decisions to the JSON API. No framework, no innerHTML:
// everything from the data is set with textContent, so a class or file name is always shown as text.
"use strict";
(function () {
  const token = document.querySelector('meta[name="clearset-token"]').content;
  const toast = document.getElementById("toast");
  const cards = () => Array.from(document.querySelectorAll(".card"));
  let current = 0;

  function say(text, bad) {
    toast.textContent = text;
    toast.className = bad ? "bad shown" : "shown";
    clearTimeout(say.t);
    say.t = setTimeout(() => { toast.className = ""; }, 2500);
  }

  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Clearset-Token": token },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* an empty body */ }
    if (!res.ok) { throw new Error(data.error || ("HTTP " + res.status)); }
    return data;
  }

  function focus(i) {
    const all = cards();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(i, all.length - 1));
    all.forEach((c, j) => c.classList.toggle("focus", j === current));
    all[current].focus({ preventScroll: false });
  }

  function show(card, rec) {
    card.dataset.seq = String(rec.seq);
    card.classList.add("decided");
    const names = Array.from(card.querySelectorAll('select[data-act="relabel"] option')).slice(1);
    const label = rec.action === "relabel" && names[rec.new] ? " \u2192 " + names[rec.new].textContent.replace(/^\d+: /, "") : "";
    card.querySelector(".state").textContent = rec.action + (rec.index !== Number(card.dataset.index) ? " #" + rec.index : "") + label;
  }

  async function act(card, action, label) {
    const body = { finding: card.dataset.finding, action: action, expect: Number(card.dataset.seq || 0) };
    if (action === "accept") {
      if (card.dataset.suggested === undefined) { return; }
      body.action = "relabel";
      body.label = Number(card.dataset.suggested);
    } else if (action === "relabel") {
      body.label = Number(label);
    }
    try {
      const data = await post("/api/decide", body);
      show(card, data.decision);
      focus(cards().indexOf(card) + 1);
    } catch (e) { say(e.message, true); }
  }

  async function undo() {
    try {
      const data = await post("/api/undo", {});
      if (!data.undone) { say("nothing to undo"); return; }
      const card = document.querySelector('.card[data-finding="' + CSS.escape(data.undone.finding) + '"]');
      if (card) { card.querySelector(".state").textContent = "undone"; card.dataset.seq = "-1"; card.classList.remove("decided"); }
      say("undid " + data.undone.finding);
      // the finding's decision in force changed: reload so every card shows it
      if (card) { setTimeout(() => location.reload(), 300); }
    } catch (e) { say(e.message, true); }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT" || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    const card = cards()[current];
    const k = ev.key;
    if (k === "j" || k === "ArrowDown") { focus(current + 1); }
    else if (k === "k" || k === "ArrowUp") { focus(current - 1); }
    else if (k === "u") { undo(); }
    else if (!card) { return; }
    else if (k === "a") { act(card, "accept"); }
    else if (k === "x") { act(card, "drop"); }
    else if (k === " ") { act(card, "keep"); }
    else if (k === "m") { act(card, "ambiguous"); }
    else if (/^[0-9]$/.test(k)) { act(card, "relabel", Number(k)); }
    else { return; }
    ev.preventDefault();
  });

  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button");
    if (!b) { return; }
    const card = b.closest(".card");
    if (card && b.dataset.act) { current = cards().indexOf(card); act(card, b.dataset.act); }
    else if (b.dataset.undo !== undefined) { undo(); }
    else if (b.id === "apply") {
      try {
        const data = await post("/api/apply", {});
        document.getElementById("applied").textContent = "version v" + data.version + ": " + data.relabelled +
          " relabelled, " + data.dropped + " dropped, " + data.ambiguous + " ambiguous\nmanifest " + data.manifest +
          "\ntrain on it: clearset train WS --subset " + data.subset;
      } catch (e) { say(e.message, true); }
    } else if (b.dataset.bulk) {
      const d = b.dataset;
      if (!confirm(b.textContent.trim() + "?")) { return; }
      const body = { queue: d.queue, action: d.bulk };
      if (d.label !== "") { body.label = Number(d.label); }
      if (d.split) { body.split = d.split; }
      if (d.min !== "") { body.min = Number(d.min); }
      if (d.max !== "") { body.max = Number(d.max); }
      try { const data = await post("/api/bulk", body); say(data.decided + " decided"); setTimeout(() => location.reload(), 400); }
      catch (e) { say(e.message, true); }
    }
  });

  document.addEventListener("change", (ev) => {
    const s = ev.target;
    if (s.dataset && s.dataset.act === "relabel" && s.value !== "") { act(s.closest(".card"), "relabel", s.value); }
  });

  // the label-issue cards show their nearest neighbours and their labels, fetched after the page is up
  document.querySelectorAll("[data-neighbours]").forEach(async (box) => {
    try {
      const res = await fetch("/api/neighbours/" + encodeURIComponent(box.dataset.neighbours) + "?k=6");
      const data = await res.json();
      for (const n of data.neighbours || []) {
        const fig = document.createElement("figure");
        const a = document.createElement("a");
        a.href = "/similar/" + n.index;
        const img = document.createElement("img");
        img.src = "/image/" + n.index + ".png?size=64";
        img.alt = "image " + n.index;
        img.loading = "lazy";
        a.appendChild(img);
        const cap = document.createElement("figcaption");
        cap.textContent = n["class"];
        fig.appendChild(a);
        fig.appendChild(cap);
        box.appendChild(fig);
      }
    } catch (e) { /* neighbours are a help, not a requirement */ }
  });

  focus(0);
})();
