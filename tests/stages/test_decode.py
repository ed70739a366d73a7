"""`decode` stage on files and image folders, against an independent PyAV decode."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamyolox.sources import CorruptInput, SourceError
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.testing import make_stage, run_stage


def reference_frames(path: Path) -> list[tuple[np.ndarray, float]]:
    """Every frame of `path` decoded by plain PyAV (single-threaded), BGR, with its PTS in seconds."""
    with av.open(str(path)) as container:
        return [(f.to_ndarray(format="bgr24"), float(f.time)) for f in container.decode(video=0)]


def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux `src` with the index (moov) first, so a truncated copy still opens (a cut recording)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def street_reference(street_720p: Path) -> list[tuple[np.ndarray, float]]:
    return reference_frames(street_720p)


def test_file_every_frame_in_order(street_720p: Path, street_reference: list) -> None:
    out = run_stage(DecodeStage, options={"url": str(street_720p), "stream": "cam1", "threads": 2})
    assert len(out) == len(street_reference) == 300
    for i, (packet, (ref, pts)) in enumerate(zip(out, street_reference)):
        assert packet.meta.frame == i and packet.meta.stream == "cam1"
        assert packet.meta.pts == pytest.approx(pts)
        assert (packet.meta.width, packet.meta.height) == (1280, 720)
        assert packet.frame.dtype == np.uint8 and packet.frame.shape == (720, 1280, 3)
        assert np.array_equal(packet.frame, ref), f"frame {i} differs from the reference decode"
    times = [p.meta.time for p in out]
    assert times == sorted(times) and times[0] > 1e9  # wall clock, non-decreasing


def test_stream_id_defaults_to_stage_id(street_720p: Path) -> None:
    stage = make_stage(DecodeStage, {"url": str(street_720p)}, stage_id="front_door")
    stage.open()
    first = next(iter(stage.generate()))
    stage.close()
    assert first.meta.stream == "front_door"


def test_stride_and_max_fps(street_720p: Path, street_reference: list) -> None:
    strided = run_stage(DecodeStage, options={"url": str(street_720p), "stride": 3})
    assert [p.meta.frame for p in strided] == list(range(0, 300, 3))
    assert np.array_equal(strided[5].frame, street_reference[15][0])
    capped = run_stage(DecodeStage, options={"url": str(street_720p), "max_fps": 10})
    assert [p.meta.frame for p in capped] == list(range(0, 300, 3))  # 30 fps file -> every 3rd frame
    pts = np.array([p.meta.pts for p in capped])
    assert np.allclose(np.diff(pts), 0.1, atol=1e-3)


def test_loop_continues_index_and_pts(street_720p: Path) -> None:
    stage = make_stage(DecodeStage, {"url": str(street_720p), "loop": True})
    stage.open()
    gen = stage.generate()
    metas, firsts = [], []  # not every frame: 650 of 720p are 1.8 GB
    for i in range(650):
        p = next(gen)
        metas.append(p.meta)
        if i in (0, 300):
            firsts.append(p.frame)
    stage.close()
    assert [m.frame for m in metas] == list(range(650))
    pts = np.array([m.pts for m in metas])
    assert np.allclose(np.diff(pts), 1 / 30, atol=1e-3), "PTS must keep increasing across loops"
    assert stage.ctx.counters["loops"] == 2
    assert np.array_equal(firsts[1], firsts[0])


def test_missing_file_and_bad_url_fail_at_open(tmp_path: Path) -> None:
    for url, needle in [(str(tmp_path / "nope.mp4"), "not found"), ("ftp://host/x.mp4", "unsupported"),
                        (str(tmp_path / "*.jpg"), "matches no files")]:
        stage = make_stage(DecodeStage, {"url": url})
        with pytest.raises(SourceError, match=needle) as info:
            stage.open()
        assert "\n" not in str(info.value) and url in str(info.value)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    with pytest.raises(SourceError, match="cannot open source") as info:
        make_stage(DecodeStage, {"url": str(not_video)}).open()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("option", "value"), [("transport", "sctp"), ("stride", 0), ("on_corrupt", "ignore"),
                                               ("max_retries", -1), ("stall_timeout_s", 0)])
def test_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^(decode\.)?{option}: expected"):
        DecodeStage.Config(url="x.mp4", **{option: value})


def test_truncated_file_reports_the_frame(street_720p: Path, tmp_path: Path, street_reference: list) -> None:
    full = faststart_copy(street_720p, tmp_path / "full.mp4")
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with av.open(str(cut)) as c:  # independent count of the packets that survived whole
        whole = sum(1 for p in c.demux(video=0) if p.size and not p.is_corrupt)
    stage = make_stage(DecodeStage, {"url": str(cut)})
    stage.open()
    out = list(stage.generate())
    stage.close()
    assert 0 < len(out) == whole < 300
    assert all(np.array_equal(p.frame, street_reference[p.meta.frame][0]) for p in out[-3:])
    assert stage.ctx.counters["corrupt_frames"] == 1
    with pytest.raises(CorruptInput, match=f"corrupt data at frame {whole}") as info:
        run_stage(DecodeStage, options={"url": str(cut), "on_corrupt": "stop"})
    assert info.value.frame == whole


def test_image_folder_skips_unreadable(tmp_path: Path, dog_jpg: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    dog = cv2.imread(str(dog_jpg))
    cv2.imwrite(str(folder / "a.png"), dog)
    shutil.copy(dog_jpg, folder / "b.jpg")
    (folder / "c.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(folder / "d.png"), cv2.cvtColor(dog, cv2.COLOR_BGR2GRAY))
    (folder / "notes.txt").write_text("ignored")
    stage = make_stage(DecodeStage, {"url": str(folder)})
    stage.open()
    out = list(stage.generate())
    stage.close()
    assert [p.meta.frame for p in out] == [0, 1, 3]
    assert [Path(p.meta.extra["path"]).name for p in out] == ["a.png", "b.jpg", "d.png"]
    assert np.array_equal(out[0].frame, dog)
    assert np.array_equal(out[1].frame, cv2.imread(str(dog_jpg)))
    assert out[2].frame.shape == dog.shape  # grayscale comes out as 3-channel BGR
    assert stage.ctx.counters["corrupt_frames"] == 1
    globbed = run_stage(DecodeStage, options={"url": str(folder / "*.png")})
    assert len(globbed) == 2
    with pytest.raises(CorruptInput, match=r"c\.jpg"):
        run_stage(DecodeStage, options={"url": str(folder), "on_corrupt": "stop"})


def test_missing_webcam_says_so(tmp_path: Path) -> None:
    stage = make_stage(DecodeStage, {"url": "webcam:63"})
    with pytest.raises(SourceError, match="no camera") as info:
        stage.open()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("many", [False, True])
def test_yuv420p_planes_through_the_letterbox(street_720p: Path, dog_jpg: Path, many: bool) -> None:
    """`pixel_format: yuv420p`: the packets carry the decoder's planes and no BGR frame (one url, and many
    streams, where an image folder among them still comes as BGR); a letterbox that drops the frame turns
    either into the model input, one that keeps it refuses planes."""
    from streamyolox.ops import letterbox_yuv420
    from streamyolox.stages.letterbox import LetterboxStage

    streams = {"street": str(street_720p), "dog": str(dog_jpg)}
    options = {"streams": streams} if many else {"url": str(street_720p)}
    out = run_stage(DecodeStage, options={**options, "pixel_format": "yuv420p", "stride": 30})
    street = [p for p in out if p.meta.stream != "dog"]
    assert [p.meta.frame for p in street] == list(range(0, 300, 30))
    assert all(p.frame is None and p.yuv is not None and (p.meta.width, p.meta.height) == (1280, 720) for p in street)
    dog = [p for p in out if p.meta.stream == "dog"]
    assert len(dog) == (1 if many else 0) and all(p.yuv is None and p.frame is not None for p in dog)
    expected = [letterbox_yuv420(p.yuv, (416, 416), dtype=np.uint8)[0] for p in street]
    made = run_stage(LetterboxStage, out, {"size": 416, "keep_frame": False, "dtype": "uint8"})
    assert all(p.yuv is None and p.frame is None for p in made)
    for p, want in zip([p for p in made if p.meta.stream != "dog"], expected):
        np.testing.assert_array_equal(p.image, want)
    with pytest.raises(ValueError, match="only a CPU letterbox with keep_frame: false"):
        fresh = run_stage(DecodeStage, options={**options, "pixel_format": "yuv420p", "stride": 300})
        run_stage(LetterboxStage, [p for p in fresh if p.yuv is not None], {"size": 416, "keep_frame": True})
