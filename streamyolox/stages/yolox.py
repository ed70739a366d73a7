"""`yolox` stage: batched inference; sets `packet.raw` to the decoded predictions [N, 5 + C]."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from streamyolox.config_fields import ranged
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet

if TYPE_CHECKING:
    import torch


@dataclass
class YoloxConfig(StageConfig):
    """batch: frames per inference call (up to); max_wait_ms: how long to wait for a batch to fill;
    backend: overrides model.backend (auto, torch, onnxruntime, openvino); threads: intra-op threads (None: on CPU, all
    cores but one, which is left to decoding and the other stages, shared among the stage's replicas);
    spin: let idle onnxruntime threads spin (fastest alone, slower when other stages share the cores);
    concurrency: inference calls in flight at once in this process, each on its own thread with `threads`
    intra-op threads, over one loaded model (onnxruntime, openvino), outputs in input order."""

    batch: int = ranged(1, ge=1)
    max_wait_ms: float = ranged(5.0, ge=0)
    backend: Literal["auto", "torch", "onnxruntime", "openvino"] | None = None
    threads: int | None = ranged(None, ge=1)
    spin: bool = False
    concurrency: int = ranged(1, ge=1)


class YoloxStage(Stage):
    kind = "yolox"
    Config = YoloxConfig
    description = "YOLOX inference (torch or onnxruntime; CUDA when model.device is cuda)"

    def open(self) -> None:
        from streamyolox.inference import make_backend

        cfg: YoloxConfig = self.config
        spec = self.ctx.model or ModelSpec()
        if cfg.backend:
            spec = ModelSpec(**{**spec.__dict__, "backend": cfg.backend})
        threads = cfg.threads
        if threads is None and not spec.device.startswith("cuda"):
            # 2-core machine, 720p demo: 49 frames/s with 1 inference thread vs 40 with 2 fighting decode
            # for the cores (benchmarks/README.md)
            # replicas and concurrent calls share those cores
            shares = max(1, self.ctx.replicas) * cfg.concurrency
            threads = max(1, (len(os.sched_getaffinity(0)) - 1) // shares)
        self.backend = make_backend(spec, threads=threads, spin=cfg.spin, batch=cfg.batch, concurrency=cfg.concurrency)
        self._on_gpu = spec.device.startswith("cuda") and self.backend.name == "torch"
        self.max_batch = cfg.batch
        self.max_wait_ms = cfg.max_wait_ms
        self.lanes = cfg.concurrency

    def process(self, packet: Packet) -> list[Packet]:
        return self.process_batch([packet])

    def process_batch(self, packets: list[Packet]) -> list[Packet]:
        for p in packets:
            if p.image is None:
                raise ValueError(f"yolox: frame {p.meta.frame} has no letterboxed image (is a letterbox stage upstream?)")
        first = packets[0].image
        batch: np.ndarray | torch.Tensor
        if isinstance(first, np.ndarray):
            batch = np.stack([p.image for p in packets]) if len(packets) > 1 else first[None]
        else:  # CUDA arrays from the GPU letterbox stay on the device
            import torch

            batch = torch.stack([torch.as_tensor(p.image) for p in packets])
        # on CUDA the predictions stay on the device for the GPU decode + NMS kernels (the transport
        # copies them to the host only when they cross a process edge)
        preds = self.backend(batch, to_host=not self._on_gpu)
        for p, pred in zip(packets, preds):
            p.raw = pred
            p.image = None  # not needed downstream: keep the edges light
        return packets
