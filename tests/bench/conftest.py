"""Bench smoke tests run with one intra-op thread (they share the CI cores with other work, and two
threads under contention stall) and leave torch's global thread count as they found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
