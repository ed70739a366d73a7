"""`{stream}` in the json and mp4 sinks' `path`: one file per stream, opened on its first frame; the
template's parse errors; the pre-start checks that no two sinks' templates can name one file and no
template can name an input; a two-source pipeline whose per-stream outputs (read back, and decoded by
PyAV frame by frame against the sources) hold every frame of their stream in order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.graph.preflight import check_pipeline_file
from streamyolox.graph.validate import SpecError
from streamyolox.stages.json_sink import JsonSink, JsonSinkConfig
from streamyolox.stages.mp4_sink import Mp4Config
from streamyolox.stages.packet import Packet
from streamyolox.stages.stream_paths import may_collide, parse_path
from streamyolox.stages.testing import make_stage, run_stage

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "media" / "demo.mp4"


@pytest.mark.parametrize(("value", "message"), [
    ("out/{camera}.jsonl", "path: unknown template field {camera} in 'out/{camera}.jsonl'; only {stream} is known"),
    ("out/{stream:>8}.jsonl", "path: unknown template field {stream:>8} in"),
    ("out/{stream!r}.jsonl", "path: unknown template field {stream!r} in"),
    ("out/{}.jsonl", "path: unknown template field {} in"),
    ("out/{stream.jsonl", "path: expected '}' before end of string in 'out/{stream.jsonl'"),
    ("out/stream}.jsonl", "path: Single '}' encountered"),
])
@pytest.mark.parametrize("config", [JsonSinkConfig, Mp4Config])
def test_unknown_template_fields_are_one_line_config_errors(config: type, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        config(path=value)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_render_and_literal_braces() -> None:
    assert parse_path("p", "out/{stream}/{stream}.jsonl").render("cam1") == "out/cam1/cam1.jsonl"
    assert parse_path("p", "out/{{x}}_{stream}.jsonl").render("c") == "out/{x}_c.jsonl"
    assert not parse_path("p", "out/all.jsonl").templated
    for bad in ("..", ".", "a/b"):  # a stream id must not climb out of the folder
        with pytest.raises(ValueError, match="cannot name a file"):
            parse_path("p", "out/{stream}.jsonl").render(bad)


# (a, b, can some stream ids make them the same file?) worked out by hand
COLLISIONS = [
    ("out/{stream}.jsonl", "out/{stream}.jsonl", True),
    ("out/{stream}.jsonl", "out/cam1.jsonl", True),  # stream "cam1"
    ("out/{stream}.jsonl", "out/.jsonl", False),  # an id is never empty
    ("out/{stream}.jsonl", "out/a b.jsonl", False),  # nor has a space
    ("out/{stream}.jsonl", "out/cam_{stream}.jsonl", True),  # "cam_x" and "x"
    ("out/{stream}.jsonl", "out/{stream}.json", False),
    ("out/{stream}.jsonl", "out/x/{stream}.jsonl", False),  # an id holds no "/"
    ("out/{stream}/d.jsonl", "out/x/d.jsonl", True),
    ("out/{stream}/d.jsonl", "out/{stream}.jsonl", False),
    ("out/a{stream}b.jsonl", "out/{stream}{stream}.jsonl", True),  # "a" + "xb" = "ax" + "b"
    ("out/{stream}.a.jsonl", "out/{stream}.b.jsonl", False),  # the endings differ whatever the ids
    ("out/{stream}.a.jsonl", "out/{stream}.jsonl", True),  # "x.a" and "x"
    ("out/{stream}-left.mp4", "out/{stream}-right.mp4", False),
    ("out/{stream}.jsonl", "./out/../out/{stream}.jsonl", True),  # compared as resolved folders
]


@pytest.mark.parametrize(("a", "b", "expected"), COLLISIONS)
def test_two_templates_collide_when_some_ids_give_one_file(a: str, b: str, expected: bool, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ta, tb = parse_path("a", a).absolute(), parse_path("b", b).absolute()
    assert may_collide(ta, tb) is expected and may_collide(tb, ta) is expected


def _frames(stream: str, n: int, fps: float = 30.0, size: tuple[int, int] = (96, 128)) -> list[Packet]:
    h, w = size
    return [Packet(FrameMeta(stream, i, i / fps, 0.0, w, h), np.full((h, w, 3), (i * 9) % 256, np.uint8))
            for i in range(n)]


def _interleaved(*streams: list[Packet]) -> list[Packet]:
    out: list[Packet] = []
    for i in range(max(map(len, streams))):
        out.extend(s[i] for s in streams if i < len(s))
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_sink_writes_a_file_per_stream_opened_on_its_first_frame(tmp_path: Path) -> None:
    sink = make_stage(JsonSink, {"path": str(tmp_path / "out" / "{stream}.jsonl")})
    sink.open()
    assert not (tmp_path / "out").exists()  # nothing opened before a frame names its stream
    packets = _interleaved(_frames("door", 7), _frames("yard", 4))
    for p in packets[:3]:
        sink.process(p)
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["door.jsonl", "yard.jsonl"]
    for p in packets[3:]:
        sink.process(p)
    sink.close()
    for stream, n in (("door", 7), ("yard", 4)):
        records = _records(tmp_path / "out" / f"{stream}.jsonl")
        assert [r["frame"] for r in records] == list(range(n)) and {r["stream"] for r in records} == {stream}


def test_json_sink_without_the_template_writes_every_stream_to_one_file(tmp_path: Path) -> None:
    run_stage(JsonSink, _interleaved(_frames("a", 3), _frames("b", 3)), {"path": str(tmp_path / "all.jsonl")})
    assert [(r["stream"], r["frame"]) for r in _records(tmp_path / "all.jsonl")] == [
        ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_a_restarted_json_sink_appends_to_each_streams_file(tmp_path: Path) -> None:
    options = {"path": str(tmp_path / "{stream}.jsonl")}
    run_stage(JsonSink, _frames("a", 3), options)
    sink = make_stage(JsonSink, options)
    sink.ctx.restarts = 1
    sink.open()
    for p in _frames("a", 5)[3:]:
        sink.process(p)
    sink.close()
    assert [r["frame"] for r in _records(tmp_path / "a.jsonl")] == [0, 1, 2, 3, 4]


SOURCES = """
stages:
  door: {{kind: decode, url: "{a}", stream: door}}
  yard: {{kind: decode, url: "{b}", stream: yard}}
