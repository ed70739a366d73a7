"""Build `examples/media/demo.mp4`, the embedded default of `make demo`.

A 4 s, 640x360, 30 fps H.264 pan over a collage of public-domain / CC0 images that scikit-image ships
(astronaut: public domain, NASA; chelsea the cat and coffee: CC0). Run: `pip install scikit-image && python
scripts/make_demo_media.py` (the clip is committed; this only remakes it).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 30, 4


def collage() -> np.ndarray:
    """Three photos side by side on a grey canvas, BGR uint8 (height 512)."""
    tiles = []
    for image in (data.astronaut(), data.chelsea(), data.coffee()):
        h, w = image.shape[:2]
        scale = 512 / h
        tiles.append(cv2.resize(image[:, :, ::-1], (round(w * scale), 512), interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


def frames(canvas: np.ndarray, count: int) -> list[np.ndarray]:
    """A slow pan and zoom left to right: crops of the canvas resized to the output size."""
    out = []
    ch, cw = canvas.shape[:2]
    for i in range(count):
        t = i / max(count - 1, 1)
        crop_h = int(ch * (1.0 - 0.25 * np.sin(np.pi * t)))
        crop_w = int(crop_h * WIDTH / HEIGHT)
        x = int((cw - crop_w) * t)
        y = (ch - crop_h) // 2
        crop = canvas[y : y + crop_h, x : x + crop_w]
        out.append(cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA))
    return out


def write_mp4(path: Path, images: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "26", "preset": "slow"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("examples/media/demo.mp4"))
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(args.output, frames(collage(), FPS * SECONDS))
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
