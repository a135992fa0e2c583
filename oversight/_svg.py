"""Charts as SVG text, drawn on the server: no script, no style sheet, no library.

Pure functions from numbers to markup: :func:`line_chart` (a few series over many
points: logins per hour), :func:`bar_chart` (stacked bars: declarations per day by
type) and :func:`hbar_chart` (one ranked series with long labels: failing source
addresses).  Each returns a :class:`Chart` holding the SVG and the data it shows, so
the page prints the same numbers as a table for screen readers and paper.

The SVG is accessible by itself: ``role="img"`` with ``aria-labelledby`` pointing at
its ``<title>`` and ``<desc>`` (the desc states the totals and the range in words);
every text is escaped; colours come with a dash pattern (lines) or a legend order
(bars) so that a grey print or a colour-blind reader can still tell series apart.
Presentation attributes only (``fill=``, ``stroke=``): the console's CSP forbids
inline style.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 880
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 64  # plot margins: axis labels, legend
_FONT = 'font-family="Noto Sans CJK SC, Microsoft YaHei, sans-serif" font-size="12"'

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """A drawn chart and what it shows (for the table beside it)."""

    id: str
    title: str
    description: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    svg: str

    @property
    def rows(self) -> list[tuple[str, tuple[float, ...]]]:
        """(label, the value of each series) per point, for the data table."""
        return [
            (label, tuple(s.values[i] for s in self.series)) for i, label in enumerate(self.labels)
        ]


def nice_ceiling(value: float) -> float:
    """The axis top for *value*: four gridline steps of 1, 2 or 5 times a power of
    ten (at least 1), so that counts are labelled in whole numbers."""
    quarter = value / 4
    if quarter <= 1:
        return 4.0
    power = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 5, 10):
        if quarter <= step * power:
            return float(4 * step * power)
    return float(40 * power)  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(
                f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels"
            )
        if any(not math.isfinite(v) or v < 0 for v in s.values):
            raise ValueError(f"series {s.name!r} holds a negative or non-finite value")


def _open(chart_id: str, title: str, description: str, height: int = HEIGHT) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="{cid}-title {cid}-desc" id="{cid}" {_FONT}>',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]


def _y_axis(top: float, unit: str) -> list[str]:
    """Gridlines and labels at 0, ¼, ½, ¾ and the top."""
    out = []
    plot_h = HEIGHT - _TOP - _BOTTOM
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - _BOTTOM - plot_h * i / 4
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}" '
            f'stroke="{"#444444" if i == 0 else "#dddddd"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>'
        )
    out.append(
        f'<text x="12" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_TOP + plot_h / 2:.1f})">{escape(unit)}</text>'
    )
    return out


def _x_labels(labels: Sequence[str], xs: Sequence[float], every: int) -> list[str]:
    y = HEIGHT - _BOTTOM + 16
    return [
        f'<text x="{x:.1f}" y="{y}" text-anchor="middle">{escape(label)}</text>'
        for i, (label, x) in enumerate(zip(labels, xs, strict=True))
        if i % every == 0
    ]


def _legend(series: Sequence[Series], *, lines: bool) -> list[str]:
    out = []
    x = float(_LEFT)
    y = HEIGHT - 18
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        if lines:
            dash = DASHES[i % len(DASHES)]
            dashed = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x + 22:.1f}" y2="{y - 4}" '
                f'stroke="{colour}" stroke-width="2"{dashed}/>'
            )
        else:
            out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 28:.1f}" y="{y}">{escape(s.name)}</text>')
        x += 40 + 13 * len(s.name)
    return out


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    label_every: int = 1,
    description: str = "",
) -> Chart:
    """Each series as a line over *labels* (one label shown every *label_every*)."""
    _check(labels, series)
    top = nice_ceiling(max((max(s.values, default=0) for s in series), default=0))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    n = len(labels)
    xs = [_LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    desc = description or _describe(title, labels, series, unit)
    out = _open(chart_id, title, desc)
    out += _y_axis(top, unit)
    out += _x_labels(labels, xs, max(label_every, 1))
    for i, s in enumerate(series):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        points = " ".join(
            f"{x:.1f},{HEIGHT - _BOTTOM - plot_h * v / top:.1f}"
            for x, v in zip(xs, s.values, strict=True)
        )
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"'
            f"{dashed}><title>{escape(s.name)}</title></polyline>"
        )
    out += _legend(series, lines=True)
    out.append("</svg>")
    return Chart(chart_id, title, desc, tuple(labels), tuple(series), "\n".join(out))


def bar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    label_every: int = 1,
    description: str = "",
) -> Chart:
    """One bar per label, the series stacked in it (first series at the bottom)."""
    _check(labels, series)
    n = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    top = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(n, 1)
    bar_w = max(slot * 0.7, 1.0)
    xs = [_LEFT + slot * (i + 0.5) for i in range(n)]
    desc = description or _describe(title, labels, series, unit)
    out = _open(chart_id, title, desc)
    out += _y_axis(top, unit)
    out += _x_labels(labels, xs, max(label_every, 1))
    for i, label in enumerate(labels):
        base = 0.0
        for j, s in enumerate(series):
            v = s.values[i]
            if v <= 0:
                continue
            y = HEIGHT - _BOTTOM - plot_h * (base + v) / top
            out.append(
                f'<rect x="{xs[i] - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{plot_h * v / top:.1f}" fill="{COLOURS[j % len(COLOURS)]}" '
                f'stroke="#ffffff" stroke-width="0.5"><title>{escape(label)} '
                f"{escape(s.name)}：{_number(v)}</title></rect>"
            )
            base += v
    out += _legend(series, lines=False)
    out.append("</svg>")
    return Chart(chart_id, title, desc, tuple(labels), tuple(series), "\n".join(out))


def hbar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    name: str,
    unit: str,
    description: str = "",
) -> Chart:
    """One horizontal bar per label, largest expected first (long labels fit)."""
    series = (Series(name, tuple(values)),)
    _check(labels, series)
    top = nice_ceiling(max(values, default=0))
    left, row_h = 260, 22
    height = max(_TOP + row_h * len(labels) + 40, 80)
    plot_w = WIDTH - left - _RIGHT - 40
    desc = description or _describe(title, labels, series, unit)
    out = _open(chart_id, title, desc, height)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = _TOP + row_h * i
        w = plot_w * v / top
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}：{_number(v)}</title></rect>'
        )
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{_number(v)}</text>')
    axis_y = _TOP + row_h * len(labels) + 4
    out.append(
        f'<line x1="{left}" y1="{_TOP}" x2="{left}" y2="{axis_y}" '
        'stroke="#444444" stroke-width="1"/>'
    )
    out.append(f'<text x="{left}" y="{axis_y + 18}">{escape(unit)}（0 – {_number(top)}）</text>')
    out.append("</svg>")
    return Chart(chart_id, title, desc, tuple(labels), series, "\n".join(out))


def _describe(title: str, labels: Sequence[str], series: Sequence[Series], unit: str) -> str:
    """The chart in one sentence: range, and each series' total and peak."""
    if not labels:
        return f"{title}：没有数据。"
    parts = []
    for s in series:
        total = sum(s.values)
        peak = max(s.values, default=0)
        where = labels[s.values.index(peak)] if peak > 0 else "—"
        parts.append(f"{s.name}合计 {_number(total)}{unit}，最高 {_number(peak)}（{where}）")
    return f"{title}，{labels[0]} 至 {labels[-1]}：" + "；".join(parts) + "。"
