"""The checks that depend on this machine, run by `streamyolox validate` and by `streamyolox run` after
`load_pipeline` and before any process starts: the device is there, the weights are readable and of the
model, a display sink has a display, the sources exist, every output can be written (and is no input, and no other sink's), and every
port to bind is free. Each failure is one `SpecError` line naming the option (`stages.json.path: ...`) or
the CLI flag (`--http 9100: port is in use`); pure value checks live in the Configs and the spec parser.

`preflight` returns the spec with the model block resolved (`graph.model_check.resolve_model`): weights
as an absolute path, input size and class names decided once for every stage.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import ipaddress
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from streamyolox.config_fields import OUTPUT_KEY
from streamyolox.graph.model_check import check_model_inputs, resolve_model, uses_model
from streamyolox.graph.options import SpecError, option_message
from streamyolox.graph.spec import PipelineSpec
from streamyolox.stages.stream_paths import PathTemplate, may_collide, parse_path

__all__ = ["SpecError", "check_pipeline_file", "cuda_device_count", "preflight"]


def check_pipeline_file(path: str | os.PathLike[str], sets: Sequence[str] = (), env: Mapping[str, str] | None = None,
                        *, only: Sequence[str] | None = None, **options: Any) -> PipelineSpec:
    """`load_pipeline` then `preflight` (what `streamyolox validate` and `run` do). A `SpecError` starts with
    the file name, except for the CLI's own flags (`--http 9100: port is in use`, `--only: ...`)."""
    from streamyolox.graph.validate import load_pipeline

    spec = load_pipeline(path, sets, env)
    unknown = [s for s in only or () if s not in spec.stages]
    if unknown:
        raise SpecError(f"--only: unknown stage {unknown[0]!r} (stages: {', '.join(spec.stages)})")
    try:
        return preflight(spec, only=only, **options)
    except SpecError as exc:
        raise SpecError(str(exc) if str(exc).startswith("--") else f"{path}: {exc}") from None


def preflight(spec: PipelineSpec, *, http_port: int | None = None, metrics_json: str | None = None,
              only: Sequence[str] | None = None, download: bool = False) -> PipelineSpec:
    """Check `spec` against this machine for the stages run here (`only`, default all); returns it with
    the model block resolved. `download`: fetch zoo weights that are not local (run does, validate not)."""
    local = list(only) if only is not None else list(spec.stages)
    check_devices(spec, local)
    if uses_model(spec, local):
        spec = dataclasses.replace(spec, model=resolve_model(spec.model, download))
        check_model_inputs(spec)
    check_display(spec, local)
    inputs = check_sources(spec, local)
    check_outputs(spec, local, inputs, metrics_json)
    check_mp4_streams(spec, local)
    check_wall_frames(spec, local, http_port)
    check_ports(spec, local, http_port)
    return spec


def check_wall_frames(spec: PipelineSpec, local: list[str], http_port: int | None) -> None:
    """The camera wall (`--http`, `metrics.http_port`) shows BGR frames: a decode set to YUV planes has none."""
    flag = f"--http {http_port}" if http_port is not None else "metrics.http_port"
    if http_port is None and spec.metrics.http_port is None:
        return
    for sid in local:
        if spec.stages[sid].kind == "decode" and getattr(spec.stages[sid].options, "pixel_format", None) == "yuv420p":
            raise SpecError(f"stages.{sid}.pixel_format: yuv420p hands on no BGR frame for the camera wall "
                            f"({flag}); set auto or bgr24")


