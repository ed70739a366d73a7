"""Pipeline spec loading: golden invalid files (one per error class), interpolation, overrides, CLI."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamyolox.graph.preflight import check_pipeline_file, cuda_device_count
from streamyolox.graph.spec import PipelineSpec
from streamyolox.graph.validate import SpecError, apply_overrides, interpolate, load_pipeline

HERE = Path(__file__).resolve().parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared"))

GOOD = """
name: good
model: {name: yolox-nano, input_size: [320, 320]}
metrics: {interval_s: 0.5}
stages:
  src: {kind: "fake_stages:Synthetic", frames: "${FRAMES:-7}", size: 720p}
  a: {kind: "fake_stages:Passthrough", inputs: src, queue: 3, policy: drop_oldest, threads: 1}
  b: {kind: "fake_stages:Passthrough", inputs: [src], worker: w1, restart: on-failure}
  sink: {kind: "fake_stages:Collect", inputs: [a, b], path: "${OUT_DIR}/x.jsonl"}
"""


def _expected(path: Path, env: dict[str, str] | None = None) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    line = first[len("# expect: "):].replace("FILE", str(path))
    return re.sub(r"\$\{(\w+)\}", lambda m: (env or {}).get(m.group(1), m.group(0)), line)


def _needs(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {n.strip() for n in lines[1][len("# needs:"):].split(",")} if lines[1].startswith("# needs:") else set()


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """What the golden files may name: ${TMP} (a folder with a text file posing as weights and, with the
    shared weights, a truncated copy of them), ${NANO_PTH}, ${VIDEO} and ${PORT}, a port held busy."""
    monkeypatch.delenv("STREAMYOLOX_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "cache"))
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    nano = SHARED / "weights" / "yolox_nano.pth"
    if nano.is_file():
        (tmp_path / "truncated.pth").write_bytes(nano.read_bytes()[:100_000])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {"TMP": str(tmp_path), "NANO_PTH": str(nano), "PORT": str(busy.getsockname()[1]),
               "VIDEO": str(SHARED / "media" / "dog_pan_480p.mp4")}


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_golden(path: Path, machine: dict[str, str]) -> None:
    """Each file fails with its one line, in `load_pipeline` (values) or in `preflight` (this machine)."""
    needs = _needs(path)
    if "shared" in needs and not Path(machine["NANO_PTH"]).is_file():
        pytest.skip(f"needs the shared weights and media ({SHARED})")
    if "no-cuda" in needs and cuda_device_count() > 0:
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(SpecError) as info:
        check_pipeline_file(path, env=machine)
    assert str(info.value) == _expected(path, machine)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file$"):
        load_pipeline(tmp_path / "nope.yaml")


def test_good_pipeline_types(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(GOOD)
    spec = load_pipeline(f, env={"OUT_DIR": "/tmp/o"})
    assert isinstance(spec, PipelineSpec) and spec.name == "good"
    assert spec.model.input_size == (320, 320)
    assert spec.metrics.interval_s == 0.5
    src, a, b, sink = spec.stages.values()
    assert src.options.frames == 7 and src.is_source and src.options.size == "720p"
    assert a.inputs == ("src",) and a.queue == 3 and a.policy == "drop_oldest"
    assert a.threads == 1 and a.options.threads == 1  # runtime field also given to a Config declaring it
    assert b.worker == "w1" and b.restart == "on-failure" and b.max_restarts == 3
    assert sink.options.path == "/tmp/o/x.jsonl" and sink.is_sink
    assert spec.sinks() == ["sink"] and spec.consumers("src") == ["a", "b"]


def test_overrides_before_validation(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(GOOD)
    spec = load_pipeline(f, sets=["stages.src.frames=12", "stages.sink.path=o.jsonl", "model.weights=w.pth",
                                  "stages.a.fail_on=null", "metrics.http_port=9100"],
                         env={"FRAMES": "3", "OUT_DIR": "o"})
    assert spec.stages["src"].options.frames == 12
    assert spec.stages["sink"].options.path == "o.jsonl"
    assert spec.model.weights == "w.pth" and spec.metrics.http_port == 9100
    with pytest.raises(SpecError, match=r"stages\.src\.frames: expected int, got 'x'$"):
        load_pipeline(f, sets=["stages.src.frames=x"], env={"OUT_DIR": "o"})
    with pytest.raises(SpecError, match=r"--set stages\.src\.kind\.x=1: stages\.src\.kind is not a mapping"):
        load_pipeline(f, sets=["stages.src.kind.x=1"], env={"OUT_DIR": "o"})


def test_interpolation_typing() -> None:
    doc = {"a": "${N:-416}", "b": "x-${N:-1}-y", "c": ["${S}"]}
    assert interpolate(doc, {"S": "hi"}) == {"a": 416, "b": "x-1-y", "c": ["hi"]}
    assert interpolate(doc, {"N": "true", "S": ""}) == {"a": True, "b": "x-true-y", "c": [""]}
    assert apply_overrides({}, ["x.y.z=[1, 2]"]) == {"x": {"y": {"z": [1, 2]}}}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "OUT_DIR": "/tmp"}
    return subprocess.run([sys.executable, "-m", "streamyolox.cli.run", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=60)


def test_cli_validate(tmp_path: Path) -> None:
    bad = HERE / "invalid" / "cycle.yaml"
    res = _cli("validate", str(bad))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines == [f"streamyolox: error: {_expected(bad)}"]
    good = tmp_path / "p.yaml"
    good.write_text(GOOD)
    res = _cli("validate", str(good), "--set", "stages.src.frames=5")
    assert res.returncode == 0, res.stderr
    assert "4 stages" in res.stdout


def test_cli_stages_lists_options() -> None:
    res = _cli("stages")
    assert res.returncode == 0, res.stderr
    for kind in ("decode", "letterbox", "yolox", "nms", "json"):
        assert kind in res.stdout
