"""Typed form of a pipeline YAML: `PipelineSpec` (name, model, stages, metrics) and `StageSpec`.

Built by `streamyolox.graph.validate.load_pipeline`, which checks every field; the runner trusts these.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from streamyolox.config_fields import check_ranges, ranged
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import StageConfig

Policy = Literal["block", "drop_oldest"]
RestartPolicy = Literal["never", "on-failure"]


@dataclass(frozen=True)
class StageSpec:
    """One entry of `stages:`.

    Attributes:
        id: the mapping key; names the stage in logs, metrics and `inputs` of other stages.
        kind: a built-in kind (`decode`, `nms`, ...) or a user stage `module:Class`.
        inputs: ids of the upstream stages (empty for a source).
        options: the stage's `Config` dataclass, filled from the stage's other keys.
        worker: stages with the same worker name share one process (edges between them are in-process).
        queue: bounded depth of each input edge (packets).
        policy: `block` (the sender waits: lose nothing) or `drop_oldest` (the receiver keeps the newest).
        restart: `never` or `on-failure` (restart the stage's process up to `max_restarts` times).
        listen: `tcp://host:port` where this stage's inputs listen (input i binds port + i); edges into it
            then travel over TCP, so it can run on another host (`streamyolox run --only`).
        threads: intra-op threads of the stage's process (torch, OpenMP, BLAS); None keeps the defaults.
        replicas: data parallelism: this many processes each run their own instance of the stage; the
            upstream stage sends each packet to one of them (round robin) and every consumer receives the
            replicas' outputs merged back into the original order (`streamyolox.graph.reorder`).
        resources: what the stage's process asks of a cluster node (`num_cpus`, `num_gpus`, numbers >= 0;
            summed over the stages of one process); only the `ray` executor places by them.
    """

    id: str
    kind: str
    inputs: tuple[str, ...] = ()
    options: StageConfig = field(default_factory=StageConfig)
    worker: str | None = None
    queue: int = 8
    policy: Policy = "block"
    restart: RestartPolicy = "never"
    max_restarts: int = 3
    listen: str | None = None
    threads: int | None = None
    replicas: int = 1
    resources: dict[str, float] | None = None
    is_source: bool = False
    is_sink: bool = False


@dataclass(frozen=True)
class MetricsSpec:
    """The optional `metrics:` block.

    Attributes:
        interval_s: how often stages report and the plain log line is printed (> 0).
        http_port: serve Prometheus `/metrics` and JSON `/health` on this port, 1..65535 (None: off; 0: any
            free port, which the log line names).
        json: write the final metrics summary to this file (the CLI's `--metrics-json` overrides it).
        http_host: the address the HTTP server binds (127.0.0.1: this machine only).
        http_token: required beyond loopback: clients send `Authorization: Bearer <token>` (every route but
            /health); e.g. `http_token: ${STREAMYOLOX_HTTP_TOKEN}`.
    """

    interval_s: float = ranged(1.0, gt=0)
    http_port: int | None = ranged(None, ge=0, le=65535)
    json: str | None = None
    http_host: str = "127.0.0.1"
    http_token: str | None = None

    def __post_init__(self) -> None:
        check_ranges(self)
        check_http_bind(self.http_host, self.http_token, "metrics.http_host", "metrics.http_token")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_bind(host: str, token: str | None, host_label: str, token_label: str) -> None:
    """A server reachable from other machines needs a token (ValueError naming the options, one line)."""
    if token and (len(token) < 8 or any(c.isspace() for c in token)):  # "" (an unset ${VAR:-}) is none
        raise ValueError(f"{token_label}: expected at least 8 characters without spaces")
    if not is_loopback(host) and not token:
        raise ValueError(f"{host_label}: {host} is reachable beyond this machine: set {token_label} too")


@dataclass(frozen=True)
class ExecutorSpec:
    """The optional `executor:` block (the CLI's `--executor`, `--ray-address`, `--shards` override it).

    Attributes:
        kind: `local` (child processes of the runner, the default) or `ray` (Ray actors on a cluster:
            `pip install 'streamyolox[ray]'`, docs/cluster.md).
        address: the Ray cluster to join (`HOST:PORT` of `ray start --head`; None: `ray.init`'s default,
            `RAY_ADDRESS` or a cluster started on this machine, else a new local one).
        shards: split the sources' streams over this many copies of the pipeline (ray only).
    """

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    shards: int = ranged(1, ge=1)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.kind not in ("local", "ray"):
            raise ValueError(f"kind: expected 'local' or 'ray', got {self.kind!r}")
        if self.kind == "local" and (self.shards > 1 or self.address is not None):
            raise ValueError(f"{'shards' if self.shards > 1 else 'address'}: needs kind: ray")


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline: stages keyed by id, in YAML order."""

    name: str
    model: ModelSpec
    stages: dict[str, StageSpec]
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    source: str = "<memory>"
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)

    def edges(self) -> list[tuple[str, str]]:
        """Every (producer id, consumer id) pair, in stage order."""
        return [(src, s.id) for s in self.stages.values() for src in s.inputs]

    def consumers(self, stage_id: str) -> list[str]:
        """Ids of the stages that take `stage_id` as an input."""
        return [dst for src, dst in self.edges() if src == stage_id]

    def sinks(self) -> list[str]:
        """Stages no other stage consumes (the run ends when all of them have closed)."""
        consumed = {src for src, _ in self.edges()}
        return [sid for sid in self.stages if sid not in consumed]
