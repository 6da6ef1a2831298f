"""The console's page: server-rendered HTML with the trend charts as inline SVG (no CDN, no
script library; a few lines of script refresh the live part and run the tester)."""

from __future__ import annotations

import datetime
import html
from typing import Any

import msgspec

__all__ = ["WINDOWS", "render_live", "render_page"]

#: The window choices offered (seconds), 10 minutes to 2 weeks.
WINDOWS = ((600, "10 min"), (3600, "1 h"), (6 * 3600, "6 h"), (86_400, "24 h"), (7 * 86_400, "7 d"),
           (14 * 86_400, "14 d"))
_BAD = ("rejected", "failed", "invalid")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header h1{font-size:17px;margin:0}header a{color:#9cc3ff;margin-right:8px}header a.on{color:#fff;font-weight:bold}
main{padding:12px 20px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:0 0 14px;padding:10px 14px}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;margin:10px 0 4px}
table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 9px;border-bottom:1px solid #eceef2;text-align:right}
td:first-child,th:first-child,td.l,th.l{text-align:left}.ok{color:#137333}.bad{color:#b3261e}.muted{color:#6b7280}
.num{font-variant-numeric:tabular-nums}pre{background:#f2f3f6;padding:8px;overflow:auto;max-height:320px;font-size:12px}
textarea{width:100%;height:140px;font:12px monospace}.row{display:flex;gap:14px;flex-wrap:wrap}
table.funnel td{vertical-align:top;padding-right:18px}table.funnel ul{margin:2px 0;padding-left:16px}
"""

_SCRIPT = """
const W = new URLSearchParams(location.search).get("window") || "3600";
async function refresh() {
  const open = [...document.querySelectorAll("details[open]")].map(d => d.id);
  try {
    const r = await fetch("/fragment?window=" + W, {credentials: "same-origin"});
    if (r.ok) { document.getElementById("live").innerHTML = await r.text(); }
  } catch (e) {}
  open.forEach(id => { const d = document.getElementById(id); if (d) d.open = true; });
}
setInterval(refresh, 1000);
function pick(button) {
  document.getElementById("tester-instance").value = button.dataset.instance;
  document.getElementById("tester-event").value = JSON.stringify(JSON.parse(button.dataset.event), null, 2);
  document.getElementById("tester").scrollIntoView();
}
async function tryEvent(send) {
  const out = document.getElementById("tester-out");
  let event;
  try { event = JSON.parse(document.getElementById("tester-event").value); }
  catch (e) { out.textContent = "not JSON: " + e.message; return; }
  const body = {instance: document.getElementById("tester-instance").value, event: event, send: send};
  const r = await fetch("/api/test", {method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  out.textContent = JSON.stringify(await r.json(), null, 2);
}
"""

_EXAMPLE_EVENT = ('{"type": "track", "event": "Order Completed", "userId": "user-1", "messageId": "console-test-1",\n'
                  ' "timestamp": "2026-01-01T00:00:00.000Z", "properties": {"revenue": 25}}')


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _time(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate(statuses: dict[str, int]) -> str:
    done = sum(statuses.get(s, 0) for s in ("delivered", "rejected", "failed"))
    return f"{100.0 * statuses.get('delivered', 0) / done:.1f}%" if done else "-"


def _statuses_row(statuses: dict[str, int], columns: list[str]) -> str:
    cells = []
    for s in columns:
        n = statuses.get(s, 0)
        cls = "bad" if s in _BAD and n else ("ok" if s == "delivered" and n else "")
        cells.append(f'<td class="num {cls}" data-status="{s}">{n:,}</td>')
    return "".join(cells)


def _svg(trend: list[tuple[int, dict[str, int]]]) -> str:
    """Stacked bars per slice: delivered (green) under everything else (red)."""
    width, height = 600, 70
    peak = max((sum(c.values()) for _, c in trend), default=0) or 1
    bar = width / max(1, len(trend))
    parts = [f'<svg class="trend" width="{width}" height="{height + 14}" viewBox="0 0 {width} {height + 14}" '
             f'role="img" aria-label="outcomes per slice">']
    for i, (minute, counts) in enumerate(trend):
        ok = counts.get("delivered", 0)
        bad = sum(counts.values()) - ok - counts.get("duplicate", 0)
        h_ok, h_bad = height * ok / peak, height * bad / peak
        x = i * bar
        if ok:
            parts.append(f'<rect x="{x:.1f}" y="{height - h_ok:.1f}" width="{bar * 0.8:.1f}" height="{h_ok:.1f}" '
                         f'fill="#34a853"><title>{_time(minute * 60)}: {ok} delivered</title></rect>')
        if bad:
            parts.append(f'<rect x="{x:.1f}" y="{height - h_ok - h_bad:.1f}" width="{bar * 0.8:.1f}" '
                         f'height="{h_bad:.1f}" fill="#d93025"><title>{bad} not delivered</title></rect>')
    if trend:
        parts.append(f'<text x="0" y="{height + 12}" font-size="10" fill="#6b7280">{_time(trend[0][0] * 60)}</text>')
        parts.append(f'<text x="{width}" y="{height + 12}" font-size="10" fill="#6b7280" text-anchor="end">'
                     f'peak {peak:,} per slice</text>')
    parts.append("</svg>")
    return "".join(parts)


def _sample(s: dict[str, Any], ident: str, instance: str) -> str:
    request, response = s.get("request", {}), s.get("response", {})
    head = "\n".join(f"{k}: {v}" for k, v in request.get("headers", {}).items())
    body = msgspec.json.format(msgspec.json.encode(request.get("body")), indent=2).decode()
    event = msgspec.json.format(msgspec.json.encode(s.get("event")), indent=2).decode()
    retest = (f'<button class="retest" data-instance="{_e(instance)}" '
              f'data-event="{_e(msgspec.json.encode(s["event"]).decode())}" onclick="pick(this)">'
              f'Try it in the event tester</button>') if s.get("event") else ""
    return (f'<details id="{_e(ident)}"><summary>sample: messageId {_e(s.get("message_id"))} at '
            f'{_time(s.get("at"))}</summary>{retest}'
            f'<div class="row"><div><h3>What you sent</h3><pre>{_e(event)}</pre></div>'
            f'<div><h3>The request to the destination</h3><pre>{_e(request.get("method"))} {_e(request.get("url"))}\n'
            f'{_e(head)}\n\n{_e(body)}</pre></div>'
            f'<div><h3>The destination\'s response</h3><pre>{_e(response.get("status") or "no answer")}\n'
            f'{_e(response.get("body") or "")}</pre></div></div></details>')


def _errors_table(name: str, errors: list[dict[str, Any]]) -> str:
    if not errors:
        return '<p class="muted">No errors in this window.</p>'
    rows = []
    for i, err in enumerate(errors):
        samples = "".join(_sample(s, f"s-{name}-{i}-{j}", name) for j, s in enumerate(err["samples"]))
        rows.append(f'<tr class="error"><td class="l">{_e(err["error_code"])}</td>'
                    f'<td class="l">{_e(err["status"])}</td>'
                    f'<td class="l">{_e(err["reason"])}</td><td class="num">{err["count"]:,}</td>'
                    f'<td>{_time(err["first_at"])}</td><td>{_time(err["last_at"])}</td>'
                    f'<td class="l">{_e(err["suggested_action"])}</td></tr>'
                    + (f'<tr><td colspan="7" class="l">{samples}</td></tr>' if samples else ""))
    return ('<table class="errors"><tr><th>error code</th><th class="l">status</th><th class="l">reason</th>'
            '<th>count</th><th>first seen</th><th>last seen</th><th class="l">suggested action</th></tr>'
            + "".join(rows) + "</table>")


def _funnel(steps: list[dict[str, Any]]) -> str:
    cells = []
    for step in steps:
        reasons = "".join(f'<li>{_e(r["reason"] or r["error_code"])} <span class="muted">({r["count"]:,})</span></li>'
                          for r in step["top_reasons"])
        cells.append(f'<td class="l" data-step="{_e(step["step"])}"><b>{_e(step["step"])}</b><br>'
                     f'<span class="num">{step["count"]:,}</span>{f"<ul>{reasons}</ul>" if reasons else ""}</td>')
    return f'<table class="funnel"><tr>{"".join(cells)}</tr></table>'


def render_live(view: dict[str, Any]) -> str:
    """The part of the page that refreshes: overview, then per instance funnel, trend and errors."""
    overview = view["overview"]
    columns = ["delivered", "rejected", "failed", "filtered", "skipped", "invalid", "duplicate"]
    head = "".join(f"<th>{c}</th>" for c in columns)
    rows = []
    for inst in overview["instances"]:
        lat = inst["latency_ms"]
        rows.append(f'<tr class="instance" data-instance="{_e(inst["name"])}"><td><b>{_e(inst["name"] or "(input)")}'
                    f'</b> <span class="muted">{_e(inst["destination"])}</span></td>'
                    f'{_statuses_row(inst["statuses"], columns)}<td class="num">{_rate(inst["statuses"])}</td>'
                    + "".join(f'<td class="num">{"-" if lat[p] is None else f"{lat[p]:,.0f}"}</td>'
                              for p in ("p50", "p95", "p99")) + "</tr>")
        for act in inst["actions"] if inst["name"] else []:  # the input's invalid records have no action
            rows.append(f'<tr class="muted"><td>&nbsp;&nbsp;{_e(act["mapping"] or "-")} ({_e(act["action"] or "-")})'
                        f'</td>{_statuses_row(act["statuses"], columns)}<td>{_rate(act["statuses"])}</td>'
                        f'<td></td><td></td><td></td></tr>')
    parts = [f'<section><h2>Delivery overview</h2><p class="muted">Outcomes in the last {_e(view["window_label"])}'
             f' (updated {_time(view["now"])}; {view["read"]:,} records read).</p>'
             f'<table class="overview"><tr><th class="l">instance / mapping</th>{head}<th>success</th>'
             f'<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>{"".join(rows)}</table></section>']
    for inst in view["instances"]:
        parts.append(f'<section class="instance-detail" data-instance="{_e(inst["name"])}"><h2>{_e(inst["name"])}'
                     f' <span class="muted">{_e(inst["destination"])}</span></h2>'
                     f'<h3>Delivery funnel</h3>{_funnel(inst["funnel"])}'
                     f'<h3>Trend</h3>{_svg(inst["trend"])}'
                     f'<h3>Event delivery: errors</h3>{_errors_table(inst["name"], inst["errors"])}</section>')
    return "".join(parts)


def render_page(view: dict[str, Any]) -> str:
    """The whole page: header with the window choice, the live part, the event tester."""
    links = "".join(f'<a class="{"on" if w == view["window"] else ""}" href="/?window={w}">{label}</a>'
                    for w, label in WINDOWS)
    options = "".join(f'<option value="{_e(i["name"])}">{_e(i["name"])}</option>' for i in view["instances"])
    tests = "".join(f'<li>{_time(t["at"])}: {_e(t["instance"])} messageId {_e(t["message_id"])}: '
                    f'{_e(", ".join(str(r.get("status")) for r in t.get("responses", [])))}</li>'
                    for t in view["tests"])
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pushstream console</title>'
            f'<style>{_STYLE}</style></head><body><header><h1>pushstream console</h1><nav>{links}</nav></header>'
            f'<main><div id="live">{render_live(view)}</div>'
            f'<section id="tester"><h2>Event tester</h2><p class="muted">The requests an event makes (as '
            f'<code>pushstream preview</code>); <b>Send</b> delivers it for real and shows the raw answer. A sample\'s '
            f'"Try it in the event tester" puts a failed event here.</p>'
            f'<select id="tester-instance">{options}</select>'
            f'<textarea id="tester-event">{_e(_EXAMPLE_EVENT)}</textarea>'
            f'<button onclick="tryEvent(false)">Preview</button> <button onclick="tryEvent(true)">Send</button>'
            f'<pre id="tester-out"></pre><h3>Recent tests</h3><ul>{tests or "<li class=muted>none</li>"}</ul>'
            f'</section></main><script>{_SCRIPT}</script></body></html>')
