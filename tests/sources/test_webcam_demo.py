"""The webcam demo on a machine without that camera: one line, non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_webcam_demo_without_camera_says_so_in_one_line() -> None:
    camera = next(f"webcam:{i}" for i in range(60, 64) if not os.path.exists(f"/dev/video{i}"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "webcam_demo.py"), "--camera", camera],
                            capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no camera" in lines[0] and camera in lines[0], result.stderr
    assert result.stdout == ""
