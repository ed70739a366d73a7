"""Where every frame went: per stream, how many the sources gave and how many were dropped, and where.

Two ways to lose a frame, both counted per stream:
- `drop_oldest` on an edge (a live source outran a stage): counted by the consumer's inbox as it drops.
- a stage process that died and was restarted: its producers took back the credits the dead incarnation
  held and reported the frames in those slots (`SocketOutlet.take_lost`). Some of those it had finished
  and passed on just before it died (the credit was still on its way back): the receivers downstream name
  the frames they got from each producer incarnation (`Receiver.evidence_report`), and a frame that
  reached every consumer is not lost; one that reached some of them is lost on the way to the others.

The frames of a stream are what its source's consumers received (or, where more, what the source counted:
a killed incarnation's own count is only as fresh as its last report).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from streamyolox.graph.metrics import MetricsBoard
from streamyolox.graph.replicas import base_id
from streamyolox.graph.transport import EdgeInfo


@dataclass(frozen=True)
class Drop:
    """`frames` of `stream` lost at `stage` (base id) for `reason`; `into`: only on the way to that stage."""

    stream: str
    stage: str
    reason: str  # "drop_oldest" | "restart"
    frames: int
    into: str | None = None


def _restart_drops(board: MetricsBoard, edges: dict[int, EdgeInfo], proc_of: dict[str, str]) -> Counter:
    held: dict[tuple[str, int], dict[tuple[str, int], str]] = {}  # (process, inc) -> frame -> stage holding it
    for st in board.stats.values():
        for edge, inc, keys in st.lost:
            dst = edges[edge].dst
            held.setdefault((proc_of[dst], inc), {}).update((tuple(k), dst) for k in keys)  # type: ignore[misc]
    counts: Counter = Counter()
    for (proc, inc), frames in held.items():
        # the consumers outside the process; the replicas of one get each frame once, so they count as one
        outs: dict[str, list[EdgeInfo]] = {}
        for e in edges.values():
            if proc_of.get(e.src) == proc and proc_of.get(e.dst) != proc:
                outs.setdefault(base_id(e.dst), []).append(e)
        for key, stage in frames.items():
            missing = [dst for dst, group in outs.items()
                       if not any(key in board.evidence.get(e.index, {}).get(inc, ()) for e in group)]
            if not outs or len(missing) == len(outs):
                counts[(key[0], base_id(stage), "restart", None)] += 1
            for dst in missing if len(missing) < len(outs) else ():
                counts[(key[0], base_id(stage), "restart", dst)] += 1
    return counts


def stream_frames(board: MetricsBoard, edges: list[EdgeInfo], sources: set[str]) -> Counter:
    """stream -> frames its sources gave (see the module doc)."""
    total: Counter = Counter()
    for sid in sources & board.stats.keys():
        groups: dict[str, Counter] = {}  # consumer (replicas summed) -> frames received per stream
        for e in edges:
            if e.src == sid and e.dst in board.stats:
                groups.setdefault(base_id(e.dst), Counter()).update(board.stats[e.dst].received.get(e.index, {}))
        given = board.stats[sid].streams_out
        for stream in set(given).union(*groups.values()):
            total[stream] += max([given.get(stream, 0), *(g[stream] for g in groups.values())])
    return total


def account(board: MetricsBoard, edge_list: list[EdgeInfo], proc_of: dict[str, str],
            sources: set[str]) -> dict[str, Any]:
    """{stream: {"frames", "dropped", "drops": [Drop as dict]}} for the summary and --metrics-json."""
    edges = {e.index: e for e in edge_list}
    order = {base_id(sid): i for i, sid in reversed(list(enumerate(board.stats)))}  # pipeline order
    with board.lock:
        counts = _restart_drops(board, edges, proc_of)
        for st in board.stats.values():
            for per_stream in st.dropped_streams.values():
                for stream, n in per_stream.items():
                    counts[(stream, base_id(st.stage), "drop_oldest", None)] += n
        totals = stream_frames(board, edge_list, sources)
    out: dict[str, Any] = {}
    for stream in sorted(set(totals) | {k[0] for k in counts}):
        mine = sorted(((k, n) for k, n in counts.items() if k[0] == stream and n),
                      key=lambda kv: (order.get(kv[0][1], len(order)), kv[0][2], kv[0][3] or ""))
        drops = [Drop(s, stage, reason, n, into) for (s, stage, reason, into), n in mine]
        out[stream] = {"frames": totals.get(stream, 0), "dropped": sum(d.frames for d in drops),
                       "drops": [asdict(d) for d in drops]}
    return out


def add_rates(board: MetricsBoard, streams: dict[str, Any]) -> dict[str, Any]:
    """Each stream of `account`'s result gets its numbers at the sinks over the run (`stream_rows`):
    `sink_frames`, `fps` (average), `age_s` (p50/p95/p99), `state`, `reconnects`."""
    for row in board.stream_rows(final=True, dropped=streams):
        rep = streams.setdefault(row["id"], {"frames": 0, "dropped": 0, "drops": []})
        rep.update(sink_frames=row["frames"], fps=row["fps"], state=row["state"], reconnects=row["reconnects"],
                   age_s={q: row[f"age_{q}_s"] for q in ("p50", "p95", "p99")})
    return streams


def _why(drop: dict[str, Any]) -> str:
    if drop["reason"] == "drop_oldest":
        return f"policy drop_oldest on {drop['stage']!r}"
    where = f" before {drop['into']!r}" if drop["into"] else ""
    return f"lost in the restart of {drop['stage']!r}{where}"


def summary_lines(streams: dict[str, Any]) -> list[tuple[bool, str]]:
    """(whether frames were dropped, `stream 'cam': dropped 226 of 300 frames (policy drop_oldest on 'pre')`),
    one line per stream."""
    lines = []
    for stream, rep in streams.items():
        if not rep["dropped"]:
            lines.append((False, f"stream {stream!r}: {rep['frames']} frames, none dropped"))
            continue
        parts = [_why(d) for d in rep["drops"]]
        why = parts[0] if len(parts) == 1 else "; ".join(f"{p}: {d['frames']}" for p, d in zip(parts, rep["drops"]))
        lines.append((True, f"stream {stream!r}: dropped {rep['dropped']} of {rep['frames']} frames ({why})"))
    return lines


def add_to_rows(rows: list[dict[str, Any]], streams: dict[str, Any]) -> None:
    """Each stage row's `lost` (frames lost when it restarted; the board's count so far is replaced by the
    reconciled one) stays part of its `dropped`."""
    lost: Counter = Counter()
    for rep in streams.values():
        for d in rep["drops"]:
            if d["reason"] == "restart":
                lost[d["stage"]] += d["frames"]
    for row in rows:
        row["dropped"] += lost[row["stage"]] - row.get("lost", 0)
        row["lost"] = lost[row["stage"]]
