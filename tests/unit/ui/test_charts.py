"""The server-side SVG timeline: one group per plan, gaps not bridged, windows, empty state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from xml.etree import ElementTree

from planmon.ui.charts import Series, Window, timeline_svg

T0 = datetime(2026, 11, 10)
HOUR = timedelta(hours=1)
SVG = "{http://www.w3.org/2000/svg}"


def _chart(series: list[Series], windows: tuple[Window, ...] = ()) -> ElementTree.Element:
    svg = timeline_svg(series, windows=windows, title="CPU", unit="us", start=T0, end=T0 + 48 * HOUR)
    return ElementTree.fromstring(svg)  # well-formed XML, or this raises


def test_one_group_per_plan_with_a_line_per_run_of_intervals() -> None:
    steady = Series(1, "plan 1", [(T0 + h * HOUR, 10_000.0) for h in range(10)])
    gappy = Series(2, "plan 2 <&>", [(T0 + h * HOUR, 40_000.0) for h in (0, 1, 2, 20, 21)])
    root = _chart([steady, gappy])
    groups = root.findall(f"{SVG}g[@class='series']")
    assert [g.get("data-plan-id") for g in groups] == ["1", "2"]
    assert [len(g.findall(f"{SVG}polyline")) for g in groups] == [1, 2]  # the 17-hour gap is not drawn
    assert [len(g.findall(f"{SVG}circle")) for g in groups] == [10, 5]
    assert groups[1].find(f"{SVG}title").text == "plan 2 <&>"  # escaped in the markup, intact here
    assert groups[0].get("stroke") != groups[1].get("stroke")


def test_higher_values_are_drawn_higher_and_the_axis_reaches_past_the_maximum() -> None:
    root = _chart([Series(1, "a", [(T0, 10_000.0)]), Series(2, "b", [(T0, 40_000.0)])])
    y = [
        float(c.get("cy"))
        for g in root.findall(f"{SVG}g[@class='series']")
        for c in g.findall(f"{SVG}circle")
    ]
    assert y[1] < y[0]
    ticks = [t.text for t in root.findall(f"{SVG}text[@class='tick']")]
    assert "50 ms" in ticks  # 40 ms rounded up to a readable top


def test_windows_are_shaded_in_time_order() -> None:
    windows = (
        Window("baseline", T0, T0 + 24 * HOUR, "baseline 1 day"),
        Window("regressed", T0 + 24 * HOUR, T0 + 30 * HOUR, "regressed"),
    )
    root = _chart([Series(1, "a", [(T0, 1.0)])], windows)
    rects = root.findall(f"{SVG}rect")
    assert [r.get("data-window") for r in rects] == ["baseline", "regressed"]
    assert float(rects[0].get("x")) < float(rects[1].get("x"))
    assert abs(float(rects[0].get("x")) + float(rects[0].get("width")) - float(rects[1].get("x"))) < 0.2


def test_no_points_is_an_empty_state_not_an_error() -> None:
    svg = timeline_svg([], title="CPU", unit="us", start=T0, end=T0 + HOUR)
    assert "no runtime statistics in this range" in svg
    assert not re.search('<g class="series"', svg)


def test_the_empty_state_says_what_the_caller_knows_is_missing() -> None:
    svg = timeline_svg([], title="CPU", unit="us", start=T0, end=T0 + HOUR, empty="no CPU <here>")
    assert "no CPU &lt;here&gt;" in svg and "no runtime statistics" not in svg
    ElementTree.fromstring(svg)
