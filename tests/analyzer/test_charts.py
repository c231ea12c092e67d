"""The charts' labels: one notation for every number, integer-valued features by their integers."""

from __future__ import annotations

import json
import re

from modelwatch_analyzer.report import charts


def test_bin_labels_use_one_notation_and_integers_for_integer_features():
    # the analyzer's grid cuts just above each integer of an integer-valued feature (credit lines, age)
    assert charts.bin_labels([2.004, 3.012, 4.008, 6.012]) == ["≤ 2", "3", "4", "5–6", "≥ 7"]
    assert charts.bin_labels([26.008, 32.056, 35.024]) == ["≤ 26", "27–32", "33–35", "≥ 36"]
    # real values: four significant digits, k from ten thousand, never 1.3e+04 next to 11.3k
    assert charts.bin_labels([0.5094, 1.3018, 13.2161]) == ["≤ 0.5094", "0.5094 – 1.302", "1.302 – 13.22", "> 13.22"]
    assert charts.bin_labels([7210.4, 11312.0, 12640.0]) == ["≤ 7210", "7210 – 11.31k", "11.31k – 12.64k", "> 12.64k"]
    assert charts.bin_labels([]) == ["all"]


def test_a_chart_carries_its_title_legend_names_and_data_as_inert_json():
    hostile = "</script><script>alert(1)</script>"
    out = charts.bars([hostile, "b"], [0.5, 0.5], [0.25, 0.75], f"shares of {hostile}")
    assert "<script>alert" not in out and "&lt;/script&gt;" in out  # the title is text
    data = re.search(r'<script type="application/json" id="chart-\d+">(.*?)</script>', out, re.S).group(1)
    assert "</script" not in data and "\\u003c/script\\u003e" in data  # the JSON cannot close its element
    spec = json.loads(data)
    assert spec["labels"][0] == hostile and [s["label"] for s in spec["series"]] == ["reference", "current (latest window)"]
    line = charts.lines([], {"label coverage": []}, "label coverage per window", threshold=0.1, percent=True)
    spec = json.loads(re.search(r'application/json" id="chart-\d+">(.*?)</script>', line).group(1))
    assert [s["label"] for s in spec["series"]] == ["label coverage", "threshold 0.1"] and spec["percent"]
    assert "<h4>label coverage per window</h4>" in line
