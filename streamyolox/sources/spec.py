"""What a source URL names, and how FFmpeg must open it.

`parse_source(url)` classifies a `decode` stage's `url` option into a `SourceSpec`:

========================================  ========  =====================================================
url                                       kind      opened as
========================================  ========  =====================================================
``clip.mp4``, ``/abs/path.mkv``           file      FFmpeg demuxer picked by probing
``rtsp://``, ``rtsps://``                 rtsp      ``rtsp_transport`` tcp/udp, socket ``timeout`` (us)
``http(s)://`` (incl. HLS ``.m3u8``)      http      ``timeout``/``rw_timeout`` (us)
``rtmp://``, ``srt://``, ``udp://`` ...   stream    ``rw_timeout`` (us)
``webcam:N``, ``/dev/videoN``             webcam    V4L2 (Linux) / AVFoundation (macOS) device
a folder, or a glob (``frames/*.jpg``)    images    one frame per image, decoded by OpenCV
========================================  ========  =====================================================

Network kinds and webcams are *live*: they may stall or drop and are reconnected; files and images are not.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
NETWORK_SCHEMES = ("rtmp", "rtmps", "srt", "udp", "tcp", "rtp")
_WEBCAM = re.compile(r"^webcam:(\d+)$")
_V4L2 = re.compile(r"^/dev/video\d+$")


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message is one line naming the URL."""


@dataclass(frozen=True)
class SourceSpec:
    """A classified source.

    Attributes:
        url: the URL as configured (kept for messages).
        kind: ``file``, ``rtsp``, ``http``, ``stream``, ``webcam`` or ``images``.
        target: what is handed to FFmpeg (path, URL, device) - unused for ``images``.
        av_format: FFmpeg input format to force (``v4l2`` for webcams), None to probe.
        images: the image paths, sorted, for ``images``.
    """

    url: str
    kind: str
    target: str
    av_format: str | None = None
    images: tuple[str, ...] = field(default=())

    @property
    def live(self) -> bool:
        """Live sources run in real time and are reconnected when they stop delivering."""
        return self.kind in ("rtsp", "http", "stream", "webcam")


def parse_source(url: str) -> SourceSpec:
    """Classify `url`; raises `SourceError` (one line) for a missing path or an unsupported scheme."""
    url = url.strip()
    if not url:
        raise SourceError("decode: url is empty (expected a file, rtsp://, http(s)://, webcam:N or an image folder)")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return SourceSpec(url, "rtsp", url)
    if scheme in ("http", "https"):
        return SourceSpec(url, "http", url)
    if scheme in NETWORK_SCHEMES:
        return SourceSpec(url, "stream", url)
    if scheme == "file":
        return _parse_path(url, url[len("file://"):])
    if scheme:
        raise SourceError(f"unsupported source url {url!r}: scheme {scheme!r} is not one of "
                          f"rtsp, rtsps, http, https, file, {', '.join(NETWORK_SCHEMES)}")
    match = _WEBCAM.match(url)
    if match:
        return _webcam(url, int(match.group(1)))
    if _V4L2.match(url):
        return _webcam(url, int(url[len("/dev/video"):]))
    return _parse_path(url, url)


def _webcam(url: str, index: int) -> SourceSpec:
    if sys.platform == "darwin":
        return SourceSpec(url, "webcam", str(index), "avfoundation")
    if sys.platform.startswith("win"):
        raise SourceError(f"{url}: webcams on Windows need `dshow` with a device name; use url 'video=NAME'")
    return SourceSpec(url, "webcam", f"/dev/video{index}", "v4l2")


def _parse_path(url: str, path: str) -> SourceSpec:
    path = os.path.expanduser(path)
    if glob.has_magic(path):
        images = tuple(sorted(p for p in glob.glob(path) if os.path.isfile(p)))
        if not images:
            raise SourceError(f"source glob {url!r} matches no files")
        return SourceSpec(url, "images", path, images=images)
    p = Path(path)
    if p.is_dir():
        images = tuple(sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        if not images:
            raise SourceError(f"source folder {url!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return SourceSpec(url, "images", path, images=images)
    if not p.exists():
        raise SourceError(f"source file not found: {url!r}")
    if not os.access(p, os.R_OK):
        raise SourceError(f"source file not readable: {url!r}")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return SourceSpec(url, "images", path, images=(path,))
    return SourceSpec(url, "file", path)
