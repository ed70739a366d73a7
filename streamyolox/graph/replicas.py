"""Data-parallel stage replicas: distribute packets round robin, merge the replicas' outputs in order.

A stage with `replicas: N` runs as N processes (`det#0` .. `det#N-1`), each with its own stage instance.

- `RoundRobinOutlet` (the producer upstream of the replicas) numbers every packet with a tag
  `(epoch, seq, last)` and sends packet `seq` to replica `seq % N` only; end of stream goes to all. `epoch`
  is the producer's incarnation, so a restarted producer starts a new sequence that sorts after the old one.
- A replica passes the tag of each input on with its outputs (`last` on the final output made from an
  input) or, when an input gave no output (a filtering stage), sends a marker with the tag instead.
- `Reorder` (in each consumer's inbox, one per replicated input) releases the replicas' outputs in
  sequence order. Packet `seq` can only come from replica `seq % N` and each replica's outputs arrive in
  order, so a later tag at that replica's head, or its end of stream, means `seq` was dropped (`drop_oldest`)
  or lost with a replica that died: the buffer skips it instead of waiting. The buffer is bounded by the
  edges' credits (a replica cannot send more than `slots` packets ahead).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.graph.transport import Lost, Outlet, SocketOutlet, Tag
from streamyolox.stages.packet import Packet

T = TypeVar("T")


def base_id(stage_id: str) -> str:
    """`det#1` -> `det` (replica ids are the stage id, `#` and the replica index)."""
    return stage_id.partition("#")[0]


def output_tags(tags: list[Tag | None], n_out: int) -> tuple[list[Tag | None], list[Tag]]:
    """Tags for the `n_out` outputs of a batch whose inputs carried `tags`, and the markers to send first.

    One output per input (the built-in stages) keeps each input's tag. Otherwise every output carries the
    last input's sequence (`last` set on the final one) and the earlier inputs are marked as empty, which
    keeps the order at batch granularity. Untagged inputs give untagged outputs.
    """
    if n_out == len(tags):
        return list(tags), []
    real = [t for t in tags if t is not None]
    if not real:
        return [None] * n_out, []
    *earlier, final = real
    markers = [(e, s, True) for e, s, _ in earlier]
    if n_out == 0:
        return [], [*markers, (final[0], final[1], True)]
    outs: list[Tag | None] = [(final[0], final[1], i == n_out - 1) for i in range(n_out)]
    return outs, markers


class RoundRobinOutlet(Outlet):
    """The producer end of the edges into the N replicas of one stage: each packet goes to one replica."""

    def __init__(self, outlets: list[SocketOutlet], epoch: int) -> None:
        self.outlets = sorted(outlets, key=lambda o: o.edge.split[0] if o.edge.split else 0)
        self.edge = self.outlets[0].edge
        self.epoch = epoch
        self.seq = 0

    def send(self, packet: Packet, abort: Callable[[], bool],
             release: Callable[[], None] | None = None, tag: Tag | None = None) -> None:
        if self.skips(packet, abort):
            return
        target = self.outlets[self.seq % len(self.outlets)]
        target.send(packet, abort, tag=(self.epoch, self.seq, True))  # blocks on this replica's credits
        self.seq += 1

    def skips(self, packet: Packet, abort: Callable[[], bool]) -> bool:
        """A resumed source: the replicas got frames round robin, so everything up to the newest frame any
        of them received was delivered (or its loss counted)."""
        if not any(out.resume for out in self.outlets):
            return False
        for out in self.outlets:
            out.skips(packet, abort)  # waits for the probe's answer
        lasts = [out.resume_after[packet.meta.stream] for out in self.outlets
                 if packet.meta.stream in out.resume_after]
        return bool(lasts) and packet.meta.frame <= max(lasts) and not packet.meta.extra.get("live")

    def send_eos(self) -> None:
        for out in self.outlets:
            out.send_eos()

    def finish(self, abort: Callable[[], bool]) -> None:
        for out in self.outlets:
            out.finish(abort)

    def take_lost(self) -> list[Lost]:
        return [x for out in self.outlets for x in out.take_lost()]

    def close(self, linger_ms: int = 0) -> None:
        for out in self.outlets:
            out.close(linger_ms)


class Reorder(Generic[T]):
    """Merges the outputs of `n` replicas back into the distributor's order (not thread-safe: the inbox
    holds its lock). Entries are `(tag, item)`; `item` None is a marker (the input gave no output)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.queues: list[deque[tuple[Tag, T | None]]] = [deque() for _ in range(n)]
        self.ended = [False] * n
        self.next = (0, 0)  # (epoch, seq) to release next

    def push(self, replica: int, tag: Tag, item: T | None) -> list[T]:
        """Queue one output (or marker) of `replica`; returns the items that are now in order."""
        self.queues[replica].append((tag, item))
        return self.pop_ready()

    def end(self, replica: int) -> list[T]:
        """`replica` sent end of stream: nothing more comes from it."""
        self.ended[replica] = True
        return self.pop_ready()

    def remove_oldest(self, replica: int, droppable: Callable[[T], bool] = lambda _: True) -> T | None:
        """Take out the oldest queued item of `replica` that is `droppable` (a `drop_oldest` eviction); None
        if it has none."""
        q = self.queues[replica]
        for i, (_, item) in enumerate(q):
            if item is not None and droppable(item):
                del q[i]
                return item
        return None

    def held(self, replica: int) -> int:
        """Items (not markers) of `replica` waiting for an earlier sequence."""
        return sum(item is not None for _, item in self.queues[replica])

    def pop_ready(self) -> list[T]:
        out: list[T] = []
        while True:
            epoch, seq = self.next
            q = self.queues[seq % self.n]
            if q and q[0][0][:2] <= (epoch, seq):  # the expected one (or a stray older one: never lost)
                (e, s, last), item = q.popleft()
                if item is not None:
                    out.append(item)
                if (e, s) == (epoch, seq) and last:
                    self.next = (epoch, seq + 1)
                continue
            if q and q[0][0][0] == epoch:  # a later seq of this epoch at its head: `seq` was dropped
                self.next = (epoch, self._next_possible(epoch, seq))
                continue
            if not q and not self.ended[seq % self.n]:
                return out  # that replica may still send it
            newer = self._epoch_done(epoch)
            if newer is None:  # every replica ended and every queue is empty
                return out
            self.next = (newer, 0) if newer > epoch else (epoch, seq + 1)

    def _next_possible(self, epoch: int, seq: int) -> int:
        """The smallest seq after `seq` that some replica may still deliver in `epoch` (a gap of any size,
        e.g. a consumer restarted mid-stream, is skipped in one step)."""
        best = None
        for i, (q, ended) in enumerate(zip(self.queues, self.ended)):
            if q and q[0][0][0] == epoch:
                cand = q[0][0][1]
            elif not q and not ended:
                cand = seq + (i - seq) % self.n  # the first seq from `seq` on that replica i owns
            else:
                continue
            best = cand if best is None else min(best, cand)
        return max(seq + 1, best if best is not None else seq + 1)

    def _epoch_done(self, epoch: int) -> int | None:
        """The next epoch once no replica can send anything more of `epoch`; `epoch` while one still can;
        None when all replicas ended with nothing queued."""
        heads = [q[0][0][0] for q in self.queues if q]
        if any(not q and not ended for q, ended in zip(self.queues, self.ended)) or \
                any(h == epoch for h in heads):
            return epoch
        return min(heads) if heads else None