def cuda_device_count() -> int:
    """CUDA devices this process can see (CUDA_VISIBLE_DEVICES applies), asked of the driver through ctypes:
    no torch, CuPy or numba import (seconds each), and 0 at once where libcuda is not installed."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def check_devices(spec: PipelineSpec, local: list[str]) -> None:
    """A CUDA device for model.device (when a stage here reads the model) and each explicit letterbox
    device."""
    from streamyolox.stages.letterbox import LetterboxConfig

    wanted = [("model.device", spec.model.device)] if uses_model(spec, local) else []
    for sid in local:
        cfg = spec.stages[sid].options
        if isinstance(cfg, LetterboxConfig) and cfg.device != "auto":
            wanted.append((f"stages.{sid}.device", cfg.device))
    cuda = [(label, device) for label, device in wanted if device.startswith("cuda")]
    if not cuda:
        return
    count = cuda_device_count()
    for label, device in cuda:
        index = int(device.partition(":")[2] or 0)
        if count == 0:
            raise SpecError(f"{label}: {device} requested but no CUDA device is visible")
        if index >= count:
            raise SpecError(f"{label}: {device} requested but only {count} CUDA device(s) are visible "
                            f"(cuda:0..cuda:{count - 1})")


def loaded_stage_module(name: str) -> Any:
    """`streamyolox.stages.<name>` if imported, else None. Validation imported the module of every stage's
    Config, so None means no stage of that kind (or a subclass of it) is in the pipeline; importing it here
    would load cv2 into the runner for nothing (~37 MB of its RSS, AMD EPYC, opencv 5.1)."""
    return sys.modules.get(f"streamyolox.stages.{name}")


def check_display(spec: PipelineSpec, local: list[str]) -> None:
    """A display sink needs an X display that answers (Qt would abort the process without one)."""
    display = loaded_stage_module("display")
    if display is None:
        return
    for sid in local:
        if isinstance(spec.stages[sid].options, display.DisplayConfig):
            reason = display.x_display_error(os.environ.get("DISPLAY"))
            if reason:
                raise SpecError(f"stages.{sid}: {reason}")


def check_sources(spec: PipelineSpec, local: list[str]) -> dict[str, str]:
    """Each decode url here names something that exists; returns realpath -> option of every input file
    (media, images, the weights), which no output may overwrite."""
    from streamyolox.sources import SourceError, parse_source
    from streamyolox.stages.decode import DecodeConfig

    weights = spec.model.weights
    inputs = {os.path.realpath(weights): "model.weights"} if weights and os.path.isfile(weights) else {}
    for sid in local:
        cfg = spec.stages[sid].options
        if not isinstance(cfg, DecodeConfig):
            continue
        urls = {"url": cfg.url} if cfg.url is not None else \
            {f"streams.{k}.url": o.url for k, o in cfg.stream_options.items()}
        for option, url in urls.items():
            where = f"stages.{sid}.{option}"
            try:
                source = parse_source(url)
            except SourceError as exc:
                raise SpecError(f"{where}: {exc}") from None
            if source.kind == "webcam" and source.av_format == "v4l2" and not os.path.exists(source.target):
                raise SpecError(f"{where}: no camera: {source.target} does not exist")
            files = source.images or ((source.target,) if source.kind == "file" else ())
            inputs.update({os.path.realpath(f): where for f in files})
    return inputs


def _outputs(spec: PipelineSpec, local: list[str]) -> Iterator[tuple[str, str]]:
    """(option path, file) of every output field (`config_fields.output_path`) of the stages here."""
    for sid in local:
        cfg = spec.stages[sid].options
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.metadata.get(OUTPUT_KEY) and isinstance(value, str) and value != "-":
                yield f"stages.{sid}.{f.name}", value


def write_error(path: Path) -> str | None:
    """Why `path` cannot be written (created with its missing folders), or None."""
    if path.is_dir():
        return "it is a folder"
    if path.exists():
        return None if os.access(path, os.W_OK) else "it is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{parent} is not writable"


def check_outputs(spec: PipelineSpec, local: list[str], inputs: dict[str, str], metrics_json: str | None) -> None:
    """Outputs writable, none written twice, none an input."""
    outputs = list(_outputs(spec, local))
    if metrics_json is not None:
        outputs.append(("--metrics-json", metrics_json))
    elif spec.metrics.json:
        outputs.append(("metrics.json", spec.metrics.json))
    written: list[tuple[PathTemplate, str]] = []
    for label, raw in outputs:
        where = f"{label} {raw}" if label.startswith("--") else label
        # a sink's path may be a `{stream}` template (stages.stream_paths): checked as one of its files,
        # compared as every file it can name; the metrics file is a plain name
        template = (parse_path(label, raw) if label.startswith("stages.") else PathTemplate(raw, (raw,))).absolute()
        reason = write_error(Path(template.render("stream")))
        if reason:
            raise SpecError(f"{where}: cannot write {raw!r}: {reason}")
        hit = inputs.get(template.render("")) if not template.templated else next(
            (inputs[real] for real in inputs if template.matches(real)), None)
        if hit is not None:
            named = "is" if not template.templated else "can name"
            raise SpecError(f"{where}: {raw!r} {named} the input of {hit}; writing it would destroy it")
        other = next((lab for tpl, lab in written if may_collide(template, tpl)), None)
        if other is not None:
            both = "is" if not template.templated else "can name a file"
            raise SpecError(f"{where}: {raw!r} {both} also written by {other}")
        written.append((template, label))


def upstream_streams(spec: PipelineSpec, sid: str) -> list[str]:
    """The stream ids the decode stages upstream of `sid` read (at start; more may be added live)."""
    from streamyolox.stages.decode import DecodeConfig

    seen: set[str] = set()
    out: list[str] = []
    todo = [sid]
    while todo:
        cur = todo.pop()
        if cur in seen or cur not in spec.stages:
            continue
        seen.add(cur)
        cfg = spec.stages[cur].options
        if isinstance(cfg, DecodeConfig):
            out += list(cfg.stream_options) if cfg.url is None else [cfg.stream or cur]
        todo.extend(spec.stages[cur].inputs)
    return sorted(set(out))


def check_mp4_streams(spec: PipelineSpec, local: list[str]) -> None:
    """An mp4 sink fed several streams needs `{stream}` in its path (one video per stream)."""
    mp4 = loaded_stage_module("mp4_sink")
    if mp4 is None:
        return
    for sid in local:
        cfg = spec.stages[sid].options
        if isinstance(cfg, mp4.Mp4Config) and not parse_path("path", cfg.path).templated:
            streams = upstream_streams(spec, sid)
            if len(streams) > 1:
                shown = ", ".join(streams[:4]) + (", ..." if len(streams) > 4 else "")
                raise SpecError(f"stages.{sid}.path: {len(streams)} streams reach this mp4 sink ({shown}) but "
                                f"{cfg.path!r} has no {{stream}}; write e.g. 'out/{{stream}}.mp4'")


def port_error(host: str, port: int) -> str | None:
    """Why a TCP listener cannot bind `host:port` now (None: it can). SO_REUSEADDR as the HTTP server and
    ZeroMQ set it, so a port left in TIME_WAIT by an earlier run does not count as busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return "port is in use" if exc.errno == errno.EADDRINUSE else f"cannot bind {host}: {exc.strerror}"
    return None


