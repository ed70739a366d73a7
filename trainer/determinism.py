"""Seeding and deterministic kernels for a training run (`TrainConfig.seed`, `TrainConfig.deterministic`).

Hand-written rather than taken from a framework (Lightning's `seed_everything`): four calls, and the trainer
needs to restore the global switches after the run, since tests and notebooks train in a process that goes on.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

# cuBLAS needs a fixed workspace for deterministic GEMMs; it reads this before its first use.
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class DeterminismState:
    """The global switches `enable_determinism` changed, to put back after the run."""

    algorithms: bool
    warn_only: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool


def enable_determinism() -> DeterminismState:
    """Deterministic torch algorithms (an error where an op has none) and cuDNN without autotuning."""
    state = DeterminismState(torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled(),
                             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return state


def restore_determinism(state: DeterminismState) -> None:
    torch.use_deterministic_algorithms(state.algorithms, warn_only=state.warn_only)
    torch.backends.cudnn.deterministic = state.cudnn_deterministic
    torch.backends.cudnn.benchmark = state.cudnn_benchmark
