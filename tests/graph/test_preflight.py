"""Checks before start (`streamyolox.graph.preflight`): what `validate` and `run` both reject with one line
and exit 2 before any process starts, the model block resolved once into the spec, and the option ranges
that `streamyolox stages` shows being the ones the Configs enforce."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from streamyolox.classes import COCO_CLASSES
from streamyolox.config_fields import Range, field_range
from streamyolox.graph.preflight import check_pipeline_file, port_error
from streamyolox.graph.validate import SpecError
from streamyolox.stages.registry import load_stage_class
from tests.conftest import free_endpoint

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIPPED = REPO / "pipelines"

CHAIN = """
model: {{name: {name}, weights: "{weights}"}}
stages:
  source: {{kind: decode, url: "{video}"}}
  pre: {{kind: letterbox, inputs: [source]{pre}}}
  det: {{kind: yolox, inputs: [pre]}}
  post: {{kind: nms, inputs: [det]}}
  json: {{kind: json, inputs: [post], path: "{out}"}}
"""

# Synthetic frames -> a stage that writes its pid when it opens -> sinks: a started run leaves the pid file
STARTS = """
metrics: {{json: "{metrics}"}}
stages:
  src: {{kind: "fake_stages:Synthetic", frames: 3}}
  mid: {{kind: "fake_stages:Passthrough", inputs: [src], pid_file: "{tmp}/pids"}}
  sink: {{kind: "fake_stages:Collect", inputs: [mid], path: "{tmp}/out.jsonl"}}
  pub: {{kind: zmq, inputs: [mid], endpoint: "{endpoint}"}}
  json: {{kind: json, inputs: [mid], path: "{tmp}/dets.jsonl"}}