"""


def _check(tmp_path: Path, sinks: str, extra_sources: str = "") -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SOURCES.format(a=DEMO, b=DEMO) + extra_sources + sinks)
    check_pipeline_file(path)


def test_preflight_refuses_templates_that_can_name_the_same_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _check(tmp_path, f"""
  j1: {{kind: json, inputs: [door, yard], path: "{out}/{{stream}}.jsonl"}}
  j2: {{kind: json, inputs: [door, yard], path: "{out}/{{stream}}.det.json"}}
  m1: {{kind: mp4, inputs: [door, yard], path: "{out}/{{stream}}.mp4"}}
""")  # three families of files that never meet: fine
    cases = [
        (f'{out}/{{stream}}.jsonl', f'{out}/{{stream}}.jsonl', "can name a file also written by stages.j1.path"),
        (f'{out}/{{stream}}.jsonl', f'{out}/door.jsonl', "is also written by stages.j1.path"),
        (f'{out}/door.jsonl', f'{out}/{{stream}}.jsonl', "can name a file also written by stages.j1.path"),
        (f'{out}/{{stream}}.jsonl', f'{tmp_path}/./out/x_{{stream}}.jsonl',
         "can name a file also written by stages.j1.path"),
    ]
    for first, second, message in cases:
        with pytest.raises(SpecError) as info:
            _check(tmp_path, f"""
  j1: {{kind: json, inputs: [door, yard], path: "{first}"}}
  j2: {{kind: json, inputs: [door, yard], path: "{second}"}}
""")
        assert str(info.value) == f"{tmp_path / 'p.yaml'}: stages.j2.path: {second!r} {message}"


def test_preflight_refuses_a_template_that_can_name_an_input(tmp_path: Path) -> None:
    clip = tmp_path / "cam1.mp4"
    shutil.copy(DEMO, clip)
    path = tmp_path / "p.yaml"
    path.write_text(f"""
stages:
  cam: {{kind: decode, url: "{clip}", stream: cam1}}
  mp4: {{kind: mp4, inputs: [cam], path: "{tmp_path}/{{stream}}.mp4"}}
