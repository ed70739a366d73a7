"""`backend: auto` on the CPU: measured once per key, the faster backend chosen, the choice read back later."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from streamyolox.inference import auto_backend, make_backend
from streamyolox.inference.export_cache import weights_digest
from streamyolox.model.spec import ModelSpec


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def choices(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cache / "backend-choice").glob("*.json"))]


def test_interleaves_warms_up_and_stops_at_the_budget() -> None:
    order: list[str] = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    fps = auto_backend.interleaved_fps(calls, batch=4, rounds=5, budget_s=60)
    assert order == ["a", "b"] * (auto_backend.WARMUP + 5)
    assert set(fps) == {"a", "b"} and all(v > 0 for v in fps.values())
    order.clear()
    auto_backend.interleaved_fps(calls, batch=1, rounds=50, budget_s=0.0)  # a slow model: the cap ends it
    assert len(order) == 2 * (auto_backend.WARMUP + auto_backend.MIN_ROUNDS)


def test_auto_measures_once_then_reads_the_choice(nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("openvino")
    caplog.set_level(logging.INFO, logger="streamyolox.inference")
    spec = ModelSpec(weights=str(nano_pth))
    first = make_backend(spec, threads=1, spin=False, batch=2)  # the real measurement, both backends
    (record,) = choices(cache)
    assert set(record["fps"]) == {"onnxruntime", "openvino"}
    assert record["choice"] == max(record["fps"], key=record["fps"].get) == first.name
    assert (record["key"]["batch"], record["key"]["threads"], record["key"]["spin"]) == (2, 1, False)
    assert record["key"]["weights_sha256"] == weights_digest(nano_pth)
    assert "measured at batch 2" in caplog.text

    def no_measuring(*_args: object, **_kwargs: object) -> dict[str, float]:
        raise AssertionError("measured again")

    monkeypatch.setattr(auto_backend, "interleaved_fps", no_measuring)
    caplog.clear()
    assert make_backend(spec, threads=1, spin=False, batch=2).name == first.name
    assert "measured earlier" in caplog.text and len(choices(cache)) == 1


@pytest.mark.parametrize("fps, expected", [({"onnxruntime": 50.0, "openvino": 80.0}, "openvino"),
                                           ({"onnxruntime": 80.0, "openvino": 50.0}, "onnxruntime")])
def test_the_faster_one_wins(nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                             fps: dict[str, float], expected: str) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setattr(auto_backend, "interleaved_fps", lambda calls, batch: dict(fps))
    assert make_backend(ModelSpec(weights=str(nano_pth)), threads=1, batch=3).name == expected


def test_key_follows_what_changes_the_answer(nano_pth: Path, tmp_path: Path, cache: Path) -> None:
    copy = tmp_path / "copy.pth"
    copy.write_bytes(nano_pth.read_bytes())
    digest = weights_digest(nano_pth)

    def key(digest: str = digest, batch: int = 1, threads: int | None = 1, spin: bool = False) -> Path:
        return auto_backend.ChoiceKey.here(digest, "yolox-nano", (416, 416), batch, threads, spin).file()

    assert key(weights_digest(copy)) == key()  # the same bytes elsewhere: the same choice
    assert len({key(), key(batch=4), key(threads=2), key(spin=True), key("0" * 64)}) == 5


def test_a_broken_record_is_measured_again(nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setattr(auto_backend, "interleaved_fps", lambda calls, batch: {"onnxruntime": 2.0, "openvino": 1.0})
    spec = ModelSpec(weights=str(nano_pth))
    make_backend(spec, threads=1)
    (path,) = (cache / "backend-choice").glob("*.json")
    path.write_text("{half a reco")  # e.g. a disk that filled up
    monkeypatch.setattr(auto_backend, "interleaved_fps", lambda calls, batch: {"onnxruntime": 1.0, "openvino": 2.0})
    assert make_backend(spec, threads=1).name == "openvino"
    assert json.loads(path.read_text())["choice"] == "openvino"


def test_without_openvino_auto_is_onnxruntime(nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert make_backend(ModelSpec(weights=str(nano_pth)), threads=1).name == "onnxruntime"
    assert not (cache / "backend-choice").exists()


def test_key_tells_apart_cpus_that_share_a_name(nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # three machines here were all "AMD EPYC" and 3x apart in inference speed
    from streamyolox.bench import machine

    digest = weights_digest(nano_pth)
    monkeypatch.setattr(machine, "cpu_model", lambda: "AMD EPYC")
    files = set()
    for ident in ("AuthenticAMD family 25 model 1 stepping 1 flags a", "AuthenticAMD family 25 model 17 stepping 1 flags a",
                  "AuthenticAMD family 25 model 17 stepping 1 flags b"):
        monkeypatch.setattr(machine, "cpu_id", lambda ident=ident: ident)
        key = auto_backend.ChoiceKey.here(digest, "yolox-nano", (416, 416), 1, 1, False)
        assert key.cpu == f"AMD EPYC ({ident})"
        files.add(key.file())
    assert len(files) == 3


def test_cpu_id_reads_this_machines_family_model_and_flags() -> None:
    from streamyolox.bench.machine import cpu_id

    text = Path("/proc/cpuinfo").read_text()
    first = dict((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in text.split("\n\n")[0].splitlines()))
    ident = cpu_id()
    assert ident.startswith(f"{first['vendor_id']} family {first['cpu family']} model {first['model']} ")
    assert ident == cpu_id() and len(ident.rsplit(" ", 1)[1]) == 12


def test_with_concurrency_the_measured_step_keeps_that_many_calls_in_flight(
        nano_pth: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    lock, inside, most = threading.Lock(), {"onnxruntime": 0, "openvino": 0}, {"onnxruntime": 0, "openvino": 0}

    def build(name: str):
        def forward(x):
            assert x.shape == (3, 3, 416, 416)
            with lock:
                inside[name] += 1
                most[name] = max(most[name], inside[name])
            time.sleep(0.01)  # both calls of a step are inside here together
            with lock:
                inside[name] -= 1
        return forward

    frames: list[int] = []
    real = auto_backend.interleaved_fps
    monkeypatch.setattr(auto_backend, "interleaved_fps",
                        lambda calls, batch: frames.append(batch) or real(calls, batch, rounds=4))
    key = auto_backend.ChoiceKey.here(weights_digest(nano_pth), "yolox-nano", (416, 416), 3, 1, False, concurrency=2)
    assert auto_backend.choose(key, build) in ("onnxruntime", "openvino")
    assert most == {"onnxruntime": 2, "openvino": 2} and frames == [6]  # 2 calls of batch 3 a step