def _bind_host(host: str) -> str | None:
    """The address a ZeroMQ tcp bind host means (None: an interface name, left to ZeroMQ)."""
    host = host.strip("[]")
    if host == "*":
        return "0.0.0.0"
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _binds(spec: PipelineSpec, local: list[str], http_port: int | None) -> Iterator[tuple[str, str, int]]:
    """(label, host, port) of every TCP port this host's run binds: the metrics endpoint, stages' `listen`
    inputs, zmq sinks."""
    zmq_sink = loaded_stage_module("zmq_sink")
    if http_port is not None:
        if not 0 <= http_port <= 65535:
            raise SpecError(f"--http {http_port}: expected a port in [0, 65535]")
        yield f"--http {http_port}", "0.0.0.0", http_port
    elif spec.metrics.http_port is not None:
        yield "metrics.http_port", "0.0.0.0", spec.metrics.http_port
    for sid in local:
        yield from _listen_binds(spec, sid)
        cfg = spec.stages[sid].options
        if zmq_sink is not None and isinstance(cfg, zmq_sink.ZmqSinkConfig) and cfg.mode == "bind" and cfg.endpoint.startswith("tcp://"):
            host, _, port = cfg.endpoint[len("tcp://"):].rpartition(":")
            address = _bind_host(host)
            if address is not None and port.isdigit():
                yield f"stages.{sid}.endpoint", address, int(port)


def _listen_binds(spec: PipelineSpec, sid: str) -> Iterator[tuple[str, str, int]]:
    """The ports a stage's `listen: tcp://host:port` binds, one per input (port + i, as the runner plans
    its edges); each must be a real port: 0 would pick one its producers on other hosts cannot know."""
    stage = spec.stages[sid]
    if stage.listen is None:
        return
    host, _, text = stage.listen[len("tcp://"):].rpartition(":")  # the form was checked by the loader
    address = _bind_host(host)
    for i in range(len(stage.inputs)):
        port = int(text) + i
        if not 1 <= port <= 65535:
            which = f" (input {i} of {len(stage.inputs)} binds port + {i})" if len(stage.inputs) > 1 else ""
            raise SpecError(f"stages.{sid}.listen: port {port}{which}: expected a port in [1, 65535]")
        if address is not None:
            yield f"stages.{sid}.listen", address, port


def check_ports(spec: PipelineSpec, local: list[str], http_port: int | None) -> None:
    """Every port to bind is free and bound once; zmq CURVE key files readable."""
    taken: dict[int, str] = {}
    for label, host, port in _binds(spec, local, http_port):
        if port == 0:  # any free port
            continue
        if port in taken:
            raise SpecError(f"{label}: port {port} is also bound by {taken[port]}")
        reason = port_error(host, port)
        if reason:
            raise SpecError(f"{label}: {reason}" if label.startswith("--") else f"{label}: {port}: {reason}")
        taken[port] = label
    zmq_sinks = [sid for sid in local if spec.stages[sid].kind == "zmq"]
    if not zmq_sinks:
        return
    # only now: the zmq sink's module imports zmq.auth's thread (asyncio): 0.1 s of every run's start-up
    from streamyolox.stages.zmq_sink import ZmqSinkConfig, load_server_key

    for sid in zmq_sinks:
        cfg = spec.stages[sid].options
        if isinstance(cfg, ZmqSinkConfig) and cfg.curve_server_secret_key is not None:
            try:
                load_server_key(cfg.curve_server_secret_key)
            except ValueError as exc:
                raise SpecError(option_message(f"stages.{sid}", str(exc), {"curve_server_secret_key"})) from None