def _copies(stage: StageSpec) -> int:
    """Processes that run `stage`: its replicas, or a multi-stream source's `processes`."""
    return stage.replicas if stage.replicas > 1 else int(getattr(stage.options, "processes", 1) or 1)


def expand(spec: PipelineSpec) -> PipelineSpec:
    """The process-level graph: each stage with `replicas: N > 1` becomes N stages `id#0` .. `id#N-1` (same
    spec otherwise), and every consumer takes all of them as inputs (in place of `id`).

    A source with `processes: N` (a `decode` with `streams`) becomes N sources `id#i` too, each reading its
    share of the streams (`options.for_process(i, N)`). They are independent producers, not replicas of one
    sequence: their stream ids are disjoint, so consumers merge them like any two sources (no reorder)."""
    if all(_copies(s) == 1 for s in spec.stages.values()):
        return spec
    ids = {sid: [f"{sid}#{i}" for i in range(n)] if (n := _copies(s)) > 1 else [sid]
           for sid, s in spec.stages.items()}
    stages = {}
    for sid, s in spec.stages.items():
        inputs = tuple(x for src in s.inputs for x in ids[src])
        for i, rid in enumerate(ids[sid]):
            options = s.options
            if s.replicas == 1 and len(ids[sid]) > 1:
                options = options.for_process(i, len(ids[sid]))  # type: ignore[attr-defined]
            stages[rid] = dataclasses.replace(s, id=rid, inputs=inputs, options=options)
    return dataclasses.replace(spec, stages=stages)


def edge_roles(spec: PipelineSpec, src: str, dst: str) -> dict[str, tuple[int, int] | None]:
    """`split` / `merge` of the edge `src -> dst` of an expanded spec (see `EdgeInfo`)."""
    def role(sid: str) -> tuple[int, int] | None:
        stage = spec.stages[sid]
        if "#" not in sid or stage.replicas == 1:  # `processes: N` sources are independent producers
            return None
        return int(sid.partition("#")[2]), stage.replicas

    return {"split": role(dst), "merge": role(src)}
