"""The SVG charts are well-formed, accessible (title, desc, role, labels) and draw the
numbers given: line points, stacked bar heights, ranked horizontal bars; text is
escaped; bad data is refused, not drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from oversight._svg import (
    HEIGHT,
    Series,
    bar_chart,
    hbar_chart,
    line_chart,
    nice_ceiling,
)

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 4), (1, 4), (4, 4), (5, 8), (34, 40), (41, 80), (240, 400), (1001, 2000)],
)
def test_the_axis_top_is_four_whole_steps_at_or_above_the_data(value: float, top: float) -> None:
    assert nice_ceiling(value) == top


def test_a_line_chart_is_labelled_for_screen_readers_and_describes_its_data() -> None:
    chart = line_chart(
        "logins",
        "每小时登录",
        ["00:00", "01:00", "02:00"],
        [Series("登录", (1, 4, 2)), Series("失败", (0, 3, 0))],
        unit="次",
    )
    root = parse(chart.svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "logins-title logins-desc"
    assert root.find("svg:title", NS).text == "每小时登录"  # type: ignore[union-attr]
    desc = root.find("svg:desc", NS).text  # type: ignore[union-attr]
    assert desc == chart.description
    assert "登录合计 7次，最高 4（01:00）" in desc
    assert "失败合计 3次，最高 3（01:00）" in desc
    lines = root.findall("svg:polyline", NS)
    assert [len(p.get("points", "").split()) for p in lines] == [3, 3]
    assert lines[1].get("stroke-dasharray")  # told apart without colour
    assert chart.rows == [("00:00", (1, 0)), ("01:00", (4, 3)), ("02:00", (2, 0))]


def test_line_points_sit_at_their_values_on_the_axis() -> None:
    chart = line_chart("c", "t", ["a", "b"], [Series("s", (0, 5))], unit="次")
    points = parse(chart.svg).find("svg:polyline", NS).get("points", "").split()  # type: ignore[union-attr]
    (_, y0), (_, y1) = (tuple(map(float, p.split(","))) for p in points)
    assert y0 == HEIGHT - 64  # zero on the baseline
    assert y1 == pytest.approx(16 + (HEIGHT - 80) * 3 / 8, abs=0.1)  # 5 of an axis to 8


def test_stacked_bars_add_up_and_zero_draws_nothing() -> None:
    chart = bar_chart(
        "decl",
        "每日申报",
        ["12-30", "12-31"],
        [Series("人员增加", (2, 0)), Series("人员减少", (2, 0))],
        unit="件",
    )
    rects = [
        r for r in parse(chart.svg).findall("svg:rect", NS) if r.find("svg:title", NS) is not None
    ]
    assert len(rects) == 2  # the empty day has no bar
    heights = [float(r.get("height", "0")) for r in rects]
    plot_h = HEIGHT - 16 - 64
    assert heights == pytest.approx([plot_h * 2 / 4] * 2, abs=0.1)  # 2 and 2 of an axis to 4
    assert float(rects[1].get("y", "0")) < float(rects[0].get("y", "0"))  # stacked on top


def test_horizontal_bars_keep_long_labels_and_show_the_value() -> None:
    chart = hbar_chart(
        "sources",
        "失败最多的来源",
        ["2001:db8::1", "192.0.2.7"],
        [30, 3],
        name="失败次数",
        unit="次",
    )
    root = parse(chart.svg)
    texts = [t.text for t in root.findall("svg:text", NS)]
    assert "2001:db8::1" in texts and "30" in texts and "3" in texts
    bars = [r for r in root.findall("svg:rect", NS) if r.find("svg:title", NS) is not None]
    widths = [float(b.get("width", "0")) for b in bars]
    assert widths[0] == pytest.approx(10 * widths[1], abs=0.5)


def test_text_is_escaped() -> None:
    chart = line_chart("x", "<b>&", ["<i>"], [Series('"s"<', (1,))], unit="&")
    root = parse(chart.svg)  # well-formed despite the markup characters
    assert root.find("svg:title", NS).text == "<b>&"  # type: ignore[union-attr]
    assert "<b>" not in chart.svg


def test_an_empty_chart_still_draws_axes_and_says_there_is_no_data() -> None:
    chart = bar_chart("e", "空", [], [Series("a", ())], unit="件")
    assert parse(chart.svg).find("svg:desc", NS).text == "空：没有数据。"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "series",
    [Series("short", (1,)), Series("negative", (1, -1)), Series("nan", (1, float("nan")))],
)
def test_bad_data_is_refused(series: Series) -> None:
    with pytest.raises(ValueError, match=series.name):
        line_chart("b", "t", ["a", "b"], [series], unit="次")
