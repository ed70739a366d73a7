"""Find official YOLOX weights by zoo name: a local folder, the cache, else the official release download."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from streamyolox.model import ZOO, canonical_name
from streamyolox.weights.files import WeightsError, partial_path

# The release the official YOLOX README links its COCO checkpoints to.
RELEASE_BASE_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
RELEASE_FILES: dict[str, str] = {
    "yolox-nano": "yolox_nano.pth",
    "yolox-tiny": "yolox_tiny.pth",
    "yolox-s": "yolox_s.pth",
    "yolox-m": "yolox_m.pth",
    "yolox-l": "yolox_l.pth",
    "yolox-x": "yolox_x.pth",
    "yolox-darknet53": "yolox_darknet.pth",
}
WEIGHTS_DIR_ENV = "STREAMYOLOX_WEIGHTS_DIR"
CACHE_ENV = "STREAMYOLOX_CACHE"
# A mirror of the release files (same file names); also how tests point downloads at an unreachable address.
URL_ENV = "STREAMYOLOX_WEIGHTS_URL"
_CHUNK = 1 << 16


def cache_dir() -> Path:
    """`$STREAMYOLOX_CACHE` or `~/.cache/streamyolox/weights`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "streamyolox" / "weights"


def search_dirs() -> list[Path]:
    """Folders searched for weights, in order: `$STREAMYOLOX_WEIGHTS_DIR` (os.pathsep-separated), the cache."""
    env = os.environ.get(WEIGHTS_DIR_ENV, "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p] + [cache_dir()]


def candidate_filenames(name: str) -> list[str]:
    """File names that hold zoo model `name`: `yolox_nano.pth`, `yolox-nano.pth`, ... then `.onnx`."""
    key = canonical_name(name)
    stems = dict.fromkeys([Path(RELEASE_FILES[key]).stem, key.replace("-", "_"), key])
    return [f"{s}{ext}" for ext in (".pth", ".onnx") for s in stems]


def find_local(name: str) -> Path | None:
    """The first existing weights file for zoo `name` in `search_dirs()`, or None."""
    for folder in search_dirs():
        for filename in candidate_filenames(name):
            if (folder / filename).is_file():
                return folder / filename
    return None


def release_url(name: str) -> str:
    base = os.environ.get(URL_ENV, RELEASE_BASE_URL).rstrip("/")
    return f"{base}/{RELEASE_FILES[canonical_name(name)]}"


def _fetch(url: str, dest: Path, label: str, show_progress: bool, timeout: float) -> None:
    # imported here: every `streamyolox run` resolves weights through this module, and these imports took
    # ~0.05 s of the runner's start-up (AMD EPYC) that only a download needs
    import urllib.request

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        console = Console(stderr=True)  # stdout stays clean for the path the CLI prints
        with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
            task = progress.add_task(f"downloading {label}", total=total)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                progress.advance(task, len(chunk))


def download_weights(
    name: str,
    dest_dir: str | Path | None = None,
    show_progress: bool = True,
    timeout: float = 30.0,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download zoo model `name`'s official checkpoint into `dest_dir` (default: the cache); returns its path.

    The file is written to a temporary name, checked with `verify(path)` (default: it loads strictly into
    `build_model(name)`), then renamed, so an interrupted or corrupt download never leaves a usable-looking
    file. Raises WeightsError with one line saying what to do when offline or the download fails.
    """
    key = canonical_name(name)
    if key not in RELEASE_FILES:
        raise WeightsError(f"no official weights for {name!r}: expected one of {', '.join(RELEASE_FILES)}")
    folder = Path(dest_dir).expanduser() if dest_dir else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    filename, url = RELEASE_FILES[key], release_url(key)
    tmp = partial_path(folder / filename)
    try:
        try:
            _fetch(url, tmp, filename, show_progress, timeout)
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are OSErrors
            reason = getattr(exc, "reason", None) or exc
            raise WeightsError(
                f"could not download {key} from {url} ({reason}); put {filename} in ${WEIGHTS_DIR_ENV} "
                f"or pass --weights PATH"
            ) from exc
        (verify or (lambda p: _verify_loads(key, p)))(tmp)
        target = folder / filename
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _verify_loads(name: str, path: Path) -> None:
    from streamyolox.model import build_model
    from streamyolox.weights.checkpoint import load_checkpoint

    try:
        load_checkpoint(build_model(name), path)
    except WeightsError as exc:
        raise WeightsError(f"downloaded file for {name} does not load, discarded: {exc}") from exc


def looks_like_path(value: str | Path) -> bool:
    text = str(value)
    return (
        isinstance(value, Path)
        or os.sep in text
        or "/" in text
        or Path(text).suffix in (".pth", ".pt", ".onnx", ".tar")
    )


def resolve_weights(name_or_path: str | Path, download: bool = True, show_progress: bool = True) -> Path:
    """An existing file as is (a bare file name is also looked for in `search_dirs()`); else a zoo name
    searched in `search_dirs()`, else downloaded (if `download`).

    Raises WeightsError (one line) for a missing path, an unknown name, or a failed download.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if looks_like_path(name_or_path):
        if path.name == str(name_or_path):  # a bare file name: also look in the weights folders
            found = next((d / path.name for d in search_dirs() if (d / path.name).is_file()), None)
            if found is not None:
                return found
        raise WeightsError(f"weights file not found: {name_or_path}")
    try:
        key = canonical_name(str(name_or_path))
    except ValueError as exc:
        raise WeightsError(
            f"weights {name_or_path!r} is neither a file nor a zoo model ({', '.join(ZOO)})"
        ) from exc
    if key not in RELEASE_FILES:
        raise WeightsError(f"no official weights for {key!r}: pass --weights PATH")
    local = find_local(key)
    if local is not None:
        return local
    if not download:
        raise WeightsError(
            f"no local weights for {key}: put {RELEASE_FILES[key]} in ${WEIGHTS_DIR_ENV} or pass --weights PATH"
        )
    return download_weights(key, show_progress=show_progress)
