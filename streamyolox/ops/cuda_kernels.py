"""numba.cuda kernels for YOLOX postprocessing: fused decode + score filter + compaction, a rank sort,
torchvision's bitmask NMS (IoU mask per 64-box block) and a one-block reduction, then a gather.

Every float operation follows the numpy reference's order and rounding so results match it bit for bit
on decoded input: products that feed an addition go through ``fmul_rn`` so the compiler cannot fuse them
into an FMA. Importing this module imports ``numba.cuda``: load it lazily (see `streamyolox.ops`). Under
``NUMBA_ENABLE_CUDASIM=1`` the same kernels run on the CPU simulator, which is how CI tests them.
"""

from __future__ import annotations

import math

import numpy as np

if not hasattr(np, "row_stack"):
    # numba-cuda 0.30 registers an overload for np.row_stack, which NumPy 2.5 removed: its lowering module
    # then fails to import at the first kernel compile (seen on the lent H200: numba-cuda 0.30.4, NumPy 2.5.2).
    np.row_stack = np.vstack  # type: ignore[attr-defined]

from numba import config, cuda, float32, uint64

BLOCK = 64  # boxes per mask word: one uint64 bit per box
MAX_COL_BLOCKS = 1024  # the reduction's shared remove-mask: up to 65,536 candidates

# numba.config sets its options with setattr at import: no attribute for mypy to see
if config.ENABLE_CUDASIM:  # type: ignore[attr-defined]  # no libdevice there; numpy float32 rounds the same
    REDUCE_THREADS = 4  # its barriers cost a Python thread switch each: few threads, same striding logic
    # A simulator artefact, not a race in the kernels: each simulated thread is a Python thread, and every
    # call of a device function (`_max`, `_min`) iterates this module's globals (numba's
    # `swapped_cuda_module`). The first numpy warning raised here (0/0 in `iou_mask_kernel` for two
    # zero-area boxes gives NaN, as on the GPU, which rejects it like the reference) makes Python insert
    # `__warningregistry__` into these globals, even under `-W ignore`: a thread iterating them then fails
    # with "dictionary changed size during iteration" (1 launch in ~20 with zero-area boxes). Created up
    # front, the key is never inserted during a launch.
    globals().setdefault("__warningregistry__", {})

    def fmul_rn(a: float, b: float) -> float:
        return a * b

else:
    from numba.cuda.libdevice import fmul_rn

    REDUCE_THREADS = 128


@cuda.jit(device=True, inline=True)
def _max(a, b):  # type: ignore[no-untyped-def]
    # Plain comparisons: numba's builtin max/min on float32 pairs fails to type in some numba.cuda versions.
    return a if a > b else b


@cuda.jit(device=True, inline=True)
def _min(a, b):  # type: ignore[no-untyped-def]
    return a if a < b else b


@cuda.jit
def init_kernel(counter, maxc):  # type: ignore[no-untyped-def]
    """Reset the candidate counter and the running max coordinate."""
    if cuda.grid(1) == 0:
        counter[0] = 0
        maxc[0] = -np.inf


@cuda.jit
def select_kernel(pred, score_threshold, grids, strides, decode, boxes, scores, classes, index, counter, maxc):  # type: ignore[no-untyped-def]
    """One thread per anchor: argmax class, ``score = obj * cls``, keep ``score >= threshold``.

    pred [N, 5+C] float32 (decoded cxcywh, or raw ONNX form when ``decode``); writes kept rows compacted
    (arbitrary order) as xyxy ``boxes [K, 4]``, ``scores``, ``classes``, anchor ``index``; ``counter[0] = K``;
    ``maxc[0]`` = max coordinate of the kept boxes (for the class offset).
    """
    i = cuda.grid(1)
    if i >= pred.shape[0]:
        return
    best = pred[i, 5]
    arg = 0
    for j in range(1, pred.shape[1] - 5):
        v = pred[i, 5 + j]
        if v > best:
            best = v
            arg = j
    score = pred[i, 4] * best
    if not score >= score_threshold:
        return
    cx, cy, w, h = pred[i, 0], pred[i, 1], pred[i, 2], pred[i, 3]
    if decode:
        s = strides[i]
        cx = (cx + grids[i, 0]) * s
        cy = (cy + grids[i, 1]) * s
        w = math.exp(w) * s
        h = math.exp(h) * s
    hw = w / float32(2)
    hh = h / float32(2)
    x1, y1, x2, y2 = cx - hw, cy - hh, cx + hw, cy + hh
    k = cuda.atomic.add(counter, 0, 1)
    boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = x1, y1, x2, y2
    scores[k] = score
    classes[k] = arg
    index[k] = i
    cuda.atomic.max(maxc, 0, _max(_max(x1, y1), _max(x2, y2)))


