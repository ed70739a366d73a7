"""A real RTSP server for tests: GStreamer's GstRtspServer serving an H.264 MP4 at real-time pace.

Run by the SYSTEM python (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0; the project venv has no gi):

    /usr/bin/python3 tests/sources/rtsp_server.py --port 8554 --path /stream --file clip.mp4

Each client gets its own pipeline (the factory is not shared), so every connection starts the file from
its first frame. The server prints ``READY rtsp://...`` once it listens and exits when its parent dies,
so a killed test run leaves no orphan.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def build_server(port: int, path: str, media: str, mount_after_s: float = 0.0) -> GstRtspServer.RTSPServer:
    """An RTSP server on 127.0.0.1:`port` serving `media` (H.264 in MP4) at `path`; with `mount_after_s`
    the path answers 404 until then (a media server whose publisher has not connected yet)."""
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{media}" ! qtdemux ! h264parse '
                       "! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(False)

    def mount() -> bool:
        server.get_mount_points().add_factory(path, factory)
        return False  # a one-shot GLib timeout

    if mount_after_s > 0:
        GLib.timeout_add(int(mount_after_s * 1000), mount)
    else:
        mount()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--file", required=True)
    parser.add_argument("--mount-after", type=float, default=0.0, help="serve the path only after this many s")
    args = parser.parse_args()
    if not os.path.isfile(args.file):
        print(f"rtsp_server: no such file {args.file}", file=sys.stderr)
        return 2
    Gst.init(None)
    loop = GLib.MainLoop()
    server = build_server(args.port, args.path, os.path.abspath(args.file), args.mount_after)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    parent = os.getppid()

    def watch_parent() -> bool:
        if os.getppid() != parent:  # re-parented: whoever started us is gone
            loop.quit()
            return False
        return True

    GLib.timeout_add(500, watch_parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
