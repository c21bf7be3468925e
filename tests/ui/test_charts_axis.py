"""The chart's decisions without Textual: gaps, thinning, time and value ticks, marks; and the
drawing as text (plotext through ``draw``), read back column by column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from screens.widgets.chart import NO_SAMPLES, ChartData, Series, draw, series
from screens.widgets.chart_axis import (
    chart_title,
    format_value,
    sample_interval,
    segments,
    thin,
    time_ticks,
    value_range,
    value_ticks,
    visible_marks,
    window_label,
)

END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
MINUTE = timedelta(minutes=1)


def with_gap() -> list[tuple[datetime, float | None]]:
    """Two hours of 1-minute samples near 50; no sample 10:30-10:59 (a 31-minute hole) and
    a poll without the figure at 11:20."""
    start = END - timedelta(hours=2)
    points: list[tuple[datetime, float | None]] = []
    for i in range(121):
        at = start + i * MINUTE
        if start + timedelta(minutes=30) <= at < start + timedelta(minutes=60):
            continue  # the node was not scraped at all
        points.append((at, None if i == 80 else 50.0 + (i % 10)))
    return points


def test_a_gap_splits_the_line_and_no_run_holds_a_zero() -> None:
    runs = segments(with_gap())
    assert [(r[0][0], r[-1][0]) for r in runs] == [
        (END - timedelta(hours=2), END - timedelta(minutes=91)),
        (END - timedelta(minutes=60), END - timedelta(minutes=41)),
        (END - timedelta(minutes=39), END),
    ]
    assert all(v >= 50.0 for run in runs for _, v in run)  # nothing filled in, no zero


def test_one_missed_sample_is_bridged_two_are_a_gap() -> None:
    times = [END + i * MINUTE for i in (0, 1, 2, 4, 5, 8, 9)]  # 3 missing; 6 and 7 missing
    runs = segments([(t, 1.0) for t in times])
    assert [len(r) for r in runs] == [5, 2]
    assert sample_interval(times) == MINUTE


def test_a_few_samples_far_apart_are_not_joined() -> None:
    # the bundled sample two years before two live polls: the median step is the long one
    far = [(END - timedelta(days=800), 1.0), (END - timedelta(minutes=3), 2.0), (END, 2.1)]
    assert [len(r) for r in segments(far)] == [1, 2]


def test_thinning_keeps_the_gaps_and_the_values() -> None:
    points = with_gap()
    thinned = thin(points, END - timedelta(hours=2), END, 20)
    assert len(thinned) < len(points)
    assert sum(1 for _, v in thinned if v is None) == 2  # one marker per gap
    assert len(segments(thinned)) == 3
    values = [v for _, v in thinned if v is not None]
    assert min(values) >= 50.0 and max(values) <= 59.0


def gap_columns(text: str, data: ChartData, width: int) -> tuple[set[int], set[int]]:
    """(columns holding line cells, columns inside the 10:30-11:00 hole) of a drawn chart."""
    lines = text.splitlines()
    inner = lines[1:-2]  # between the frame's top and bottom
    first = lines[0].index("┌") + 1
    last = lines[0].index("┐")
    drawn = {
        c for line in inner for c in range(first, last) if "\u2800" < line[c] <= "\u28ff"
    }  # braille cells
    span = (data.end - data.start).total_seconds()
    columns = last - first

    def column(at: datetime) -> int:
        return first + int((at - data.start).total_seconds() / span * columns)

    hole = set(range(column(END - timedelta(minutes=89)) + 1, column(END - timedelta(minutes=61))))
    return drawn, hole


def test_the_drawn_gap_is_empty_and_not_at_zero() -> None:
    data = ChartData(END - timedelta(hours=2), END, "%", (series("GPU", with_gap()),), tz=UTC)
    text = draw(data, 80, 12).plain
    drawn, hole = gap_columns(text, data, 80)
    assert hole and not drawn & hole, text  # nothing drawn in the hole, not even a zero line
    scale = [line.split("┤")[0].strip() for line in text.splitlines() if "┤" in line]
    assert "0%" not in scale and "50%" in scale  # the scale does not reach down to a fake zero
    assert "10:30" in text and "11:00" in text  # the hole, 10:30-11:00, on a labelled axis


def test_no_samples_in_the_range_is_said() -> None:
    old = series("x", [(END - timedelta(days=3), 5.0)])
    data = ChartData(END - timedelta(hours=1), END, "W", (old,))
    assert data.empty and draw(data, 80, 9).plain == NO_SAMPLES
    assert draw(ChartData(END - timedelta(hours=1), END, "W"), 80, 9).plain == NO_SAMPLES


def test_values_that_are_not_numbers_become_gaps() -> None:
    made = series("x", [(END, 1), (END + MINUTE, None), (END + 2 * MINUTE, 2.5)])
    assert made == Series("x", ((END, 1.0), (END + MINUTE, None), (END + 2 * MINUTE, 2.5)))


def test_time_ticks_up_to_a_day_are_round_hh_mm() -> None:
    ticks = time_ticks(END - timedelta(hours=24), END, 100, UTC)
    assert [label for _, label in ticks][:3] == ["12:00", "14:00", "16:00"]
    assert all(t.minute == 0 and t.hour % 2 == 0 for t, _ in ticks)
    hour = time_ticks(END - timedelta(hours=1), END, 60, UTC)
    assert [label for _, label in hour] == [f"11:{m:02d}" for m in range(0, 60, 10)] + ["12:00"]


def test_time_ticks_beyond_a_day_name_the_day() -> None:
    week = [label for _, label in time_ticks(END - timedelta(days=7), END, 100, UTC)]
    assert week[0] == "Thu 19 Nov" and week[-1] == "Wed 25 Nov" and len(week) == 7
    two_days = [label for _, label in time_ticks(END - timedelta(days=2), END, 120, UTC)]
    assert two_days[:3] == ["Mon 12:00", "Mon 18:00", "Tue 00:00"]


def test_time_ticks_are_local_times() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    ticks = time_ticks(END - timedelta(hours=6), END, 60, india)
    assert [label for _, label in ticks] == [f"{h}:00" for h in range(12, 18)]  # 06:30 UTC on
    assert ticks[0][0] == datetime(2026, 11, 25, 6, 30, tzinfo=UTC)


def test_value_ticks_and_their_units() -> None:
    assert value_ticks(0, 100, 4) == [0, 25, 50, 75, 100]
    assert value_ticks(38.5, 70.5, 4) == [40, 50, 60, 70]
    assert value_ticks(0, 2300, 4) == [0, 1000, 2000]
    assert [format_value(t, "GPUs", 500, 2000) for t in (0, 500, 1500)] == ["0", "0.5K", "1.5K"]
    assert format_value(72, "°C", 2) == "72°C"
    assert format_value(62.5, "%", 2.5) == "62.5%"
    assert format_value(300, "W", 100) == "300 W"
    assert format_value(420, "USD", 20) == "$420"
    assert format_value(0.075, "USD", 0.005) == "$0.075"
    assert format_value(2.5e9, "USD", 5e8, 3e9) == "$2.5B"


def test_the_scale_keeps_zero_near_and_percentages_within_100() -> None:
    assert value_range([31.2, 88.4], "%") == (0.0, 91.26)
    assert value_range([50.0, 100.0], "%") == (47.5, 100.0)
    assert value_range([60.0, 70.0], "°C")[0] > 0  # a temperature band, not from 0 °C
    assert value_range([5.0, 5.0], "W") == (4.5, 5.5)  # a flat line still gets a scale


def test_titles_name_the_unit_and_the_range() -> None:
    live = window_label(timedelta(hours=24), END, True)
    assert chart_title("GPU utilization", "%", live) == "GPU utilization, % — last 24 h"
    travelled = window_label(timedelta(days=7), END, False, UTC)
    assert travelled == "7 d to Wed 25 Nov 12:00"
    assert window_label(timedelta(hours=1), END, True) == "last 1 h"
    assert window_label(timedelta(days=880), END, True) == "last 2.4 years"


def test_marks_outside_are_dropped_and_labels_never_overlap() -> None:
    start = END - timedelta(hours=24)
    marks = [
        (start - timedelta(hours=1), "before"),
        (start + timedelta(hours=5), "missed block 1234"),
        (start + timedelta(hours=5, minutes=10), "missed"),
        (start + timedelta(hours=20), "down"),
    ]
    shown = visible_marks(marks, start, END, 100)
    assert shown == [
        (start + timedelta(hours=5), "missed bl…"),  # cut short, and it says so
        (start + timedelta(hours=5, minutes=10), ""),  # its line stays, its label would overlap
        (start + timedelta(hours=20), "down"),
    ]


def test_marks_and_a_status_timeline_are_drawn_without_colour() -> None:
    start = END - timedelta(hours=24)
    ours = series("ours", [(start + timedelta(hours=h), h % 2) for h in range(25)])
    theirs = series("io.net says", [(start + timedelta(hours=h), 1) for h in range(25)])
    data = ChartData(
        start,
        END,
        "",
        (ours, theirs),
        marks=((start + timedelta(hours=6), "missed"),),
        levels=((0.0, "down"), (1.0, "up")),
        tz=UTC,
    )
    text = draw(data, 80, 10)
    plain = text.plain
    assert "missed" in plain and "│" in plain.splitlines()[3]  # the mark's line, mid-plot
    assert "up┤" in plain and "down┤" in plain  # the scale names the states
    legend = plain.splitlines()[-1]
    assert "⢕ ours" in legend and "• io.net says" in legend  # told apart by marker, not colour
    assert "•" in "".join(plain.splitlines()[1:-3])


def test_a_mark_label_carries_no_escape_to_the_chart() -> None:
    """The chart reads its drawing back as ANSI: an escape in a label would be obeyed."""
    start = END - timedelta(hours=24)
    (shown,) = visible_marks([(start + timedelta(hours=1), "\x1b[31mfail\u202e")], start, END, 100)
    assert shown[1] and not any(c in shown[1] for c in "\x1b\u202e"), shown
