// Backworks dashboard: polls the admin API and redraws the page in place. No dependencies.
(function () {
  "use strict";
  var TOKEN_KEY = "backworks-admin-token";
  var HISTORY = 120;
  // Rate and latency are measured over the last WINDOW_S seconds, not one poll: workers write their
  // metrics up to a second late, so one poll can see a worker's requests and the next its latencies.
  var WINDOW_S = 5;
  var body = document.body;
  var api = body.dataset.api;
  var pollMs = Number(body.dataset.pollMs) || 1000;
  var recent = [];  // stats snapshots, oldest first; recent[0] is the newest at least WINDOW_S old
  var rates = [];
  var latencies = [];

  // The login form (login.js) left the token in this tab's sessionStorage; it never travels in a URL.

  function call(method, path) {
    var headers = {"Accept": "application/json"};
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) { headers["Authorization"] = "Bearer " + token; }
    return fetch(api + path, {method: method, headers: headers, cache: "no-store"}).then(function (resp) {
      return resp.json().then(function (data) { return {ok: resp.ok, status: resp.status, data: data}; });
    });
  }

  function el(id) { return document.getElementById(id); }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function fill(tableId, items, build) {
    var tbody = el(tableId).querySelector("tbody");
    var rows = document.createDocumentFragment();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      build(tr, item);
      rows.appendChild(tr);
    });
    tbody.replaceChildren(rows);
  }

  function quantile(buckets, q) {
    var total = buckets.length ? buckets[buckets.length - 1][1] : 0;
    if (!total) { return 0; }
    for (var i = 0; i < buckets.length; i++) {
      if (buckets[i][1] >= q * total) { return buckets[i][0]; }
    }
    return buckets[buckets.length - 1][0];
  }

  function bucketDelta(now, before) {
    return now.map(function (b, i) {
      var le = b[0] === "+Inf" ? Infinity : Number(b[0]);
      var prev = before && before[i] ? before[i][1] : 0;
      return [le, b[1] - prev];
    });
  }

  function showStats(stats, endpoints) {
    el("total-requests").textContent = stats.requests;
    recent.push(stats);
    while (recent.length > 2 && stats.time - recent[1].time >= WINDOW_S) { recent.shift(); }
    var first = recent[0];
    if (first !== stats) {
      var dt = Math.max(stats.time - first.time, 0.001);
      var dn = stats.latency.count - first.latency.count;
      var rate = (stats.requests - first.requests) / dt;
      var mean = dn > 0 ? 1000 * (stats.latency.sum - first.latency.sum) / dn : 0;
      var p95 = dn > 0 ? 1000 * quantile(bucketDelta(stats.latency.buckets, first.latency.buckets), 0.95) : 0;
      rates.push(rate); latencies.push(mean);
      if (rates.length > HISTORY) { rates.shift(); latencies.shift(); }
      el("request-rate").textContent = rate.toFixed(1);
      el("latency-mean").textContent = mean.toFixed(2);
      el("latency-p95").textContent = isFinite(p95) ? p95.toFixed(2) : "> 10000";
      draw(el("rate-chart"), rates, "#2b6cb0");
      draw(el("latency-chart"), latencies, "#c05621");
    }
    fill("endpoints", endpoints, function (tr, ep) {
      var counts = stats.endpoints[ep.name] || {requests: 0, errors: 0};
      cell(tr, ep.name); cell(tr, ep.methods.join(" ")); cell(tr, ep.path, "mono");
      cell(tr, ep.mode, "mode mode-" + ep.mode); cell(tr, counts.requests, "num"); cell(tr, counts.errors, "num");
    });
  }

  function draw(canvas, values, color) {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    var max = Math.max.apply(null, values.concat([1]));
    ctx.strokeStyle = "#ccc"; ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w, h - pad); ctx.stroke();
    ctx.fillStyle = "#555"; ctx.font = "11px sans-serif"; ctx.fillText(max.toFixed(1), 2, 12);
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    values.forEach(function (v, i) {
      var x = pad + (w - pad) * i / (HISTORY - 1);
      var y = h - pad - (h - 2 * pad) * v / max;
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
  }

  function showStatus(status) {
    el("status-line").textContent = "config " + status.config_path + " · loaded " +
      new Date(status.loaded_at * 1000).toLocaleTimeString() + " · reloads " + status.reloads +
      " · worker pid " + status.pid;
    el("config-error").hidden = !status.last_reload_error;
    el("config-error-text").textContent = status.last_reload_error || "";
  }

  function showPlugins(plugins) {
    el("no-plugins").hidden = plugins.length > 0;
    el("plugins").hidden = plugins.length === 0;
    fill("plugins", plugins, function (tr, p) {
      var health = p.health ? (p.health.healthy ? "healthy" : "unhealthy") : "-";
      var calls = p.calls_all_workers || {};
      var failures = Object.keys(calls).filter(function (k) { return k !== "ok"; })
        .map(function (k) { return k + " " + calls[k]; }).join(", ");
      var total = Object.keys(calls).reduce(function (n, k) { return n + calls[k]; }, 0);
      cell(tr, p.name); cell(tr, health, health); cell(tr, p.breaker ? p.breaker.state : "-", "breaker");
      cell(tr, p.quarantined ? p.isolation + " (quarantined)" : p.isolation, p.quarantined ? "quarantined" : "");
      cell(tr, total, "num"); cell(tr, failures || "none");
      var button = document.createElement("button");
      button.textContent = "Reset breaker";
      button.onclick = function () { call("POST", "/plugins/" + encodeURIComponent(p.name) + "/reset").then(poll); };
      tr.appendChild(document.createElement("td")).appendChild(button);
    });
  }

  function showRecent(recent) {
    el("recent-worker").textContent = "(worker " + recent.pid + ", last " + recent.requests.length + ")";
    fill("recent", recent.requests.slice(0, 50), function (tr, r) {
      cell(tr, new Date(r.time * 1000).toLocaleTimeString());
      cell(tr, r.method); cell(tr, r.path + (r.query ? "?" + r.query : ""), "mono");
      cell(tr, r.status, "status s" + String(r.status).charAt(0)); cell(tr, r.duration_ms, "num");
      cell(tr, r.endpoint); cell(tr, r.client_ip);
    });
  }

  function poll() {
    return Promise.all([call("GET", "/status"), call("GET", "/stats"), call("GET", "/endpoints"),
                        call("GET", "/plugins"), call("GET", "/requests?limit=50")])
      .then(function (res) {
        var denied = res.filter(function (r) { return !r.ok; })[0];
        if (denied) { throw new Error(denied.data.error ? denied.data.error.message : "HTTP " + denied.status); }
        showStatus(res[0].data);
        showStats(res[1].data, res[2].data.endpoints);
        showPlugins(res[3].data.plugins);
        showRecent(res[4].data);
        body.dataset.updated = String(Date.now());
      })
      .catch(function (err) { el("status-line").textContent = "cannot reach the admin API: " + err.message; });
  }

  el("reload-config").onclick = function () {
    call("POST", "/reload").then(function (r) {
      el("reload-result").textContent = r.ok ? "reloaded" : r.data.error.message;
      poll();
    });
  };

  poll();
  setInterval(poll, pollMs);
})();
