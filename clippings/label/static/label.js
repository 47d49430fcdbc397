// The label page: shows one pair, sends Same / Different / Unsure / Undo, redraws from the server's state.
// Every text from the archive (captions, ids, sources) goes into the page through textContent, never as
// markup; the token travels in each request's query string.
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token") || "";
  var current = null;
  var busy = false;

  function url(path, extra) {
    var q = "token=" + encodeURIComponent(token);
    Object.keys(extra || {}).forEach(function (k) { q += "&" + k + "=" + encodeURIComponent(extra[k]); });
    return path + "?" + q;
  }
  function text(el, value) { el.textContent = value == null ? "" : String(value); }
  function fixed(x, digits) { return x == null ? "n/a" : Number(x).toFixed(digits); }

  function showClip(fig, clip) {
    var img = fig.querySelector("img");
    img.src = url("image", {id: clip.id});
    img.alt = "clipping " + clip.id;
    var caption = fig.querySelector(".caption");
    text(caption, clip.caption || "(no caption)");
    caption.className = clip.caption ? "caption" : "caption none";
    var meta = [clip.source, clip.date, clip.page ? "p. " + clip.page : "", clip.id].filter(Boolean);
    text(fig.querySelector(".meta"), meta.join(" · "));
  }

  function showProgress(p) {
    var parts = [p.answers + " answered (" + p.same + " same, " + p.different + " different, " +
                 p.unsure + " unsure)"];
    if (p.threshold == null) {
      parts.push("t from the links: " + fixed(p.links_threshold, 4) + " (no estimate until both Same and Different)");
    } else {
      parts.push("estimated t " + fixed(p.threshold, 4) +
                 (p.interval ? " [" + fixed(p.interval[0], 4) + ", " + fixed(p.interval[1], 4) + "]" : ""));
      if (p.moved != null) { parts.push("moved " + fixed(p.moved, 4) + " over the last 10 answers"); }
    }
    parts.push(p.remaining + " pairs left");
    text(document.getElementById("progress"), parts.join(" · "));
  }

  function render(state) {
    current = state.pair;
    showProgress(state.progress);
    document.body.setAttribute("data-answers", state.progress.answers);
    document.getElementById("undo").disabled = !state.can_undo;
    ["same", "different", "unsure"].forEach(function (id) { document.getElementById(id).disabled = !current; });
    if (!current) {
      document.getElementById("pair").hidden = true;
      text(document.getElementById("where"), "Every pair is answered.");
      document.body.setAttribute("data-state", "done");
      document.body.removeAttribute("data-pair");
      return;
    }
    document.getElementById("pair").hidden = false;
    showClip(document.getElementById("left"), current.a);
    showClip(document.getElementById("right"), current.b);
    var side = current.distance <= current.cut ? "below the cut: linked now" : "above the cut: not linked now";
    text(document.getElementById("where"), "Distance " + fixed(current.distance, 4) + ", " + side +
         " (cut " + fixed(current.cut, 4) + "; asked as: " + current.reason + ")");
    document.body.setAttribute("data-pair", current.a.id + "\n" + current.b.id);
    document.body.setAttribute("data-state", "ready");
  }

  function call(method, path, body) {
    busy = true;
    document.body.setAttribute("data-state", "busy");
    var options = {method: method, headers: {"Content-Type": "application/json"}, cache: "no-store"};
    if (body) { options.body = JSON.stringify(body); }
    return fetch(url(path), options).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { text(document.getElementById("message"), data.error || ("error " + r.status)); }
        else { text(document.getElementById("message"), ""); }
        return data.state ? data.state : data;
      });
    }).then(render).catch(function (e) {
      text(document.getElementById("message"), "The server did not answer (" + e + "); reload when it is back.");
      document.body.setAttribute("data-state", "error");
    }).then(function () { busy = false; });
  }

  function answer(choice) {
    if (busy || !current) { return; }
    call("POST", "api/answer", {a: current.a.id, b: current.b.id, answer: choice});
  }
  function undo() { if (!busy) { call("POST", "api/undo"); } }

  document.getElementById("same").addEventListener("click", function () { answer("same"); });
  document.getElementById("different").addEventListener("click", function () { answer("different"); });
  document.getElementById("unsure").addEventListener("click", function () { answer("unsure"); });
  document.getElementById("undo").addEventListener("click", undo);
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var key = e.key.toLowerCase();
    if (key === "y") { answer("same"); }
    else if (key === "n") { answer("different"); }
    else if (key === "u") { answer("unsure"); }
    else if (key === "z" || e.key === "Backspace") { e.preventDefault(); undo(); }
  });
  call("GET", "api/state");
})();
