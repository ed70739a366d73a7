"""Several sources in one pipeline, each with its own stream id, fanned into one sink by the runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_two_sources_one_sink(tmp_path: Path, street_720p: Path, dog_jpg: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.imread(str(dog_jpg)))
    out = tmp_path / "out.jsonl"
    (tmp_path / "p.yaml").write_text(f"""
stages:
  video: {{kind: decode, url: "{street_720p}", stream: cam_a, stride: 10}}
  stills: {{kind: decode, url: "{folder}/*.png"}}
  json: {{kind: json, inputs: [video, stills], path: "{out}"}}
""")
    result = subprocess.run([sys.executable, "-m", "streamyolox", "run", str(tmp_path / "p.yaml"), "--no-dashboard"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    by_stream: dict[str, list[int]] = {}
    for r in records:
        by_stream.setdefault(r["stream"], []).append(r["frame"])
    assert sorted(by_stream["cam_a"]) == list(range(0, 300, 10))
    assert sorted(by_stream["stills"]) == [0, 1, 2]
    assert {(r["width"], r["height"]) for r in records if r["stream"] == "stills"} == {(768, 576)}
