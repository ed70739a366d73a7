"""What a benchmark ran on: CPU model, cores, memory, GPU, library versions and the commit measured."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

_PACKAGES = ("streamyolox", "torch", "numpy", "onnxruntime", "openvino", "opencv-python-headless", "av", "pyzmq", "numba")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_id() -> str:
    """What tells apart CPUs that share a marketing name: vendor, family, model, stepping and a digest of the
    feature flags, from /proc/cpuinfo's first processor (Linux), else `platform`'s machine and processor.

    Three machines here, all named "AMD EPYC", ran 1-thread nano inference in 6.9, 14.9 and 21.5 ms (family 25
    model 17 and family 25 model 1 among them): a backend choice measured on one is no answer for another.
    """
    cpuinfo = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                break  # the first processor's block is enough: the others repeat it
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    if not fields:
        return f"{platform.machine()} {platform.processor()}".strip()
    flags = hashlib.sha256(" ".join(sorted(fields.get("flags", "").split())).encode()).hexdigest()[:12]
    return (f"{fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
            f"stepping {fields.get('stepping', '?')} flags {flags}")


def cpu_family_text(machine: dict[str, Any]) -> str:
    """`family 25 model 1 stepping 1, ` from a document's `machine` (vendor and flags digest stay in the JSON),
    or "" for documents written before `cpu_id` was recorded: the lead-in of a table's machine line."""
    ident = str(machine.get("cpu_id") or "")
    start = ident.find("family ")
    return f"{ident[start:].split(' flags ')[0]}, " if start >= 0 else ""


def gpu_name() -> str | None:
    """Name of CUDA device 0, or None when torch sees no GPU (or torch is absent)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def versions() -> dict[str, str]:
    """Installed versions of the packages whose speed the benchmarks depend on ("-" when absent)."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    if out["streamyolox"] == "-":  # running from a checkout that is not pip-installed
        import streamyolox

        out["streamyolox"] = getattr(streamyolox, "__version__", "-")
    return out


def git_commit(repo: Path | None = None) -> str | None:
    """Short commit hash of the checkout (with `+dirty` when streamyolox/ has local changes), or None."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "streamyolox"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on, as a JSON-ready dict (recorded in every `--json` output)."""
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_usable": len(affinity),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu_name(),
        # other work on the machine skews every number: the 1/5/15-minute load when the document was written
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "versions": versions(),
        "commit": git_commit(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
