"""`--set` with stream ids that hold dots: behind `stages.<decode>.streams.` the whole rest of the path is one
id, `streams[ID].OPTION` sets one option of a stream; through `streamyolox run` into a file per stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamyolox.graph.validate import SpecError, apply_overrides, load_pipeline
from tests.sources.test_live_pipeline import REPO, start_run, write
from tests.sources.test_streams_pipeline import DEMO, frames_by_stream


def decode_doc(streams: dict | None = None) -> dict:
    return {"stages": {"source": {"kind": "decode", "streams": streams or {}},
                       "count": {"kind": "count", "inputs": ["source"]}}}


def test_the_rest_of_a_streams_path_is_one_id() -> None:
    doc = apply_overrides(decode_doc({"yard": {"url": "a.mp4", "max_fps": 5}}), [
        "stages.source.streams.cam.1=clip.mp4",
        "stages.source.streams[cam.1].max_fps=3",  # a bare url becomes {url: ...} first
        "stages.source.streams.yard=b.mp4",  # a url for a stream given as options: its url, options kept
        "stages.source.streams[x.y.z]=z.mp4",
        "stages.source.streams.v.2={url: v.mp4, loop: true}",
    ])
    assert doc["stages"]["source"]["streams"] == {
        "yard": {"url": "b.mp4", "max_fps": 5}, "cam.1": {"url": "clip.mp4", "max_fps": 3},
        "x.y.z": "z.mp4", "v.2": {"url": "v.mp4", "loop": True}}
    # Not a decode stage: dots split as everywhere else (`[key]` still takes a key literally).
    doc = apply_overrides(decode_doc(), ["stages.count.streams.a.b=1", "stages.count.streams[a.b].c=2"])
    assert doc["stages"]["count"]["streams"] == {"a": {"b": 1}, "a.b": {"c": 2}}


@pytest.mark.parametrize(("item", "message"), [
    ("stages.source.streams.yard.max_fps=10", "--set stages.source.streams.yard.max_fps: stream 'yard.max_fps' "
     "takes a url or a mapping of options, got 10 (one option of a stream: stages.source.streams[ID].OPTION=VALUE)"),
    ("stages.source.streams[cam=a.mp4", "--set stages.source.streams[cam: unbalanced brackets (write name[KEY])"),
    ("stages.source.streams.=a.mp4", "--set stages.source.streams.: empty key in the path"),
    ("stages..x=1", "--set stages..x: empty key in the path"),
])
def test_bad_paths_fail_in_one_line(item: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        apply_overrides(decode_doc(), [item])
    assert str(info.value) == message


def test_a_bad_id_or_option_names_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, f'stages:\n  source: {{kind: decode, streams: {{a: "{DEMO}"}}}}\n'
                           '  json: {kind: json, inputs: [source], path: "out/{stream}.jsonl"}\n')
    with pytest.raises(SpecError, match=r"stages.source.streams.cam.1.max_fps: expected a number > 0, got -1$"):
        load_pipeline(path, [f"stages.source.streams.cam.1={DEMO}", "stages.source.streams[cam.1].max_fps=-1"])
    with pytest.raises(SpecError, match=r"stages.source.streams: invalid stream id 'c d' "):
        load_pipeline(path, [f"stages.source.streams.c d={DEMO}"])


@pytest.mark.timeout(300)
def test_dotted_ids_from_the_command_line_run_into_a_file_each(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pipeline = write(tmp_path, f"""
name: ids
stages:
  source: {{kind: decode, threads: 1, streams: {{}}}}
  json: {{kind: json, inputs: [source], path: "{out}/{{stream}}.jsonl"}}
""")
    proc = start_run(pipeline, tmp_path, f"stages.source.streams.cam.1={DEMO}",
                     f"stages.source.streams[lobby.east.2]={DEMO}", "stages.source.streams[lobby.east.2].stride=3")
    _, err = proc.communicate(timeout=280)
    assert proc.returncode == 0, err[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["cam.1.jsonl", "lobby.east.2.jsonl"]
    assert frames_by_stream(out / "cam.1.jsonl") == {"cam.1": list(range(120))}
    assert frames_by_stream(out / "lobby.east.2.jsonl") == {"lobby.east.2": list(range(0, 120, 3))}


def test_the_shipped_multi_camera_pipeline_takes_dotted_ids() -> None:
    spec = load_pipeline(REPO / "pipelines" / "multi_camera.yaml",
                         [f"stages.source.streams.door.1={DEMO}", f"stages.source.streams.door.2={DEMO}",
                          "stages.source.streams[door.2].max_fps=5"])
    streams = spec.stages["source"].options.stream_options
    assert list(streams) == ["door.1", "door.2"]
    assert (streams["door.1"].max_fps, streams["door.2"].max_fps) == (None, 5.0)
