"""`streamyolox bench` from the command line: JSON structure, plot, README section, errors."""

from __future__ import annotations

import json
from pathlib import Path

from streamyolox.bench.report import MARK_END, MARK_START
from streamyolox.cli import main


def test_bench_model_writes_json_plot_and_markdown(tmp_path: Path, nano_pth: Path, nano_onnx: Path) -> None:
    out, png, md = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "README.md"
    md.write_text(f"# title\n{MARK_START}\nold\n{MARK_END}\ntail\n")
    rc = main(["bench", "model", "--weights", str(nano_pth), "--bare-onnx", str(nano_onnx),
               "--backends", "torch-fp32", "--batches", "1", "--sizes", "320", "--repeats", "1", "--warmup", "0",
               "--threads", "1", "--json", str(out), "--plot", str(png), "--markdown", str(md)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "streamyolox-bench/1"
    assert doc["machine"]["cores_logical"] >= 1 and doc["machine"]["cpu_model"]
    assert doc["settings"]["threads"] == 1 and doc["settings"]["suite"] == "model"
    rows = {r["name"]: r for r in doc["results"]}
    assert set(rows) == {"ort-bare b1 416", "torch-fp32 b1 320"}
    assert rows["torch-fp32 b1 320"]["ratio"] > 0 and rows["ort-bare b1 416"]["fps"] > 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = md.read_text()
    assert text.startswith("# title\n") and text.endswith("tail\n") and "old" not in text
    assert "| model | torch-fp32 b1 320 |" in text


def test_missing_pipeline_file_is_one_line_error(tmp_path: Path, capsys) -> None:
    rc = main(["bench", "pipeline", str(tmp_path / "nope.yaml")])
    assert rc == 2
    assert capsys.readouterr().err.strip() == f"streamyolox bench: pipeline file {tmp_path / 'nope.yaml'} not found"


def test_invalid_pipeline_override_is_one_line_error(capsys, nano_pth: Path) -> None:
    pipeline = Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml"
    rc = main(["bench", "pipeline", str(pipeline), "--set", "stages.source.stride=abc"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress log lines
    assert rc == 1
    assert last == "streamyolox bench: " + f"{pipeline}: stages.source.stride: expected int, got 'abc'"
