"""
Small charts drawn on the server as inline SVG: no JavaScript, no library, readable by a screen
reader (role="img" with a title and a description; every bar carries its own <title>, which
browsers also show on hover), and printable. The dashboard puts the same figures in a table too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# The admin's own blues, so the charts sit naturally in its pages.
CONVERSATIONS_COLOUR = "#79aec8"
QUESTIONS_COLOUR = "#417690"


@dataclass
class Series:
    name: str
    colour: str
    values: Sequence[int]


@dataclass
class Segment:
    label: str
    value: int
    colour: str


def nice_step(peak: float, ticks: int = 4) -> int:
    """A whole-number grid step so that `ticks` steps reach at least `peak` (counts are whole)."""
    wanted = max(peak, 1) / ticks
    magnitude = 10 ** max(0, math.floor(math.log10(wanted)))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= wanted and float(step * magnitude).is_integer():
            return int(step * magnitude)
    return int(10 * magnitude)


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    title: str,
    *,
    tick_every: int = 7,
    width: int = 760,
    height: int = 240,
) -> SafeString:
    """Grouped vertical bars, one group per label (e.g. per day), one bar per series."""
    left, right, top, bottom = 40, 10, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for s in series for v in s.values), default=0)
    step = nice_step(peak)
    y_max = step * 4
    n = max(len(labels), 1)
    slot = plot_w / n
    bar_w = max(1.0, (slot * 0.8) / max(len(series), 1))

    totals = ", ".join(f"{s.name}: {sum(s.values)}" for s in series)
    desc = f"{title}. Totals over {len(labels)} days: {totals}. Highest day: {peak}."
    parts = [_svg_open(width, height, title, desc)]
    # Horizontal grid lines with their values.
    for i in range(5):
        value = step * i
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#666">{value}</text>'
        )
    for index, label in enumerate(labels):
        x0 = left + slot * index + slot * 0.1
        for k, s in enumerate(series):
            value = s.values[index]
            h = plot_h * value / y_max
            x = x0 + bar_w * k
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{s.colour}"><title>{escape(label)}: {value} '
                f"{escape(s.name.lower())}</title></rect>"
            )
        # Counted back from the last label, so the latest day (today) is always named.
        if (len(labels) - 1 - index) % tick_every == 0:
            cx = left + slot * index + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'font-size="11" fill="#666">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="#999" stroke-width="1"/>'
    )
    # Legend, top left.
    x = left
    for s in series:
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{s.colour}"/>'
            f'<text class="legend" x="{x + 17}" y="16" font-size="12" fill="#333">'
            f"{escape(s.name)}</text>"
        )
        x += 30 + 7 * len(s.name)
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))


def share_bar(segments: Sequence[Segment], title: str, width: int = 760) -> SafeString:
    """One horizontal bar split into labelled shares (e.g. how answers were given)."""
    height = 46
    total = sum(s.value for s in segments)
    described = ", ".join(f"{s.label}: {s.value} ({_percent(s.value, total)})" for s in segments)
    parts = [_svg_open(width, height, title, described or "No answers yet.")]
    if not total:
        parts.append(
            f'<rect x="0" y="4" width="{width}" height="22" fill="#eee"/>'
            f'<text x="8" y="20" font-size="12" fill="#666">No answers yet</text>'
        )
    x = 0.0
    for s in segments:
        if not total or not s.value:
            continue
        w = width * s.value / total
        parts.append(
            f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="22" fill="{s.colour}">'
            f"<title>{escape(s.label)}: {s.value} ({_percent(s.value, total)})</title></rect>"
        )
        if w > 60:
            parts.append(
                f'<text class="on-bar" x="{x + 6:.1f}" y="20" font-size="12" fill="#fff">'
                f"{_percent(s.value, total)}</text>"
            )
        x += w
    # Legend under the bar.
    x = 0
    for s in segments:
        text = f"{s.label} {s.value}"
        parts.append(
            f'<rect x="{x}" y="32" width="10" height="10" fill="{s.colour}"/>'
            f'<text class="legend" x="{x + 14}" y="41" font-size="11" fill="#333">'
            f"{escape(text)}</text>"
        )
        x += 30 + 6 * len(text)
    parts.append("</svg>")
    return mark_safe("".join(str(p) for p in parts))


def _svg_open(width: int, height: int, title: str, description: str) -> SafeString:
    """The opening <svg> tag with a title and description that screen readers announce."""
    chart_id = _id(title)
    return format_html(
        '<svg class="shopbot-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-labelledby="{}-t {}-d" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-t">{}</title><desc id="{}-d">{}</desc>',
        width,
        height,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        description,
    )


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:40]


def _percent(value: int, total: int) -> str:
    return f"{round(100 * value / total)}%" if total else "–"
