"""tests/ray: the Ray executor. `test_*.py` run anywhere; `netns_*.py` need a real 2-node Ray cluster and
run inside a loopback-only network namespace, started by `test_netns.py` through `run_in_netns.sh`."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "graph"):  # ray_stages, fake_stages (as `module:Class` stage kinds)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
