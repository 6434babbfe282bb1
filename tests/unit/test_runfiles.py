"""The run files: ``summary.json`` as written, and reading ``metrics.jsonl`` back."""

from __future__ import annotations

import json

import pytest

from tdsa.errors import DataError
from tdsa.runfiles import read_metrics, write_summary


def test_write_summary_leaves_the_epoch_rows_to_metrics_jsonl(tmp_path):
    write_summary(tmp_path, {"final_top1": 12.5, "metrics": [{"epoch": 1}], "stopped": None})
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert text == '{\n  "final_top1": 12.5,\n  "stopped": null\n}\n'
    assert json.loads(text) == {"final_top1": 12.5, "stopped": None}


def test_read_metrics_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no metrics file"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 0}\nnot json\n')
    with pytest.raises(DataError, match=r"metrics.jsonl:2: not a JSON object"):
        read_metrics(tmp_path)
