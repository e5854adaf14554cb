"""``report --html FILE``: one self-contained page of a run, to attach to a ticket.

Owns the page: the summary (lines per verdict), the failures (grouped, then
line by line), a chart of the run over time (creates sent, tasks finished per
minute, tasks in flight) and a histogram of the task durations. Inline CSS
and SVG only: no script, no font, no image, no external asset. Every text is
masked and HTML-escaped.

Must never import: ``argparse``, ``rich``.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ..bulk._mask import mask
from ..bulk._report import ReportRow

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #ddd;
text-align:left;font-size:.9em}th{background:#f4f4f4}td.n{text-align:right}
.succeeded{color:#1a7f37}.failed,.refused,.invalid{color:#b42318}.in_doubt{color:#b54708}
svg{background:#fafafa;border:1px solid #e4e4e4}.legend span{margin-right:1.2em}
.sw{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.3em}
"""

_W, _H, _PAD = 720, 220, 40


def _t(text: object) -> str:
    return html.escape(str(mask(str(text))))


def _minute_series(rows: Sequence[ReportRow]) -> tuple[datetime | None, list[tuple[int, int, int]]]:
    """``(start, [(sent, finished, in flight at the end) per minute])``."""
    sent = [r.submitting_at for r in rows if r.submitting_at is not None]
    done = [r.finished_at for r in rows if r.finished_at is not None]
    if not sent and not done:
        return None, []
    start = min(sent + done).replace(second=0, microsecond=0)
    end = max(sent + done)
    minutes = int((end - start).total_seconds() // 60) + 1

    def bucket(when: datetime) -> int:
        return int((when - start).total_seconds() // 60)

    sent_by = Counter(bucket(t) for t in sent)
    done_by = Counter(bucket(t) for t in done)
    series: list[tuple[int, int, int]] = []
    flying = 0
    for m in range(minutes):
        flying += sent_by[m] - done_by[m]
        series.append((sent_by[m], done_by[m], max(flying, 0)))
    return start, series


def _timeline_svg(rows: Sequence[ReportRow]) -> str:
    start, series = _minute_series(rows)
    if start is None:
        return "<p>No line has been sent yet.</p>"
    top = max(max(s, d, f) for s, d, f in series) or 1
    n = len(series)
    slot = (_W - 2 * _PAD) / n
    bar = max(slot / 2 - 1, 0.5)
    parts = [f'<svg role="img" aria-label="run over time" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    base = _H - _PAD
    scale = (_H - 2 * _PAD) / top
    points = []
    for i, (s, d, f) in enumerate(series):
        x = _PAD + i * slot
        parts.append(
            f'<rect class="sent" x="{x:.1f}" y="{base - s * scale:.1f}" width="{bar:.1f}" '
            f'height="{s * scale:.1f}" fill="#4e79a7"><title>minute {i}: {s} sent</title></rect>'
        )
        parts.append(
            f'<rect class="finished" x="{x + bar:.1f}" y="{base - d * scale:.1f}" '
            f'width="{bar:.1f}" height="{d * scale:.1f}" fill="#59a14f">'
            f"<title>minute {i}: {d} finished</title></rect>"
        )
        points.append(f"{x + bar:.1f},{base - f * scale:.1f}")
    parts.append(
        f'<polyline class="in-flight" fill="none" stroke="#e15759" stroke-width="2" '
        f'points="{" ".join(points)}"/>'
    )
    parts.append(
        f'<line x1="{_PAD}" y1="{base}" x2="{_W - _PAD}" y2="{base}" stroke="#888"/>'
        f'<text x="{_PAD}" y="{_H - 12}" font-size="11">{_t(start.isoformat())}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 12}" font-size="11" text-anchor="end">'
        f"+{n} min</text>"
        f'<text x="4" y="{_PAD}" font-size="11">{top}</text></svg>'
    )
    legend = (
        '<p class="legend"><span><i class="sw" style="background:#4e79a7"></i>sent per minute'
        '</span><span><i class="sw" style="background:#59a14f"></i>finished per minute</span>'
        '<span><i class="sw" style="background:#e15759"></i>in flight</span></p>'
    )
    return "".join(parts) + legend


def _durations_svg(rows: Sequence[ReportRow]) -> str:
    durations = sorted(d for r in rows if (d := r.duration) is not None and d >= 0)
    if not durations:
        return "<p>No task has finished yet.</p>"
    bins = min(20, max(1, int(math.sqrt(len(durations)))))
    low, high = durations[0], durations[-1]
    width = (high - low) / bins or 1.0
    counts = Counter(min(int((d - low) / width), bins - 1) for d in durations)
    top = max(counts.values())
    slot = (_W - 2 * _PAD) / bins
    base = _H - _PAD
    scale = (_H - 2 * _PAD) / top
    parts = [f'<svg role="img" aria-label="task durations" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    for i in range(bins):
        c = counts[i]
        lo = low + i * width
        parts.append(
            f'<rect class="duration" x="{_PAD + i * slot:.1f}" y="{base - c * scale:.1f}" '
            f'width="{max(slot - 2, 0.5):.1f}" height="{c * scale:.1f}" fill="#76b7b2">'
            f"<title>{lo:.1f}-{lo + width:.1f} s: {c} task(s)</title></rect>"
        )
    median = durations[len(durations) // 2]
    parts.append(
        f'<line x1="{_PAD}" y1="{base}" x2="{_W - _PAD}" y2="{base}" stroke="#888"/>'
        f'<text x="{_PAD}" y="{_H - 12}" font-size="11">{low:.1f} s</text>'
        f'<text x="{_W - _PAD}" y="{_H - 12}" font-size="11" text-anchor="end">{high:.1f} s'
        f'</text><text x="4" y="{_PAD}" font-size="11">{top}</text></svg>'
    )
    return "".join(parts) + (
        f"<p>{len(durations)} task(s); median {median:.1f} s, longest {high:.1f} s "
        "(from the create being sent to the verdict being recorded)</p>"
    )


def render_html(rows: Sequence[ReportRow], *, plan_name: str, journal: str) -> str:
    """The page, as text."""
    verdicts = Counter(r.verdict for r in rows)
    failed = [r for r in rows if r.failed]
    groups = Counter(
        (r.verdict, r.code or "-", r.meaning or (r.error or "")[:80]) for r in failed
    ).most_common()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>koodrive-async report: {_t(plan_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Run report: {_t(plan_name)}</h1>",
        f"<p>journal {_t(journal)}; {len(rows)} plan line(s)</p>",
        '<h2>Summary</h2><table class="summary"><tr><th>verdict</th><th>lines</th></tr>',
    ]
    for verdict, count in sorted(verdicts.items(), key=lambda kv: -kv[1]):
        out.append(
            f'<tr><td class="{_t(verdict)}">{_t(verdict)}</td><td class="n">{count}</td></tr>'
        )
    out.append("</table>")
    out.append(f"<h2>Failures ({len(failed)})</h2>")
    if failed:
        out.append('<table class="groups"><tr><th>verdict</th><th>code</th><th>meaning / error'
                   "</th><th>lines</th></tr>")  # fmt: skip
        for (verdict, code, what), count in groups:
            out.append(
                f'<tr><td class="{_t(verdict)}">{_t(verdict)}</td><td>{_t(code)}</td>'
                f'<td>{_t(what)}</td><td class="n">{count}</td></tr>'
            )
        out.append("</table>")
        out.append('<table class="failures"><tr><th>line</th><th>kind</th><th>verdict</th>'
                   "<th>task id</th><th>code</th><th>error</th><th>attempts</th></tr>")  # fmt: skip
        for r in failed:
            out.append(
                f'<tr><td class="n">{r.line}</td><td>{_t(r.kind or "-")}</td>'
                f'<td class="{_t(r.verdict)}">{_t(r.verdict)}</td><td>{_t(r.task_id or "-")}</td>'
                f"<td>{_t(r.code or '-')}</td><td>{_t(r.meaning or r.error or '')}</td>"
                f'<td class="n">{r.attempts}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    retried = [r for r in rows if r.retried]
    out.append(f"<h2>Retried lines ({len(retried)})</h2>")
    if retried:
        out.append('<table class="failures"><tr><th>line</th><th>kind</th><th>verdict</th>'
                   "<th>attempts</th><th>task id</th><th>earlier task ids</th>"
                   "<th>files of the last attempt</th></tr>")  # fmt: skip
        for r in retried:
            sent = " ".join(r.sent_files) if r.sent_files else "the whole line"
            out.append(
                f'<tr><td class="n">{r.line}</td><td>{_t(r.kind or "-")}</td>'
                f'<td class="{_t(r.verdict)}">{_t(r.verdict)}</td><td class="n">{r.attempts}</td>'
                f"<td>{_t(r.task_id or '-')}</td><td>{_t(' '.join(r.previous_task_ids) or '-')}"
                f"</td><td>{_t(sent)}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out.append("<h2>The run over time</h2>")
    out.append(_timeline_svg(rows))
    out.append("<h2>Task durations</h2>")
    out.append(_durations_svg(rows))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(path: Path, rows: Sequence[ReportRow], *, plan_name: str, journal_name: str) -> None:
    """Write the page of a plan's report ``rows`` to ``path`` (every line, failed or not)."""
    path.write_text(render_html(rows, plan_name=plan_name, journal=journal_name), encoding="utf-8")
