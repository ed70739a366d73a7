"""Report: the JSON document round-trips with the machine recorded; the plot is a PNG; the table renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from streamyolox.bench import report
from streamyolox.bench.harness import Result
from streamyolox.bench.machine import machine_info

ROWS = [
    Result("model", "ort-bare b1 416", fps=100.0, p50_ms=10.0, p95_ms=11.0, p99_ms=12.0, peak_rss_mb=90.0),
    Result("model", "torch-fp32 b1 416", fps=50.0, p50_ms=20.0, p99_ms=25.0, ref="ort-bare b1 416", ratio=0.5),
    Result("ops", "memcpy 1080p", fps=5000.0, p50_ms=0.2, p99_ms=0.3),
    Result("model", "torch-cuda-fp16 b1 416", skipped="no CUDA GPU"),
]


def test_machine_info_records_cpu_cores_and_versions() -> None:
    info = machine_info()
    assert info["cpu_model"] and info["cores_logical"] >= 1 and info["cores_usable"] >= 1
    assert info["memory_gb"] > 0 and "gpu" in info
    assert {"python", "torch", "onnxruntime", "numpy"} <= set(info["versions"])


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bench.json"
    report.write_json(path, report.to_document(ROWS, machine_info(), {"repeats": 3}))
    doc, rows = report.load_results(path)
    assert doc["schema"] == report.SCHEMA and doc["settings"] == {"repeats": 3}
    assert doc["machine"]["cores_logical"] >= 1
    assert rows == ROWS
    assert not list(tmp_path.glob("out/*.tmp"))


def test_load_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"results": []}')
    with pytest.raises(ValueError, match="not a streamyolox bench document"):
        report.load_results(path)


def test_plot_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    report.plot(ROWS, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_all_skipped(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        report.plot(ROWS[3:], tmp_path / "p.png")


def test_table_lists_every_case_and_skip_reason() -> None:
    console = Console(width=200, record=True)
    report.print_results(ROWS, console)
    text = console.export_text()
    for row in ROWS:
        assert row.name in text
    assert "no CUDA GPU" in text and "0.50x" in text