@cuda.jit
def rank_kernel(k, scores, index, boxes, classes, maxc, agnostic, order, nms_boxes):  # type: ignore[no-untyped-def]
    """Sort by (score descending, anchor index ascending), the reference's stable order: each thread
    counts the candidates ranked before it (O(K^2), K is small after the score filter). Writes
    ``order[rank] = candidate`` and the NMS boxes shifted by ``class * (max + 1)`` (class-aware)."""
    i = cuda.grid(1)
    if i >= k:
        return
    s = scores[i]
    idx = index[i]
    r = 0
    for j in range(k):
        sj = scores[j]
        if sj > s or (sj == s and index[j] < idx):
            r += 1
    order[r] = i
    off = float32(0)
    if not agnostic:
        off = fmul_rn(float32(classes[i]), maxc[0] + float32(1))
    for c in range(4):
        nms_boxes[r, c] = boxes[i, c] + off


@cuda.jit
def iou_mask_kernel(k, boxes, iou_threshold, mask):  # type: ignore[no-untyped-def]
    """torchvision's NMS mask: block (col, row) of 64x64 sorted boxes; bit j of ``mask[i, col]`` says box
    ``col*64 + j`` (ranked after i) has IoU > threshold with box i. Blocks left of the diagonal are skipped
    (never read)."""
    row, col = cuda.blockIdx.y, cuda.blockIdx.x
    if row > col:
        return
    t = cuda.threadIdx.x
    row_size = _min(k - row * BLOCK, BLOCK)
    col_size = _min(k - col * BLOCK, BLOCK)
    tile = cuda.shared.array((BLOCK, 5), float32)
    if t < col_size:
        b = col * BLOCK + t
        for c in range(4):
            tile[t, c] = boxes[b, c]
        tile[t, 4] = fmul_rn(boxes[b, 2] - boxes[b, 0], boxes[b, 3] - boxes[b, 1])
    cuda.syncthreads()
    if t >= row_size:
        return
    i = row * BLOCK + t
    x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
    area = fmul_rn(x2 - x1, y2 - y1)
    zero = float32(0)
    bits = uint64(0)
    for j in range(t + 1 if row == col else 0, col_size):
        w = _max(zero, _min(x2, tile[j, 2]) - _max(x1, tile[j, 0]))
        h = _max(zero, _min(y2, tile[j, 3]) - _max(y1, tile[j, 1]))
        inter = fmul_rn(w, h)
        iou = inter / ((area + tile[j, 4]) - inter)
        if float(iou) > iou_threshold:
            bits |= uint64(1) << uint64(j)
    mask[i, col] = bits


@cuda.jit
def reduce_kernel(k, col_blocks, mask, keep, nkeep):  # type: ignore[no-untyped-def]
    """Greedy pass over the mask in one block: box i is kept unless an earlier kept box removed it; the
    threads OR its mask row into the shared remove-mask. Bit i is only ever set by earlier rows, so all
    threads read the same decision without a second barrier."""
    remv = cuda.shared.array(MAX_COL_BLOCKS, uint64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for j in range(t, col_blocks, nt):
        remv[j] = uint64(0)
    cuda.syncthreads()
    count = 0
    for i in range(k):
        nb = i // BLOCK
        bit = uint64(1) << uint64(i % BLOCK)
        if (remv[nb] & bit) == uint64(0):
            if t == 0:
                keep[count] = i
            count += 1
            for j in range(nb + t, col_blocks, nt):
                remv[j] |= mask[i, j]
        cuda.syncthreads()
    if t == 0:
        nkeep[0] = count


@cuda.jit
def gather_kernel(nkeep, keep, order, boxes, scores, classes, ratio, out_boxes, out_scores, out_classes):  # type: ignore[no-untyped-def]
    """Kept boxes in rank order, divided by the letterbox ratio (original-image pixels)."""
    p = cuda.grid(1)
    if p >= nkeep[0]:
        return
    c = order[keep[p]]
    for q in range(4):
        out_boxes[p, q] = boxes[c, q] / ratio
    out_scores[p] = scores[c]
    out_classes[p] = classes[c]

