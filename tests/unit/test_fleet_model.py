"""TableModel, the data behind the Fleet and Rewards tables: sort, filter and group, no app."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from screens.widgets.table_model import Group, TableModel, is_missing, mixed_key


@dataclass(frozen=True)
class Col:
    """The least a column needs to be in the model (the widget's Column adds the drawing)."""

    key: str
    sortable: bool = True


COLUMNS = [Col("name"), Col("network"), Col("cpu"), Col("rewards"), Col("up")]
NAN = float("nan")


def model_of(
    rows: list[tuple[object, ...]], columns: list[Col] = COLUMNS, keys: list[str] | None = None
) -> TableModel[Col]:
    model: TableModel[Col] = TableModel()
    model.set_rows(columns, rows, keys if keys is not None else [f"k{i}" for i in range(len(rows))])
    return model


def column(model: TableModel[Col], key: str) -> list[object]:
    """One column's values for the shown rows, in display order."""
    at = [c.key for c in model.columns].index(key)
    values = []
    for k in model.visible_keys():
        row = model.row_for(k)
        assert row is not None
        values.append(row[at])
    return values


ROWS: list[tuple[object, ...]] = [
    ("b-node", "io.net", 50.0, 3, True),
    ("A-node", "akash", None, 1, False),
    ("c-node", "Akash", 10.0, None, True),
    ("d-node", "", NAN, 2, None),
    ("e-node", "IO.NET", 90, 3, False),
    ("f-node", None, 10.0, 0, True),
]


# ---------------------------------------------------------------------- sort


def test_a_new_model_is_empty_and_in_input_order() -> None:
    model: TableModel[Col] = TableModel()
    assert model.columns == () and model.row_count == model.visible_count == 0
    assert model.sort_state is None and model.group_key is None and model.filter_text == ""
    assert model.visible_keys() == [] and model.display_lines() == []
    model = model_of(ROWS)
    assert model.visible_keys() == [f"k{i}" for i in range(6)]
    assert list(model.order) == list(model.lines) == list(range(6))


def test_numbers_sort_with_none_and_nan_last_in_both_directions() -> None:
    model = model_of(ROWS)
    model.sort_by("cpu")
    assert model.visible_keys() == ["k2", "k5", "k0", "k4", "k1", "k3"]  # 10, 10, 50, 90, -, -
    assert model.sort_state == ("cpu", False)
    model.sort_by("cpu", descending=True)
    assert model.visible_keys() == ["k4", "k0", "k2", "k5", "k1", "k3"]  # ties keep input order
    assert model.sort_state == ("cpu", True)


def test_int_column_with_missing_and_zero() -> None:
    model = model_of(ROWS)
    model.sort_by("rewards")
    assert column(model, "rewards") == [0, 1, 2, 3, 3, None]  # 0 is a value, not missing
    assert model.visible_keys()[3:5] == ["k0", "k4"]
    model.sort_by("rewards", descending=True)
    assert column(model, "rewards") == [3, 3, 2, 1, 0, None]
    assert model.visible_keys()[:2] == ["k0", "k4"]


def test_text_sorts_case_insensitively_with_empty_and_none_last() -> None:
    model = model_of(ROWS)
    model.sort_by("name")
    assert model.visible_keys() == ["k1", "k0", "k2", "k3", "k4", "k5"]
    model.sort_by("network")  # "akash"/"Akash" and "io.net"/"IO.NET" tie: input order
    assert model.visible_keys() == ["k1", "k2", "k0", "k4", "k3", "k5"]
    model.sort_by("network", descending=True)
    assert model.visible_keys() == ["k0", "k4", "k1", "k2", "k3", "k5"]


def test_bools_sort_false_first_and_none_last() -> None:
    model = model_of(ROWS)
    model.sort_by("up")
    assert column(model, "up") == [False, False, True, True, True, None]


def test_sort_by_without_a_direction_reverses_only_the_same_ascending_column() -> None:
    model = model_of(ROWS)
    model.sort_by("cpu")
    model.sort_by("cpu")
    assert model.sort_state == ("cpu", True)
    model.sort_by("cpu")  # descending, no direction given: ascending again
    assert model.sort_state == ("cpu", False)
    model.sort_by("name")  # another column starts ascending
    assert model.sort_state == ("name", False)
    model.clear_sort()
    assert model.sort_state is None
    assert model.visible_keys() == [f"k{i}" for i in range(6)]


def test_equal_keys_keep_input_order_in_both_directions() -> None:
    rows: list[tuple[object, ...]] = [(f"n{i}", "x", 1.0, i % 2, True) for i in range(50)]
    model = model_of(rows)
    for descending in (False, True):
        model.sort_by("cpu", descending=descending)
        assert model.visible_keys() == [f"k{i}" for i in range(50)]
    model.sort_by("rewards", descending=True)
    odd, even = [f"k{i}" for i in range(1, 50, 2)], [f"k{i}" for i in range(0, 50, 2)]
    assert model.visible_keys() == odd + even


def test_mixed_types_sort_numbers_then_text_then_missing() -> None:
    rows: list[tuple[object, ...]] = [
        ("a", "x", "high", 0, True),
        ("b", "x", 5, 0, True),
        ("c", "x", None, 0, True),
        ("d", "x", "Low", 0, True),
        ("e", "x", 1.5, 0, True),
        ("f", "x", "", 0, True),
    ]
    model = model_of(rows)
    model.sort_by("cpu")
    assert column(model, "cpu") == [1.5, 5, "high", "Low", None, ""]
    model.sort_by("cpu", descending=True)
    assert column(model, "cpu") == ["Low", "high", 5, 1.5, None, ""]


def test_values_of_one_unordered_type_sort_by_their_text() -> None:
    columns = [Col("name"), Col("labels")]
    rows: list[tuple[object, ...]] = [("a", {"z": 1}), ("b", None), ("c", {"a": 2})]
    model = model_of(rows, columns)
    model.sort_by("labels")
    assert model.visible_keys() == ["k2", "k0", "k1"]
    model.sort_by("labels", descending=True)
    assert model.visible_keys() == ["k0", "k2", "k1"]


def test_sort_matches_a_reference_on_random_data() -> None:
    rng = random.Random(7)
    rows: list[tuple[object, ...]] = [
        (
            rng.choice(["alpha", "Beta", "gamma", "", None]),
            "net",
            None if rng.random() < 0.2 else round(rng.uniform(0, 100), 1),
            rng.randrange(5),
            True,
        )
        for _ in range(2000)
    ]
    model = model_of(rows)
    for key, at in (("cpu", 2), ("name", 0)):
        for descending in (False, True):
            model.sort_by(key, descending=descending)
            indexes = list(range(len(rows)))
            present = [i for i in indexes if not is_missing(rows[i][at])]
            absent = [i for i in indexes if is_missing(rows[i][at])]

            def fold(i: int, at: int = at) -> object:
                value = rows[i][at]
                return value.casefold() if isinstance(value, str) else value

            present.sort(key=fold, reverse=descending)  # type: ignore[arg-type]
            assert model.visible_keys() == [f"k{i}" for i in present + absent]


def test_a_column_that_may_not_be_sorted_by_changes_nothing() -> None:
    columns = [*COLUMNS[:3], Col("rewards", sortable=False), COLUMNS[4]]
    model = model_of(ROWS, columns)
    assert model.sort_by("rewards") is False
    assert model.sort_state is None and model.visible_keys() == [f"k{i}" for i in range(6)]
    assert model.sort_by("cpu") is True
    assert model.sort_by("rewards", descending=True) is False
    assert model.sort_state == ("cpu", False)
    assert not model.can_sort_by("rewards") and model.can_sort_by("cpu")
    assert not model.can_sort_by("no-such-column")
    with pytest.raises(KeyError):
        model.sort_by("no-such-column")


def test_next_sort_key_cycles_skipping_unsortable_columns() -> None:
    columns = [Col("name"), Col("network", sortable=False), Col("cpu"), Col("rewards", False)]
    model = model_of([("a", "b", 1, 2)], columns)
    assert model.next_sort_key("name") == "cpu"
    assert model.next_sort_key("cpu") == "name"  # past the hidden last one, wrapping
    assert model.next_sort_key("gone") == "name"  # an unknown key starts from the first
    assert model.next_sort_key("cpu", ["cpu", "network", "up", "name"]) == "name"
    assert model.next_sort_key("cpu", ["cpu"]) == "cpu"
    lonely = model_of([("a",)], [Col("only", sortable=False)])
    assert lonely.next_sort_key("only") == "only"  # nothing else may be sorted by


# ---------------------------------------------------------------------- filter


def test_filter_is_a_case_insensitive_substring_of_the_given_columns() -> None:
    model = model_of(ROWS)
    model.filter("AKA", ["network"])
    assert model.visible_keys() == ["k1", "k2"]
    assert model.filter_text == "aka" and model.row_count == 6 and model.visible_count == 2
    model.filter("io.net", ["name"])  # only where asked
    assert model.visible_keys() == []
    model.filter("NODE", ["name", "network"])
    assert model.visible_count == 6
    model.filter("")
    assert model.visible_keys() == [f"k{i}" for i in range(6)]


def test_filter_without_columns_searches_every_column_including_numbers() -> None:
    model = model_of(ROWS)
    model.filter("90")
    assert model.visible_keys() == ["k4"]
    model.filter("true")  # a bool shows as its text
    assert model.visible_keys() == ["k0", "k2", "k5"]
    model.filter("none")  # a missing value is no text at all
    assert model.visible_keys() == []


def test_filter_with_no_match_shows_nothing() -> None:
    model = model_of(ROWS)
    model.filter("zzz", ["name"])
    assert model.visible_count == 0 and model.visible_keys() == []
    assert model.display_lines() == [] and model.position_of("k0") is None
    model.group_by("network")
    assert model.groups == [] and model.display_lines() == []


def test_filter_never_matches_across_two_columns() -> None:
    model = model_of([("ab", "cd", 1, 1, True)])
    model.filter("bc", ["name", "network"])
    assert model.visible_count == 0
    model.filter("b\x00c", ["name", "network"])  # the separator is stripped from a needle
    assert model.filter_text == "bc" and model.visible_count == 0
    model.filter("cd", ["name", "network"])
    assert model.visible_count == 1


def test_filter_by_an_unknown_column_raises_and_keeps_the_filter() -> None:
    model = model_of(ROWS)
    model.filter("aka", ["network"])
    with pytest.raises(KeyError):
        model.filter("node", ["nope"])
    assert model.filter_text == "aka" and model.visible_keys() == ["k1", "k2"]


# ---------------------------------------------------------------------- group


def test_group_by_orders_groups_with_missing_last_and_counts_rows() -> None:
    model = model_of(ROWS)
    model.group_by("network")
    assert model.group_key == "network"
    # "akash"/"Akash" are one group shown as its first row's value; "" and None are missing
    assert [(g.value, g.count) for g in model.groups] == [("akash", 2), ("io.net", 2), ("", 2)]
    assert model.display_lines() == [
        ("akash", 2),
        "k1",
        "k2",
        ("io.net", 2),
        "k0",
        "k4",
        ("", 2),
        "k3",
        "k5",
    ]
    assert model.visible_keys() == ["k1", "k2", "k0", "k4", "k3", "k5"]
    assert model.visible_count == 6 and len(model.lines) == 9
    assert list(model.lines[:3]) == [-1, 1, 2]
    model.group_by(None)
    assert model.groups == [] and model.group_key is None
    assert model.display_lines() == [f"k{i}" for i in range(6)]
    with pytest.raises(KeyError):
        model.group_by("nope")


def test_group_of_numbers_sorts_numerically() -> None:
    model = model_of(ROWS)
    model.group_by("rewards")
    assert [(g.value, g.count) for g in model.groups] == [(0, 1), (1, 1), (2, 1), (3, 2), (None, 1)]
    assert model.groups[0] == Group(0, 0, 1)


def test_group_filter_and_sort_together() -> None:
    rows: list[tuple[object, ...]] = [
        (f"node-{i:02d}", ["io.net", "akash", "nosana"][i % 3], float(i % 7), i, i % 2 == 0)
        for i in range(30)
    ]
    model = model_of(rows)
    model.sort_by("cpu", descending=True)
    model.group_by("network")
    model.filter("node-1", ["name"])  # node-10 … node-19
    assert [(g.value, g.count) for g in model.groups] == [
        ("akash", 4),
        ("io.net", 3),
        ("nosana", 3),
    ]
    by_group: dict[object, list[float]] = {}
    current: object = None
    for line in model.display_lines():
        if isinstance(line, tuple):
            current = line[0]
            continue
        row = model.row_for(line)
        assert row is not None and str(row[0]).startswith("node-1") and row[1] == current
        by_group.setdefault(current, []).append(row[2])  # type: ignore[arg-type]
    for values in by_group.values():
        assert values == sorted(values, reverse=True)  # the sort holds inside each group
    assert model.visible_keys()[:4] == ["k13", "k19", "k10", "k16"]  # akash: cpu 6, 5, 3, 2
    model.clear_sort()
    assert model.visible_keys()[:4] == ["k10", "k13", "k16", "k19"]
    model.filter("")
    assert [g.count for g in model.groups] == [10, 10, 10]
    assert model.sort_state is None and model.group_key == "network"


def test_positions_and_lines_skip_group_headers() -> None:
    model = model_of(ROWS)
    model.group_by("network")  # lines: H k1 k2 H k0 k4 H k3 k5
    assert [model.line_of(p) for p in range(6)] == [1, 2, 4, 5, 7, 8]
    assert model.position_at_line(0, forward=True) == 0
    assert model.position_at_line(3, forward=True) == 2  # a header: the row below it
    assert model.position_at_line(3, forward=False) == 1  # ... or the row above it
    assert model.position_at_line(5, forward=False) == 3
    assert model.position_at_line(99, forward=False) == 5  # clamped
    assert model.position_of("k4") == 3 and model.key_at(3) == "k4"
    model.group_by(None)
    assert model.line_of(3) == 3 and model.position_at_line(-4, forward=True) == 0
    assert model.position_of("nope") is None and model.position_of(None) is None


# ---------------------------------------------------------------------- data in


def test_update_rows_says_what_changed() -> None:
    model = model_of(ROWS)
    keys = [f"k{i}" for i in range(6)]
    model.sort_by("cpu", descending=True)
    assert model.update_rows([tuple(r) for r in ROWS], keys) == "unchanged"

    patched = [list(r) for r in ROWS]
    patched[1][0] = "renamed"  # not the sort column: the same rows in the same order
    assert model.update_rows(patched, keys) == "patched"
    assert model.row_for("k1") == ("renamed", "akash", None, 1, False)
    assert list(model.versions) == [0, 1, 0, 0, 0, 0]

    patched[1][2] = 99.0  # the sort column: k1 goes first
    assert model.update_rows(patched, keys) == "reordered"
    assert model.visible_keys()[:2] == ["k1", "k4"]
    assert list(model.versions) == [0, 2, 0, 0, 0, 0]

    assert model.update_rows(patched[::-1], keys[::-1]) == "replaced"
    assert list(model.versions) == [0] * 6
    assert model.visible_keys()[:2] == ["k1", "k4"]


def test_update_rows_refilters_when_a_filtered_column_changes() -> None:
    model = model_of(ROWS)
    keys = [f"k{i}" for i in range(6)]
    model.filter("aka", ["network"])
    patched = [list(r) for r in ROWS]
    patched[0][1] = "AKASH"
    assert model.update_rows(patched, keys) == "reordered"
    assert model.visible_keys() == ["k0", "k1", "k2"]
    patched[0][3] = 100  # a column nobody filters, sorts or groups by
    assert model.update_rows(patched, keys) == "patched"


def test_update_rows_refuses_bad_input_and_keeps_the_data() -> None:
    model: TableModel[Col] = TableModel()
    with pytest.raises(ValueError, match="set_rows"):
        model.update_rows([("x",)], ["x"])
    model = model_of(ROWS)
    keys = [f"k{i}" for i in range(6)]
    with pytest.raises(ValueError, match="one per column"):
        model.update_rows([("short",), *ROWS[1:]], keys)
    with pytest.raises(ValueError, match="rows but"):
        model.update_rows(ROWS[:2], keys[:1])
    with pytest.raises(ValueError, match="unique"):
        model.update_rows(ROWS[:2], ["same", "same"])
    assert model.row_count == 6 and model.row_for("k0") == ROWS[0]


def test_set_rows_refuses_bad_input_before_changing_anything() -> None:
    model = model_of(ROWS)
    model.sort_by("cpu")
    with pytest.raises(ValueError, match="one per column"):
        model.set_rows(COLUMNS[:2], ROWS, [f"k{i}" for i in range(6)])
    with pytest.raises(ValueError, match="unique"):
        model.set_rows(COLUMNS, ROWS[:2], ["a", "a"])
    assert model.columns == tuple(COLUMNS) and model.row_count == 6
    assert model.sort_state == ("cpu", False)


def test_set_rows_keeps_the_view_where_its_columns_remain() -> None:
    model = model_of(ROWS)
    model.sort_by("cpu", descending=True)
    model.filter("node", ["name"])
    model.group_by("up")
    reordered = [COLUMNS[2], COLUMNS[0], COLUMNS[4]]  # cpu, name, up: rewards and network gone
    model.set_rows(reordered, [(r[2], r[0], r[4]) for r in ROWS], [f"k{i}" for i in range(6)])
    assert model.sort_state == ("cpu", True) and model.group_key == "up"
    assert model.filter_text == "node" and model.visible_count == 6
    model.set_rows([COLUMNS[3]], [(r[3],) for r in ROWS], [f"k{i}" for i in range(6)])
    assert model.sort_state is None and model.group_key is None and model.filter_text == ""


def test_hiding_the_sort_column_drops_the_sort() -> None:
    model = model_of(ROWS)
    model.sort_by("rewards", descending=True)
    hidden = [*COLUMNS[:3], Col("rewards", sortable=False), COLUMNS[4]]
    model.set_rows(hidden, ROWS, [f"k{i}" for i in range(6)])
    assert model.sort_state is None  # the order would tell what private mode hides
    assert model.visible_keys() == [f"k{i}" for i in range(6)]


def test_helpers() -> None:
    assert is_missing(None) and is_missing("") and is_missing(math.nan)
    assert not is_missing(0) and not is_missing(False) and not is_missing(" ")
    assert mixed_key(2) < mixed_key("a") < mixed_key(("tuple",))
    assert mixed_key("B") == mixed_key("b")