"""


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", **(env or {})}
    return subprocess.run([sys.executable, "-m", "streamyolox", *args], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=120)


@pytest.fixture
def busy_port() -> typing.Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _starts(tmp_path: Path, metrics: str | None = None, endpoint: str | None = None, name: str = "p") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(STARTS.format(tmp=tmp_path, metrics=metrics or tmp_path / "metrics.json",
                                  endpoint=endpoint or free_endpoint()))
    return path


def _rejected(res: subprocess.CompletedProcess[str], expected: str) -> None:
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"streamyolox: error: {expected}"]
    assert res.stdout == ""


def _nothing_started(tmp_path: Path) -> None:
    assert not (tmp_path / "pids").exists()  # no stage process opened
    assert not any((tmp_path / f).exists() for f in ("out.jsonl", "dets.jsonl", "metrics.json"))


def test_spec_errors_found_by_validate_and_by_run_before_start(tmp_path: Path, busy_port: int) -> None:
    cases = [(_starts(tmp_path, endpoint=f"tcp://127.0.0.1:{busy_port}", name="busy"),
              f"stages.pub.endpoint: {busy_port}: port is in use"),
             (_starts(tmp_path, metrics=str(tmp_path / "dets.jsonl"), name="clash"), f"metrics.json: "
              f"{str(tmp_path / 'dets.jsonl')!r} is also written by stages.json.path")]
    for path, message in cases:
        for command in (["validate"], ["run", "--no-dashboard"]):
            _rejected(_cli(command[0], str(path), *command[1:]), f"{path}: {message}")
        _nothing_started(tmp_path)


def test_run_flags_checked_before_start(tmp_path: Path, busy_port: int) -> None:
    path = _starts(tmp_path)
    _rejected(_cli("run", str(path), "--http", str(busy_port)), f"--http {busy_port}: port is in use")
    _rejected(_cli("run", str(path), "--metrics-json", str(tmp_path)),
              f"--metrics-json {tmp_path}: cannot write {str(tmp_path)!r}: it is a folder")
    _nothing_started(tmp_path)
    assert _cli("validate", str(path)).returncode == 0  # and the file itself is fine
    res = _cli("run", str(path), "--no-dashboard")  # the same file, started: the checks above could fail
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "pids").exists() and len((tmp_path / "dets.jsonl").read_text().splitlines()) == 3


def _chain(tmp_path: Path, weights: Path | str, video: Path, name: str = "yolox-nano", pre: str = "") -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN.format(name=name, weights=weights, video=video, pre=pre, out=tmp_path / "o.jsonl"))
    return path


def test_zoo_name_resolves_once_into_the_spec(tmp_path: Path, nano_pth: Path, street_720p: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_DIR", str(nano_pth.parent))
    spec = check_pipeline_file(_chain(tmp_path, "yolox-nano", street_720p))
    assert spec.model.weights == str(nano_pth.resolve())
    assert spec.model.input_size == (416, 416) and spec.model.class_names == COCO_CLASSES
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_DIR", str(tmp_path))  # not there: one line saying where to put it
    with pytest.raises(SpecError, match=r"model\.weights: yolox-nano is not on this machine: put yolox_nano\.pth "
                                        r"in \$STREAMYOLOX_WEIGHTS_DIR"):
        check_pipeline_file(_chain(tmp_path, "yolox-nano", street_720p))


def test_run_offline_says_where_to_put_the_weights(tmp_path: Path, street_720p: Path) -> None:
    path = _chain(tmp_path, "yolox-tiny", street_720p, name="yolox-tiny")
    env = {"STREAMYOLOX_WEIGHTS_DIR": str(tmp_path), "STREAMYOLOX_CACHE": str(tmp_path / "cache"),
           "STREAMYOLOX_WEIGHTS_URL": "http://127.0.0.1:9"}  # nothing listens there: offline
    res = _cli("run", str(path), "--no-dashboard", env=env)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "model.weights: could not download yolox-tiny" in res.stderr
    assert "put yolox_tiny.pth in $STREAMYOLOX_WEIGHTS_DIR" in res.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_project_checkpoint_decides_size_and_names(tmp_path: Path, nano_pth: Path, street_720p: Path) -> None:
    torch = pytest.importorskip("torch")
    names = [f"thing{i}" for i in range(80)]
    sd = torch.load(nano_pth, map_location="cpu", weights_only=True)["model"]
    meta = {"name": "yolox-nano", "num_classes": 80, "class_names": names, "input_size": [320, 320]}
    ckpt = tmp_path / "project.pth"
    torch.save({"model": sd, "streamyolox": meta}, ckpt)
    # the checkpoint names its own architecture: model.name does not have to match it
    spec = check_pipeline_file(_chain(tmp_path, ckpt, street_720p, name="yolox-s"))
    assert spec.model.input_size == (320, 320) and spec.model.class_names == tuple(names)
    with pytest.raises(SpecError, match=r"stages\.pre\.size: 416 is not the model's input size 320x320"):
        check_pipeline_file(_chain(tmp_path, ckpt, street_720p, pre=", size: 416"))


def test_weights_of_another_model_rejected_as_the_loader_would(tmp_path: Path, street_720p: Path) -> None:
    torch = pytest.importorskip("torch")
    from streamyolox.model import build_model
    from streamyolox.weights import WeightsError, load_model

    weights = tmp_path / "yolox_s.pth"
    torch.save({"model": build_model("yolox-s").state_dict()}, weights)
    with pytest.raises(WeightsError):  # the real loader refuses it too, after importing torch in a stage
        load_model(weights, name="yolox-nano")
    with pytest.raises(SpecError, match=r"model\.weights: yolox_s\.pth holds yolox-s weights, but model\.name is "
                                        r"yolox-nano \(set model\.name: yolox-s\)$"):
        check_pipeline_file(_chain(tmp_path, weights, street_720p))
    assert check_pipeline_file(_chain(tmp_path, weights, street_720p, name="yolox-s")).model.input_size == (640, 640)


def test_validate_never_imports_torch(nano_pth: Path) -> None:
    code = ("import sys; from streamyolox.graph.preflight import check_pipeline_file; "
            f"check_pipeline_file({str(SHIPPED / 'demo.yaml')!r}, env={{'STREAMYOLOX_WEIGHTS': {str(nano_pth)!r}, "
            f"'DEMO_VIDEO': {str(REPO / 'examples/media/demo.mp4')!r}}}); "
            "print(sorted(m for m in ('torch', 'onnx', 'cupy', 'numba.cuda') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED.glob("*.yaml")))
def test_shipped_pipelines_validate_with_the_shared_weights(name: str, nano_pth: Path) -> None:
    from streamyolox.graph.preflight import cuda_device_count

    env = {"STREAMYOLOX_WEIGHTS_DIR": str(nano_pth.parent), "ZMQ_ENDPOINT": free_endpoint()}
    if name == "gpu_to_json.yaml" and cuda_device_count() == 0:
        env["STREAMYOLOX_DEVICE"] = "cpu"  # its default, cuda, is rejected here: see the golden files
    if name == "webcam_demo.yaml" and not Path("/dev/video0").exists():
        env["WEBCAM"] = str(REPO / "examples/media/demo.mp4")
    res = _cli("validate", str(SHIPPED / name), env=env)
    if name == "webcam_demo.yaml" and not os.environ.get("DISPLAY"):  # a window needs a screen
        assert res.stderr.splitlines() == [f"streamyolox: error: {SHIPPED / name}: stages.window: no display "
                                           "($DISPLAY is not set); use the mp4 or zmq sink on a headless machine"]
        return
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{SHIPPED / name}: ok")


BUILTIN = ("decode", "letterbox", "yolox", "nms", "json", "mp4", "zmq", "display")


def _leaf_types(tp: object) -> set[object]:
    """`int | None` -> {int, None}; `list[int] | None` -> {list, int, None}."""
    args = typing.get_args(tp)
    return {tp} if not args else {typing.get_origin(tp)} | {t for a in args for t in _leaf_types(a)}


def _out_of_range(rng: Range) -> list[float]:
    """A value just outside each bound."""
    below = rng.ge - 1 if rng.ge is not None else rng.gt
    above = rng.le + 1 if rng.le is not None else rng.lt
    return [v for v in (below, above) if v is not None]


@pytest.mark.parametrize("kind", BUILTIN)
def test_every_numeric_option_declares_a_range_that_stages_lists(kind: str) -> None:
    config = load_stage_class(kind).Config
    hints = typing.get_type_hints(config)
    listing = {line.split(":")[0].strip(): line for line in _cli("stages", kind).stdout.splitlines()[1:]}
    required = {"url": "x.mp4"} if kind == "decode" else {}
    for f in dataclasses.fields(config):
        leaves = _leaf_types(hints[f.name])
        if not leaves & {int, float}:
            continue
        rng = field_range(f)
        assert rng is not None, f"{kind}.{f.name} has no range"
        assert listing[f.name].endswith(f"; {rng.describe()})")  # `stages` shows the rule...
        for bad in _out_of_range(rng):  # ...that the Config enforces
            with pytest.raises(ValueError, match=rf"^{f.name}(\[0\])?: expected "):
                config(**required, **{f.name: [bad] if list in leaves else bad})


def test_port_error_sees_a_listener_on_any_address(busy_port: int) -> None:
    assert port_error("0.0.0.0", busy_port) == "port is in use"
    assert port_error("127.0.0.1", busy_port) == "port is in use"


def test_checking_a_decode_pipeline_leaves_pyav_and_cv2_to_the_stages(tmp_path: Path) -> None:
    # the runner's path to launching the stages: PyAV cost it 0.05-0.09 s and cv2 ~37 MB, both only used
    # inside the stage processes (which the forkserver has them imported for)
    clip = REPO / "examples" / "media" / "demo.mp4"
    (tmp_path / "p.yaml").write_text(f"""
stages:
  source: {{kind: decode, url: "{clip}"}}
  json: {{kind: json, inputs: [source], path: "{tmp_path / 'out.jsonl'}"}}
""")
    code = (f"import sys; from streamyolox.graph.preflight import check_pipeline_file; "
            f"spec = check_pipeline_file({str(tmp_path / 'p.yaml')!r}, []); import streamyolox.graph.runner; "
            f"import streamyolox.cli.run; print(sorted(m for m in ('av', 'cv2') if m in sys.modules), len(spec.stages))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "2"]
