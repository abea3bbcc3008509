"""Golden files for the SQL of the detectors' scans: a small fixed configuration renders to the committed text.

A change to the generated SQL shows here as a diff to review. To accept it, regenerate the files and commit
them with the change::

    DRIFTLINE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/detectors/test_scan_sql.py
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from pathlib import Path

import numpy as np
import pytest

from collector.sql import render
from detectors import drift_sql
from detectors.drift_sql import Layouts, labels_source, scan_statement, upload_source, window_source
from detectors.grid import Grid

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DRIFTLINE_UPDATE_GOLDEN") == "1"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

#: Two common layouts holding "a" at different positions and "b" at one, 30 rows of other layouts.
LAYOUTS = Layouts(rows=180, groups=((11, ("a", "b"), 100), (22, ("b", "a", "c"), 50)))


def _plans() -> dict[str, drift_sql._Codes]:
    grid = Grid(0.0, 10.0, cells=4)
    return {
        "a": drift_sql._edge_codes(np.array([1.0, 2.5, 4.0]), None),                 # a sum of comparisons
        "b": drift_sql._edge_codes(np.linspace(0.0, 1.0, 20), None),                 # roundDown
        "c": drift_sql._edge_codes(np.asarray(grid.boundaries()[:3]), grid),         # the grid's code
        "@pred.value": drift_sql._edge_codes(np.array([]), None),                    # no edge
    }


CASES = {
    # a window read by position (two layouts) and by key, counted on grids, with statistics
    "window_grids": lambda: scan_statement(window_source("m", T0, T0 + dt.timedelta(hours=1), "v1"),
                                           {"a": Grid(0.0, 10.0, cells=4), "@pred.score": Grid(0.0, 1.0, cells=2)},
                                           ["a", "c"], LAYOUTS),
    # a window counted on edges (comparisons, roundDown, a grid's code, no edge)
    "window_edges": lambda: scan_statement(window_source("m", T0, T0 + dt.timedelta(hours=1)), _plans(), (),
                                           LAYOUTS),
    # every row of an uploaded reference read by key
    "upload_by_key": lambda: scan_statement(upload_source("u1"), {"a": Grid(0.0, 10.0, cells=4)}, ["a"],
                                            Layouts(rows=10)),
    # the labels of a window's predictions (no Map features)
    "labels": lambda: scan_statement(labels_source("m", T0, T0 + dt.timedelta(hours=1)),
                                     {"@label.value": drift_sql._edge_codes(np.array([0.5]), None)}, (), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_sql_matches_its_golden_file(case: str) -> None:
    statement = CASES[case]()
    assert statement is not None
    got = render(statement, None, "driftline") + "\n"
    path = GOLDEN / f"scan_{case}.sql"
    if UPDATE:
        path.write_text(got)
    want = path.read_text() if path.exists() else ""
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(keepends=True), got.splitlines(keepends=True),
                                            fromfile=str(path), tofile="generated"))
        pytest.fail(f"the {case} scan's SQL changed (DRIFTLINE_UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_nothing_to_scan_is_no_statement() -> None:
    src = window_source("m", T0, T0 + dt.timedelta(hours=1))
    assert scan_statement(src, {}, (), LAYOUTS) is None
    assert scan_statement(src, {"a": Grid(0.0, 1.0)}, (), Layouts()) is None       # no rows
    with pytest.raises(ValueError, match="key layouts"):
        scan_statement(src, {"a": Grid(0.0, 1.0)}, (), None)
