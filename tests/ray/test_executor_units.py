"""The ray executor's pure parts, without a cluster: placement, sharding, the `executor:` block and
`resources:` validation, and the one-line error when Ray is not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamyolox.graph.executors.base import Node
from streamyolox.graph.executors.nodes import NodeRoom, assign
from streamyolox.graph.executors.shards import least_loaded, shard_of, shard_spec, unsharded
from streamyolox.graph.options import SpecError
from streamyolox.graph.transport import EdgeInfo
from streamyolox.graph.validate import parse_pipeline
from streamyolox.graph.wiring import by_placement, moved, plan_edges

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "media" / "demo.mp4"


def _pipeline(streams: int = 4, sink_path: str = "/tmp/x/{stream}.jsonl", **work: object) -> dict:
    return {"stages": {
        "source": {"kind": "decode", "streams": {f"s{i}": str(CLIP) for i in range(streams)}},
        "work": {"kind": "fake_stages:Passthrough", "inputs": ["source"], **work},
        "side": {"kind": "fake_stages:Passthrough", "inputs": ["work"], "worker": "w"},
        "sink": {"kind": "ray_stages:StreamLines", "inputs": ["side"], "path": sink_path, "worker": "w"}}}


def _rooms(*free: dict[str, float]) -> list[NodeRoom]:
    return [NodeRoom(Node(f"n{i}", f"10.0.0.{i}"), dict(f)) for i, f in enumerate(free)]


def test_shards_split_streams_balanced_and_never_twice() -> None:
    spec = shard_spec(parse_pipeline(_pipeline(streams=5)), 2)
    assert list(spec.stages) == ["source@0", "work@0", "side@0", "sink@0", "source@1", "work@1", "side@1",
                                 "sink@1"]
    got = [set(spec.stages[f"source@{k}"].options.raw_streams) for k in (0, 1)]  # type: ignore[attr-defined]
    assert got == [{"s0", "s2", "s4"}, {"s1", "s3"}]
    assert spec.stages["work@1"].inputs == ("source@1",) and spec.stages["sink@1"].worker == "w@1"
    assert shard_of("side@1") == 1 and shard_of("work@0#1") == 0 and shard_of("work") == 0


def test_a_new_stream_goes_to_the_least_loaded_shard_then_replica() -> None:
    # shard totals first (shard 1: 2 < shard 0: 3), then the replica of that shard with the fewest
    assert least_loaded({"src@0#0": 1, "src@0#1": 2, "src@1#0": 2, "src@1#1": 0}) == "src@1#1"
    assert least_loaded({"src@0": 2, "src@1": 2, "src@10": 2}) == "src@0"  # ties: the lowest shard index
    assert least_loaded({"src@2": 0, "src@10": 0}) == "src@2"  # by index, not by name
    assert least_loaded({"src#10": 0, "src#2": 0, "src#3": 1}) == "src#2"  # unsharded: replicas alone
    assert [unsharded(s) for s in ("src@1#0", "src@1", "src#2", "src")] == ["src"] * 4
    with pytest.raises(ValueError, match="none of its replicas is running"):
        least_loaded({})


def test_shards_by_whole_sources_and_their_errors() -> None:
    doc = {"stages": {f"src{i}": {"kind": "decode", "url": str(CLIP)} for i in range(3)}}
    doc["stages"]["sink"] = {"kind": "ray_stages:StreamLines", "inputs": ["src0", "src1", "src2"],
                             "path": "/tmp/x/{stream}.jsonl"}
    spec = shard_spec(parse_pipeline(doc), 2)
    assert spec.stages["sink@0"].inputs == ("src0@0", "src2@0") and spec.stages["sink@1"].inputs == ("src1@1",)
    with pytest.raises(SpecError, match=r"^executor.shards: 4 shards, but the sources have only 3 stream\(s\)"):
        shard_spec(parse_pipeline(doc), 4)
    with pytest.raises(SpecError, match=r"^stages.sink.path: with executor.shards: 2 every shard writes"):
        shard_spec(parse_pipeline(_pipeline(sink_path="/tmp/x/all.jsonl")), 2)


def _groups(spec) -> dict[str, list]:
    groups: dict[str, list] = {}
    for sid, s in spec.stages.items():
        groups.setdefault(s.worker or sid, []).append(s)
    return groups


def test_placement_spreads_shards_over_nodes_that_hold_them_whole() -> None:
    groups = _groups(shard_spec(parse_pipeline(_pipeline(resources={"num_gpus": 1})), 2))
    shard = {n: shard_of(g[0].id) for n, g in groups.items()}
    placed = assign(groups, shard, _rooms({"CPU": 4, "GPU": 1}, {"CPU": 4, "GPU": 1}))
    assert {n: p.id for n, p in placed.items()} == {"source@0": "n0", "work@0": "n0", "w@0": "n0",
                                                    "source@1": "n1", "work@1": "n1", "w@1": "n1"}
    # one node can hold both shards whole: both go there (no edge between nodes)
    placed = assign(groups, shard, _rooms({"CPU": 4}, {"CPU": 4, "GPU": 2}))
    assert {p.id for p in placed.values()} == {"n1"}


def test_placement_sends_a_gpu_stage_to_the_gpu_node_and_the_rest_stays() -> None:
    doc = _pipeline(resources={"num_gpus": 1})
    doc["stages"]["side"]["resources"] = {"num_cpus": 2}
    groups = _groups(parse_pipeline(doc))
    rooms = _rooms({"CPU": 4}, {"GPU": 1})
    placed = assign(groups, {}, rooms)
    assert {n: p.id for n, p in placed.items()} == {"source": "n0", "work": "n1", "w": "n0"}
    assert rooms[0].free == {"CPU": 2} and rooms[1].free == {"GPU": 0}


def test_unplaceable_stage_names_it_and_the_nodes() -> None:
    spec = parse_pipeline(_pipeline(resources={"num_gpus": 1, "num_cpus": 2}))
    groups = {sid: [s] for sid, s in spec.stages.items()}
    with pytest.raises(SpecError) as err:
        assign(groups, {}, _rooms({"CPU": 1}, {"CPU": 2}))
    assert str(err.value) == ("stages.work.resources: no node of the cluster has num_cpus: 2, num_gpus: 1 free "
                              "(nodes: num_cpus: 1; num_cpus: 2)")


@pytest.mark.parametrize(("patch", "message"), [
    ({"resources": {"gpus": 1}}, "stages.work.resources: unknown option 'gpus' (did you mean 'num_gpus'?)"),
    ({"resources": {"num_cpus": -1}}, "stages.work.resources.num_cpus: expected a number >= 0, got -1.0"),
    ({"executor": {"kind": "k8s"}}, "executor.kind: expected one of 'local', 'ray', got 'k8s'"),
    ({"executor": {"kind": "ray", "shards": 0}}, "executor.shards: expected an int >= 1, got 0"),
    ({"executor": {"shards": 2}}, "executor.shards: needs kind: ray"),
])
def test_executor_and_resources_errors_are_one_line(patch: dict, message: str) -> None:
    doc = _pipeline()
    if "resources" in patch:
        doc["stages"]["work"]["resources"] = patch["resources"]
    else:
        doc["executor"] = patch["executor"]
    with pytest.raises(SpecError) as err:
        parse_pipeline(doc)
    assert str(err.value) == message


def test_executor_block_parsed() -> None:
    doc = {**_pipeline(), "executor": {"kind": "ray", "address": "head:6379", "shards": 2}}
    ex = parse_pipeline(doc).executor
    assert (ex.kind, ex.address, ex.shards) == ("ray", "head:6379", 2)


def test_without_ray_installed_the_error_says_what_to_install(tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"stages:\n  source: {{kind: decode, url: {CLIP}}}\n"
                    f"  sink: {{kind: json, inputs: [source], path: {tmp_path}/o.jsonl}}\n")
    code = ("import sys; sys.modules['ray'] = None; from streamyolox.cli import main; "  # import ray fails
            f"sys.exit(main(['run', {str(pipe)!r}, '--executor', 'ray', '--no-dashboard']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == ("streamyolox: error: executor.kind: ray is not installed; "
                                                    "install it with pip install 'streamyolox[ray]'")
    assert not (tmp_path / "o.jsonl").exists()


def test_shards_without_ray_is_refused(tmp_path: Path) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"stages:\n  source: {{kind: decode, url: {CLIP}}}\n"
                    f"  sink: {{kind: json, inputs: [source], path: {tmp_path}/o.jsonl}}\n")
    done = subprocess.run([sys.executable, "-m", "streamyolox", "run", str(pipe), "--shards", "2",
                           "--no-dashboard"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        "streamyolox: error: --shards: needs --executor ray (or executor.kind: ray)"


@pytest.mark.parametrize(("extra", "args", "message"), [
    ("listen: tcp://127.0.0.1:7000", [], "stages.sink.listen: not with the ray executor (Ray places the stage, "
                                         "so the driver picks its tcp ports on the node it runs on); remove it"),
    ("", ["--only", "sink"], "--only: not with the ray executor (Ray places every stage and the driver wires "
                             "the edges between them)"),
])
def test_fixed_endpoints_are_refused_under_ray(tmp_path: Path, extra: str, args: list[str], message: str) -> None:
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"stages:\n  source: {{kind: decode, url: {CLIP}}}\n"
                    f"  sink: {{kind: json, inputs: [source], path: {tmp_path}/o.jsonl, {extra}}}\n")
    done = subprocess.run([sys.executable, "-m", "streamyolox", "run", str(pipe), "--executor", "ray",
                           "--ray-address", "127.0.0.1:1", "--no-dashboard", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"streamyolox: error: {message}"  # before Ray is reached
    assert not (tmp_path / "o.jsonl").exists()


def test_edge_endpoints_follow_placement_and_fixed_endpoints_override() -> None:
    doc = _pipeline(streams=1)
    doc["stages"]["work"]["listen"] = "tcp://10.0.0.9:7000"
    spec = parse_pipeline(doc)
    a, b = Node("a", "10.0.0.1"), Node("b", "10.0.0.2")
    nodes = {"source": a, "work": b, "side": a, "sink": a}
    got = {(e.src, e.dst): (e.kind, e.address) for e in plan_edges(spec, "/run", "p-", set(spec.stages), nodes)}
    assert got == {("source", "work"): ("tcp", "tcp://10.0.0.9:7000"),  # fixed: listen's port + input index
                   ("work", "side"): ("tcp", "tcp://10.0.0.1:0"),  # other node: the consumer's, port to come
                   ("side", "sink"): ("inproc", "")}  # one worker
    assert by_placement(3, "/run", a, a) == ("ipc", "ipc:///run/e3")
    edge = EdgeInfo(3, "x", "y", "tcp", "tcp://10.0.0.2:5555", 1, "block", 3)
    assert moved(edge, "/run", a, b, consumer_moved=False) is edge  # the consumer stays: it keeps its port
    assert (moved(edge, "/run", b, a, consumer_moved=True).address, moved(edge, "/run", b, b, True).kind) == \
        ("tcp://10.0.0.1:0", "ipc")
    with pytest.raises(SpecError, match=r"stages.work.listen: required: its input 'source' runs on another"):
        plan_edges(parse_pipeline(_pipeline(streams=1)), "/run", "p-", {"work", "side", "sink"})
