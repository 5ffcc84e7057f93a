"""Server-side SVG charts: a query's timeline, one line per plan, windows shaded (no JavaScript).

The chart is what Query Store's "tracked queries" view shows: the metric per interval, one series per
plan, so a plan change reads as one colour giving way to another. Each series is a ``<g
class="series" data-plan-id="...">`` holding one polyline per run of consecutive intervals (a plan
absent for a while is not drawn across the gap) and a dot per point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
)  # fmt: skip
WIDTH, HEIGHT = 1000, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 14, 34
GAP_FACTOR = 1.5  # a gap longer than this many typical intervals breaks a series' line
NO_POINTS = "no runtime statistics in this range"


@dataclass(frozen=True, slots=True)
class Series:
    """One plan's points: (interval start, value) oldest first; ``label`` names it in the legend."""

    plan_id: int
    label: str
    points: Sequence[tuple[datetime, float]]


@dataclass(frozen=True, slots=True)
class Window:
    """A shaded span: ``kind`` is ``baseline`` or ``regressed``."""

    kind: str
    start: datetime
    end: datetime
    label: str


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def timeline_svg(
    series: Sequence[Series],
    *,
    windows: Sequence[Window] = (),
    title: str,
    unit: str,
    start: datetime,
    end: datetime,
    colours: Mapping[int, str] | None = None,
    empty: str = NO_POINTS,
) -> str:
    """An SVG line chart of ``series`` between ``start`` and ``end``; ``empty`` says why there is
    nothing to draw when there are no points."""
    colours = colours or {s.plan_id: colour(i) for i, s in enumerate(series)}
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    if end <= start or not values:
        parts.append(
            f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
            f"{escape(empty)}</text></svg>"
        )
        return "".join(parts)
    top = _nice_ceiling(max(values))
    scale = _Scale(start, end, top)
    parts.extend(_window_rects(windows, scale))
    parts.extend(_axes(scale, unit))
    gap = _typical_interval(series) * GAP_FACTOR
    for item in series:
        parts.append(_series_group(item, scale, colours[item.plan_id], gap))
    parts.append("</svg>")
    return "".join(parts)


class _Scale:
    def __init__(self, start: datetime, end: datetime, top: float) -> None:
        self.start, self.end, self.top = start, end, top
        self.span = (end - start).total_seconds()
        self.plot_width = WIDTH - LEFT - RIGHT
        self.plot_height = HEIGHT - TOP - BOTTOM

    def x(self, moment: datetime) -> float:
        share = (moment - self.start).total_seconds() / self.span
        return LEFT + min(max(share, 0.0), 1.0) * self.plot_width

    def y(self, value: float) -> float:
        return TOP + self.plot_height * (1.0 - min(max(value / self.top, 0.0), 1.0))


def _window_rects(windows: Sequence[Window], scale: _Scale) -> list[str]:
    parts = []
    for window in windows:
        x0, x1 = scale.x(window.start), scale.x(window.end)
        if x1 - x0 < 1:
            x1 = x0 + 1
        parts.append(
            f'<rect class="window {escape(window.kind)}" data-window="{escape(window.kind)}" '
            f'x="{x0:.1f}" y="{TOP}" width="{x1 - x0:.1f}" height="{scale.plot_height}">'
            f"<title>{escape(window.label)}</title></rect>"
            f'<text class="window-label" x="{x0 + 4:.1f}" y="{TOP + 12}">{escape(window.kind)}</text>'
        )
    return parts


def _axes(scale: _Scale, unit: str) -> list[str]:
    bottom = TOP + scale.plot_height
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>',
    ]
    for i in range(5):
        value = scale.top * i / 4
        y = scale.y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_format_value(value, unit))}</text>"
        )
    for moment in _time_ticks(scale.start, scale.end):
        x = scale.x(moment)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{moment:%m-%d %H:%M}</text>"
        )
    return parts


def _series_group(item: Series, scale: _Scale, stroke: str, gap: timedelta) -> str:
    points = [(t, v) for t, v in item.points if math.isfinite(v)]
    parts = [
        f'<g class="series" data-plan-id="{item.plan_id}" stroke="{stroke}" fill="{stroke}">'
        f"<title>{escape(item.label)}</title>"
    ]
    for run in _runs(points, gap):
        coordinates = " ".join(f"{scale.x(t):.1f},{scale.y(v):.1f}" for t, v in run)
        parts.append(f'<polyline fill="none" stroke-width="2" points="{coordinates}"/>')
    parts.extend(f'<circle r="2" cx="{scale.x(t):.1f}" cy="{scale.y(v):.1f}"/>' for t, v in points)
    parts.append("</g>")
    return "".join(parts)


def _runs(points: Sequence[tuple[datetime, float]], gap: timedelta) -> list[list[tuple[datetime, float]]]:
    runs: list[list[tuple[datetime, float]]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= gap:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _typical_interval(series: Sequence[Series]) -> timedelta:
    steps = sorted(
        b[0] - a[0] for s in series for a, b in zip(s.points, s.points[1:], strict=False) if b[0] > a[0]
    )
    return steps[len(steps) // 2] if steps else timedelta(hours=1)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return 10.0 * magnitude


def _time_ticks(start: datetime, end: datetime, count: int = 6) -> list[datetime]:
    step = (end - start) / count
    return [start + step * i for i in range(count + 1)]


def _format_value(value: float, unit: str) -> str:
    if unit == "us":
        if value >= 1_000_000:
            return f"{value / 1_000_000:g} s"
        if value >= 1_000:
            return f"{value / 1_000:g} ms"
        return f"{value:g} µs"
    return f"{value:g}"
