"""Webcam -> yolox-nano -> a live window with boxes, labels and FPS.

    python examples/webcam_demo.py                 # webcam:0
    python examples/webcam_demo.py --camera webcam:1 --device cuda
    python examples/webcam_demo.py --camera clip.mp4     # a clip as a camera: looped at its frame rate

Runs `pipelines/webcam_demo.yaml` through `streamyolox run`. Without a camera it says so in one line and
exits 1; without the `display` sink (or without a screen) it writes JSON lines to stdout instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from streamyolox.cli import main as streamyolox_main
from streamyolox.sources import AvOptions, AvReader, SourceError, parse_source
from streamyolox.stages.registry import StageKindError, load_stage_class

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "webcam_demo.yaml"


def camera_problem(url: str, width: int, height: int, fps: float) -> str | None:
    """Why `url` gives no frames (None when the camera opens)."""
    try:
        spec = parse_source(url)
        if spec.kind != "webcam":
            return None  # a file or stream given as --camera: the pipeline reports its own errors
        reader = AvReader(spec, AvOptions(open_timeout_s=5, width=width, height=height, fps=fps),
                          logging.getLogger("webcam_demo"))
        reader.open()
        reader.close()
    except SourceError as exc:
        return str(exc)
    return None


def window_available() -> bool:
    """The `display` sink is installed and there is a screen to show it on."""
    try:
        load_stage_class("display")
    except StageKindError:
        return False
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", default="webcam:0", help="webcam:N, /dev/videoN, or any decode url")
    parser.add_argument("--size", default="640x480", help="capture size WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--weights", default=None, help="checkpoint (default: the yolox-nano zoo weights)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    problem = camera_problem(args.camera, width, height, args.fps)
    if problem:
        print(f"webcam_demo: {problem}", file=sys.stderr)
        return 1
    sets = [f"stages.source.url={args.camera}", f"stages.source.width={width}",
            f"stages.source.height={height}", f"stages.source.fps={args.fps:g}", f"model.device={args.device}"]
    if args.weights:
        sets.append(f"model.weights={args.weights}")
    if parse_source(args.camera).kind == "file":  # a clip stands in for a camera: endless, at its frame rate
        sets += ["stages.source.realtime=true", "stages.source.loop=true"]
    if not window_available():
        print("webcam_demo: no display sink or screen: writing JSON lines to stdout", file=sys.stderr)
        sets.append("stages.window.kind=json")  # the json sink writes to stdout by default
    return streamyolox_main(["run", str(PIPELINE), *[a for s in sets for a in ("--set", s)]])


if __name__ == "__main__":
    sys.exit(main())