""")
    with pytest.raises(SpecError) as info:
        check_pipeline_file(path)
    assert str(info.value) == (f"{path}: stages.mp4.path: '{tmp_path}/{{stream}}.mp4' can name the input of "
                               f"stages.cam.url; writing it would destroy it")
    assert clip.read_bytes() == DEMO.read_bytes()


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.mark.timeout(240)
def test_two_streams_into_one_pipeline_give_a_complete_file_per_stream(tmp_path: Path) -> None:
    """Two decode sources with their own stream ids fan into one json and one mp4 sink with `{stream}`:
    each stream's JSON has its frames 0..n-1 in order, each MP4 decodes to the source's frames, in order."""
    dog = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared")) / "media" / "dog_pan_480p.mp4"
    if not dog.is_file():
        pytest.skip(f"needs {dog}")
    out = tmp_path / "out"
    path = tmp_path / "two.yaml"
    path.write_text(f"""
stages:
  door: {{kind: decode, url: "{DEMO}", stream: door}}
  yard: {{kind: decode, url: "{dog}", stream: yard}}
  json: {{kind: json, inputs: [door, yard], path: "{out}/{{stream}}.jsonl"}}
  mp4: {{kind: mp4, inputs: [door, yard], path: "{out}/{{stream}}.mp4", crf: 12}}
""")
    result = subprocess.run([sys.executable, "-m", "streamyolox", "run", str(path), "--no-dashboard"], cwd=REPO,
                            capture_output=True, text=True, timeout=220, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["door.jsonl", "door.mp4", "yard.jsonl", "yard.mp4"]
    for stream, source in (("door", DEMO), ("yard", dog)):
        expected = _decode(source)
        records = _records(out / f"{stream}.jsonl")
        assert [r["frame"] for r in records] == list(range(len(expected)))
        assert {r["stream"] for r in records} == {stream}
        written = _decode(out / f"{stream}.mp4")
        assert len(written) == len(expected)
        for i in range(0, len(expected), 10):
            # each written frame is its source frame (codec noise only) and no neighbour fits it as well
            diffs = {k: float(np.abs(written[i].astype(np.int16) - expected[k]).mean())
                     for k in range(max(0, i - 2), min(len(expected), i + 3))}
            assert diffs[i] < 3.0 and min(diffs, key=diffs.__getitem__) == i, (stream, i, diffs)


def test_json_sink_keeps_a_bounded_number_of_files_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamyolox.stages.json_sink as json_sink

    monkeypatch.setattr(json_sink, "MAX_OPEN_FILES", 2)
    sink = make_stage(JsonSink, {"path": str(tmp_path / "{stream}.jsonl")})
    sink.open()
    streams = [_frames(s, 4) for s in ("a", "b", "c")]
    for p in _interleaved(*streams):  # a, b, c, a, ...: every write but the first two reopens a file
        sink.process(p)
        assert len(sink._files) <= 2
    sink.close()
    for s in ("a", "b", "c"):  # reopened files were continued, not replaced
        assert [r["frame"] for r in _records(tmp_path / f"{s}.jsonl")] == [0, 1, 2, 3]


def test_preflight_refuses_an_mp4_sink_fed_several_streams_without_the_template(tmp_path: Path) -> None:
    _check(tmp_path, f'  mp4: {{kind: mp4, inputs: [door], path: "{tmp_path}/one.mp4"}}\n')  # one stream: fine
    with pytest.raises(SpecError) as info:
        _check(tmp_path, f'  mp4: {{kind: mp4, inputs: [door, yard], path: "{tmp_path}/one.mp4"}}\n')
    assert str(info.value) == (f"{tmp_path / 'p.yaml'}: stages.mp4.path: 2 streams reach this mp4 sink (door, yard) "
                               f"but '{tmp_path}/one.mp4' has no {{stream}}; write e.g. 'out/{{stream}}.mp4'")
    path = tmp_path / "many.yaml"  # the streams of one decode stage count too
    path.write_text(f"""
stages:
  cams: {{kind: decode, streams: {{a: "{DEMO}", b: "{DEMO}", c: "{DEMO}"}}}}
  mp4: {{kind: mp4, inputs: [cams], path: "{tmp_path}/one.mp4"}}
""")
    with pytest.raises(SpecError, match=r"3 streams reach this mp4 sink \(a, b, c\)"):
        check_pipeline_file(path)
