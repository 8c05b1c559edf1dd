"""The status report as text (``undecat status``) and as one self-contained HTML page.

Both take a :class:`~undecat.domain.report.Report` and only format it. The page needs no
network and no script: charts are inline SVG, styles inline CSS, the collage thumbnails
``data:`` URIs, so it can be mailed or opened from a folder.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

from undecat.domain.report import FUNNEL_COLUMNS, BrandFunnel, Report

__all__ = ["render_html", "render_text"]

#: One colour per state (and per run status), shared by every chart and legend.
COLOURS = {
    "pending": "#9aa5b1",
    "uploaded": "#5b8def",
    "collage_ready": "#2f9e44",
    "partial": "#f0a202",
    "synced": "#2f9e44",
    "skipped": "#b197fc",
    "error": "#e03131",
    "success": "#2f9e44",
    "failed": "#e03131",
    "running": "#5b8def",
    "interrupted": "#f0a202",
    "abandoned": "#868e96",
}
_OTHER = "#495057"


# --- text -------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    """The report as plain text lines (what ``undecat status`` prints)."""
    lines = [f"undecat status at {report.generated_at:%Y-%m-%d %H:%M:%S %Z}", ""]
    widths = {column: [max(len(s), 7) for s in states] for column, states in FUNNEL_COLUMNS.items()}
    groups, header = f"{'':23}", f"{'brand':14} {'products':>8}"
    for column, states in FUNNEL_COLUMNS.items():
        span = sum(widths[column]) + len(states) - 1
        groups += f"  {column:<{span}}"
        header += "  " + " ".join(f"{s:>{w}}" for s, w in zip(states, widths[column], strict=True))
    lines += ["funnel (active products):", groups + "  availability", header + "  today"]
    for funnel in report.funnels:
        row = f"{funnel.brand:14} {funnel.total:8d}"
        for column, states in FUNNEL_COLUMNS.items():
            row += "  " + " ".join(
                f"{funnel.count(column, s):>{w}d}"
                for s, w in zip(states, widths[column], strict=True)
            )
        row += f"  {funnel.coverage_today:5.0%}"
        lines.append(row)
    if not report.funnels:
        lines.append("  (no products yet)")
    lines += ["", "work per stage:", f"  {'stage':10} {'leased':>7} {'stale':>7} {'exhausted':>9}"]
    lines += [f"  {w.stage:10} {w.leased:7d} {w.stale:7d} {w.exhausted:9d}" for w in report.work]
    lines += ["", "last run of every job:"]
    for run in report.runs:
        success = (
            "never" if run.last_success_at is None else f"{run.last_success_at:%Y-%m-%d %H:%M}"
        )
        error = f"  {run.error_message.splitlines()[0][:100]}" if run.error_message else ""
        lines.append(
            f"  {run.scraper_name:32} {run.started_at:%Y-%m-%d %H:%M} {run.status:9}"
            f" {_duration(run.duration_seconds):>7} fetched={run.records_fetched}"
            f" errors={run.records_errors} last success {success}{error}"
        )
    if not report.runs:
        lines.append("  (no runs yet)")
    lines += ["", "most common errors:"]
    lines += [f"  {e.count:7d}  {e.kind:7} {e.reason[:120]}" for e in report.errors]
    if not report.errors:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


# --- html -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212529;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#6c757d}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #dee2e6;border-radius:8px;padding:12px 14px}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.strip{display:flex;gap:10px;overflow-x:auto}.strip figure{margin:0;width:132px}
.strip img{width:132px;height:auto;border:1px solid #dee2e6;border-radius:4px;display:block}
.strip figcaption{font-size:11px;color:#495057;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap}
.status-failed{color:#e03131;font-weight:600}.status-partial{color:#b76e00}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline SVG and CSS, ``data:`` images)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No fetch of any kind is allowed from this page, should anyone add one.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " img-src data:; style-src 'unsafe-inline'\">",
        f"<title>undecat status {report.generated_at:%Y-%m-%d %H:%M}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>undecat catalog pipeline</h1>",
        f'<p class="muted">generated {report.generated_at:%Y-%m-%d %H:%M:%S %Z}</p>',
        "<h2>Funnel per brand</h2>",
        _legend(
            [s for states in FUNNEL_COLUMNS.values() for s in states if s != "collage_ready"]
            + ["collage_ready"]
        ),
        '<div class="grid">',
        *(_funnel_card(funnel) for funnel in report.funnels),
        "</div>" if report.funnels else '<p class="muted">No products yet.</p></div>',
        "<h2>Runs over time (last 14 days)</h2>",
        _runs_chart(report),
        "<h2>Most common error reasons</h2>",
        _errors_chart(report),
        "<h2>Work per stage</h2>",
        _work_table(report),
        "<h2>Last run of every job</h2>",
        _runs_table(report),
        "<h2>Newest collages</h2>",
        _collage_strip(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _legend(states: Iterable[str]) -> str:
    seen: list[str] = []
    for state in states:
        if state not in seen:
            seen.append(state)
    items = "".join(
        f'<span><i style="background:{COLOURS.get(s, _OTHER)}"></i>{_e(s)}</span>' for s in seen
    )
    return f'<div class="legend">{items}</div>'


def _funnel_card(funnel: BrandFunnel) -> str:
    width, bar, gap, label = 340, 18, 10, 80
    rows = [*FUNNEL_COLUMNS, "availability"]
    height = len(rows) * (bar + gap) + 4
    svg = [
        f'<svg class="chart funnel" role="img" width="{width + label}" height="{height}"'
        f' viewBox="0 0 {width + label} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(funnel.brand)} funnel</title>"
    ]
    for index, column in enumerate(rows):
        y = index * (bar + gap)
        svg.append(f'<text x="0" y="{y + 13}" font-size="12">{_e(column)}</text>')
        svg.append(
            f'<rect x="{label}" y="{y}" width="{width}" height="{bar}" fill="#f1f3f5"></rect>'
        )
        if column == "availability":
            share = funnel.coverage_today
            svg.append(
                f'<rect x="{label}" y="{y}" width="{share * width:.1f}" height="{bar}"'
                f' fill="#1c7ed6"><title>available today: {funnel.available_today}'
                f" of {funnel.total} ({share:.0%})</title></rect>"
            )
            continue
        x = float(label)
        for state in FUNNEL_COLUMNS[column]:
            count = funnel.count(column, state)
            if not count or not funnel.total:
                continue
            w = count / funnel.total * width
            svg.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}"'
                f' fill="{COLOURS.get(state, _OTHER)}"><title>{_e(column)} {_e(state)}:'
                f" {count}</title></rect>"
            )
            x += w
    svg.append("</svg>")
    return (
        f'<div class="card"><strong>{_e(funnel.brand)}</strong>'
        f' <span class="muted">{funnel.total} products, availability today'
        f" {funnel.coverage_today:.0%}</span><br>{''.join(svg)}</div>"
    )


def _runs_chart(report: Report) -> str:
    if not report.daily_runs:
        return '<p class="muted">No runs in the last 14 days.</p>'
    statuses = sorted({s for day in report.daily_runs for s in day.by_status})
    most = max(sum(day.by_status.values()) for day in report.daily_runs) or 1
    column, gap, height, axis = 36, 10, 160, 24
    width = len(report.daily_runs) * (column + gap) + 40
    svg = [
        f'<svg class="chart runs" role="img" width="{width}" height="{height + axis}"'
        f' viewBox="0 0 {width} {height + axis}" xmlns="http://www.w3.org/2000/svg">'
        "<title>runs per day by status</title>"
        f'<text x="0" y="12" font-size="11" fill="#6c757d">{most}</text>'
        f'<line x1="30" y1="{height}" x2="{width}" y2="{height}" stroke="#adb5bd"></line>'
    ]
    for index, day in enumerate(report.daily_runs):
        x = 34 + index * (column + gap)
        y = float(height)
        for status in statuses:
            count = day.by_status.get(status, 0)
            if not count:
                continue
            h = count / most * (height - 16)
            y -= h
            svg.append(
                f'<rect x="{x}" y="{y:.1f}" width="{column}" height="{h:.1f}"'
                f' fill="{COLOURS.get(status, _OTHER)}"><title>{day.day}: {count} {_e(status)}'
                "</title></rect>"
            )
        svg.append(f'<text x="{x}" y="{height + 16}" font-size="10">{day.day:%m-%d}</text>')
    svg.append("</svg>")
    return _legend(statuses) + "".join(svg)


def _errors_chart(report: Report) -> str:
    if not report.errors:
        return '<p class="muted">No errors.</p>'
    most = max(e.count for e in report.errors) or 1
    bar, gap, width = 16, 8, 300
    height = len(report.errors) * (bar + gap)
    svg = [
        f'<svg class="chart errors" role="img" width="{width + 60}" height="{height}"'
        f' viewBox="0 0 {width + 60} {height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>most common error reasons</title>"
    ]
    rows = []
    for index, error in enumerate(report.errors):
        y = index * (bar + gap)
        w = max(2.0, error.count / most * width)
        colour = COLOURS["error"] if error.kind == "product" else COLOURS["partial"]
        svg.append(
            f'<rect x="0" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}">'
            f"<title>{_e(error.reason)}</title></rect>"
            f'<text x="{w + 6:.1f}" y="{y + 12}" font-size="12">{error.count}</text>'
        )
        rows.append(
            f'<tr><td class="n">{error.count}</td><td>{_e(error.kind)}</td>'
            f"<td>{_e(error.reason[:200])}</td></tr>"
        )
    svg.append("</svg>")
    return (
        '<div class="grid"><div>'
        + "".join(svg)
        + "</div><table><tr><th>count</th><th>where</th><th>reason</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def _work_table(report: Report) -> str:
    rows = "".join(
        f'<tr><td>{_e(w.stage)}</td><td class="n">{w.leased}</td><td class="n">{w.stale}</td>'
        f'<td class="n">{w.exhausted}</td></tr>'
        for w in report.work
    )
    return (
        "<table><tr><th>stage</th><th>leased</th><th>stale leases</th>"
        f"<th>out of attempts</th></tr>{rows}</table>"
    )


def _runs_table(report: Report) -> str:
    if not report.runs:
        return '<p class="muted">No runs yet.</p>'
    rows = []
    for run in report.runs:
        success = "never" if run.last_success_at is None else _time(run.last_success_at)
        error = run.error_message.splitlines()[0][:160] if run.error_message else ""
        rows.append(
            f"<tr><td>{_e(run.scraper_name)}</td><td>{_time(run.started_at)}</td>"
            f'<td class="status-{_e(run.status)}">{_e(run.status)}</td>'
            f'<td class="n">{_duration(run.duration_seconds)}</td>'
            f'<td class="n">{run.records_fetched}</td><td class="n">{run.records_errors}</td>'
            f"<td>{success}</td><td>{_e(error)}</td></tr>"
        )
    return (
        "<table><tr><th>job</th><th>started</th><th>status</th><th>took</th><th>fetched</th>"
        "<th>errors</th><th>last success</th><th>error</th></tr>" + "".join(rows) + "</table>"
    )


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _collage_strip(report: Report) -> str:
    shown: Sequence[str] = [
        f'<figure><img class="thumb" alt="{_e(c.brand)} {_e(c.external_id)}" src="{c.data_uri}">'
        f"<figcaption>{_e(c.brand)} · {_e(c.name or c.external_id)}</figcaption></figure>"
        for c in report.collages
        if c.data_uri is not None and c.data_uri.startswith("data:image/")
    ]
    if not shown:
        return '<p class="muted">No collages yet.</p>'
    return f'<div class="strip">{"".join(shown)}</div>'
