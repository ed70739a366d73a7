"""`decode` with `streams:` / `streams_file:` / `processes:`: parsing, per-stream defaults, one-line errors,
`--set` adding a stream, and the expansion into one source per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamyolox.graph import liveness
from streamyolox.graph.replicas import edge_roles, expand
from streamyolox.graph.validate import SpecError, apply_overrides, load_pipeline, parse_pipeline
from streamyolox.sources.streams import StreamSettings, parse_stream
from streamyolox.stages.decode import DecodeConfig


@pytest.fixture
def video(street_720p: Path) -> str:
    return str(street_720p)


def pipeline(source: dict, sink_policy: str = "block") -> dict:
    return {"stages": {"source": {"kind": "decode", **source},
                       "json": {"kind": "json", "inputs": ["source"], "path": "/tmp/x.jsonl",
                                "policy": sink_policy}}}


def test_stage_options_are_each_streams_defaults(video: str) -> None:
    cfg = DecodeConfig(max_fps=10, threads=1, streams={"door": video, "yard": {"url": video, "max_fps": 5}})
    door, yard = cfg.stream_options["door"], cfg.stream_options["yard"]
    assert (door.id, door.url, door.max_fps, door.threads) == ("door", video, 10, 1)
    assert (yard.id, yard.max_fps, yard.threads) == ("yard", 5, 1)
    assert cfg.url is None and cfg.processes == 1
    assert DecodeConfig(streams={}).stream_options == {}  # a source that waits for streams added live


@pytest.mark.parametrize(("value", "message"), [
    ({"url": "x.mp4", "max_fps": -1}, "streams.yard.max_fps: expected a number > 0, got -1"),
    ({"url": "x.mp4", "stride": 0}, "streams.yard.stride: expected an int >= 1, got 0"),
    ({"url": "x.mp4", "transport": "sctp"}, "streams.yard.transport: expected one of 'tcp', 'udp', got 'sctp'"),
    ({"url": "x.mp4", "max_fsp": 3}, "streams.yard: unknown option 'max_fsp' (did you mean 'max_fps'?)"),
    ({"max_fps": 3}, "streams.yard: missing required option 'url'"),
    ({"url": ""}, "streams.yard.url: expected a non-empty string, got ''"),
    ({"url": "x.mp4", "width": 640}, "streams.yard.height: set width and height together, got width 640, "
                                     "height None"),
    (7, "streams.yard: expected a url or a mapping of decode options, got 7"),
])
def test_parse_stream_errors_name_the_option(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_stream("yard", value, StreamSettings())  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize("bad", ["a b", "", "x" * 65, "cam/1", "ü"])
def test_stream_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match=r"invalid stream id"):
        parse_stream(bad, "x.mp4", StreamSettings())
    with pytest.raises(ValueError, match=r"^streams: invalid stream id"):
        DecodeConfig(streams={bad: "x.mp4"})
    assert parse_stream("Cam-1.north_2", "x.mp4", StreamSettings()).id == "Cam-1.north_2"


@pytest.mark.parametrize(("source", "message"), [
    ({"url": "a.mp4", "streams": {"b": "b.mp4"}}, "stages.source.streams: cannot be combined with url ('a.mp4'); "
                                                  "set url: null (--set stages.<id>.url=null)"),
    ({}, "stages.source.url: set url (one stream) or streams (stream id -> url)"),
    ({"streams": {"a": "a.mp4"}, "processes": 2}, "stages.source.processes: expected at most the number of "
                                                  "streams (1), got 2"),
    ({"url": "a.mp4", "processes": 2}, "stages.source.processes: spreads the streams of `streams` over "
                                       "processes; set streams"),
    ({"streams": {"a": "a.mp4"}, "stream": "x"}, "stages.source.stream: names the stream of url; with streams "
                                                "the ids are the mapping keys"),
    ({"streams": {"yard": {"url": "a.mp4", "max_fps": -1}}},
     "stages.source.streams.yard.max_fps: expected a number > 0, got -1"),
    ({"streams": {"a": 5}}, "stages.source.streams.a: expected str | dict[str, Any], got 5"),
])
def test_config_errors_are_one_line_with_the_path(source: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_pipeline(pipeline(source))
    assert str(info.value) == message


def test_streams_file(tmp_path: Path, video: str) -> None:
    cams = tmp_path / "cams.yaml"
    cams.write_text(f"cam1: {video}\ncam2: {{url: {video}, stride: 2}}\n")
    cfg = DecodeConfig(streams_file=str(cams), streams={"door": video}, stride=3)
    assert {k: o.stride for k, o in cfg.stream_options.items()} == {"door": 3, "cam1": 3, "cam2": 2}
    (tmp_path / "wrapped.yaml").write_text(f"streams:\n  cam9: {video}\n")
    assert list(DecodeConfig(streams_file=str(tmp_path / "wrapped.yaml")).stream_options) == ["cam9"]
    (tmp_path / "bad.yaml").write_text(f"cam1: {{url: {video}, max_fps: 0}}\n")
    (tmp_path / "broken.yaml").write_text("cam1: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    for name, message in [
        ("nope.yaml", "streams_file: {p}: no such file"),
        ("bad.yaml", "streams_file: {p}: streams.cam1.max_fps: expected a number > 0, got 0"),
        ("broken.yaml", "streams_file: {p}:2:1: invalid YAML: expected ',' or ']', but got '<stream end>'"),
        ("list.yaml", "streams_file: {p}: expected a mapping of stream id -> url or options, got ['a', 'b']"),
    ]:
        path = tmp_path / name
        with pytest.raises(ValueError) as info:
            DecodeConfig(streams_file=str(path))
        assert str(info.value) == message.format(p=path)
    with pytest.raises(ValueError, match=r"streams.cam1: given in streams and in the streams file"):
        DecodeConfig(streams_file=str(cams), streams={"cam1": video})


def test_set_adds_a_stream_from_the_command_line(tmp_path: Path, video: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"stages:\n  source: {{kind: decode, url: {video}}}\n"
                    "  json: {kind: json, inputs: [source], path: out.jsonl}\n")
    spec = load_pipeline(path, [f"stages.source.streams.cam1={video}", "stages.source.url=null",
                                f"stages.source.streams.cam2={video}"])
    assert list(spec.stages["source"].options.stream_options) == ["cam1", "cam2"]
    doc = apply_overrides({"stages": {"source": {"streams": None}}}, ["stages.source.streams.a=b.mp4"])
    assert doc["stages"]["source"]["streams"] == {"a": "b.mp4"}
    with pytest.raises(SpecError, match=r"stages.source.streams: cannot be combined with url"):
        load_pipeline(path, [f"stages.source.streams.cam1={video}"])


def test_processes_expand_into_independent_sources(video: str, dog_jpg: Path) -> None:
    streams = {f"c{i}": video for i in range(5)}
    spec = parse_pipeline(pipeline({"streams": streams, "processes": 2, "threads": 1}))
    big = expand(spec)
    assert list(big.stages) == ["source#0", "source#1", "json"]
    assert list(big.stages["source#0"].options.stream_options) == ["c0", "c2", "c4"]
    assert list(big.stages["source#1"].options.stream_options) == ["c1", "c3"]
    assert big.stages["source#1"].options.threads == 1 and big.stages["source#1"].options.processes == 1
    assert big.stages["json"].inputs == ("source#0", "source#1")
    assert edge_roles(big, "source#0", "json") == {"split": None, "merge": None}  # no reorder: disjoint ids
    assert liveness.resumable(big, ["source#0"])  # every stream a file: a restart resumes per stream


def test_mixed_sources_block_their_edges_and_resume(video: str) -> None:
    mixed = {"cam": "rtsp://127.0.0.1:9/x", "file": video}
    spec = parse_pipeline(pipeline({"streams": mixed}, sink_policy="drop_oldest"))
    assert liveness.file_kind(spec.stages["source"]) == liveness.MIXED
    assert liveness.edge_policies(spec, announce=False)[("source", "json")] == "block"
    assert liveness.resumable(spec, ["source"])  # the files resume; live frames are never skipped
    live = parse_pipeline(pipeline({"streams": {"cam": mixed["cam"], "file": {"url": video, "realtime": True}}},
                                   sink_policy="drop_oldest"))
    assert liveness.file_kind(live.stages["source"]) is None
    assert liveness.edge_policies(live, announce=False)[("source", "json")] == "drop_oldest"
    assert not liveness.resumable(live, ["source"])
