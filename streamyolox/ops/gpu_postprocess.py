"""YOLOX postprocessing on the GPU (numba.cuda), with results identical to `postprocess_ref`.

The prediction stays on the device: a torch CUDA tensor, a CuPy array or anything exposing
``__cuda_array_interface__`` is read in place (host numpy arrays are copied over). Only two scalars and the
kept detections come back to the host. `PostprocessGPU` keeps its device buffers between frames; the
functions `postprocess_gpu` / `postprocess_batch_gpu` are one-shot conveniences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import cuda

from streamyolox.detections import Detections
from streamyolox.ops import cuda_kernels as K
from streamyolox.ops.decode import STRIDES, grid_strides


def as_device_pred(pred: Any, ndim: int = 2) -> Any:
    """A numba device view of ``pred`` (float32, ``ndim`` dims); copies only host arrays and non-float32
    torch tensors (fp16 inference output)."""
    if hasattr(pred, "__cuda_array_interface__"):
        if hasattr(pred, "is_cuda") and hasattr(pred, "float"):  # torch: cast half and make contiguous
            pred = pred.float().contiguous()
        arr = cuda.as_cuda_array(pred)
    else:
        arr = cuda.to_device(np.ascontiguousarray(pred, dtype=np.float32))
    if arr.ndim != ndim or arr.shape[ndim - 1] < 6 or arr.dtype != np.float32:
        raise ValueError(f"postprocess_gpu: expected float32 predictions with {ndim} dims [.., N, 5+C], "
                         f"got shape {arr.shape} dtype {arr.dtype}")
    return arr


class PostprocessGPU:
    """Score filter + class-aware NMS of one image's prediction on the GPU, buffers reused across calls.

    Args:
        score_threshold: minimum ``obj * cls``.
        iou_threshold: NMS IoU threshold (``>`` suppresses).
        class_agnostic: NMS across classes.
        class_names: label table stored in the results.
        raw_input_size: when set, the input is the ONNX export's raw form and is decoded in the same
            kernel for this network input ``(h, w)`` (boxes then match `decode_ref` within float32 ``exp``
            rounding rather than bit for bit).
    """

    def __init__(
        self,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        class_agnostic: bool = False,
        class_names: Sequence[str] | None = None,
        raw_input_size: tuple[int, int] | None = None,
    ) -> None:
        self.score_threshold = np.float32(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.class_agnostic = bool(class_agnostic)
        self.class_names = class_names
        self.raw_input_size = raw_input_size
        self._n = -1
        self._mask = cuda.device_array(0, np.uint64)
        self._counter = cuda.device_array(1, np.int32)
        self._maxc = cuda.device_array(1, np.float32)
        self._nkeep = cuda.device_array(1, np.int32)

    def _allocate(self, n: int) -> None:
        if n == self._n:
            return
        self._n = n
        self._boxes = cuda.device_array((n, 4), np.float32)
        self._scores = cuda.device_array(n, np.float32)
        self._classes = cuda.device_array(n, np.int64)
        self._index = cuda.device_array(n, np.int32)
        self._order = cuda.device_array(n, np.int32)
        self._nms_boxes = cuda.device_array((n, 4), np.float32)
        self._keep = cuda.device_array(n, np.int32)
        self._out_boxes = cuda.device_array((n, 4), np.float32)
        self._out_scores = cuda.device_array(n, np.float32)
        self._out_classes = cuda.device_array(n, np.int64)
        if self.raw_input_size is not None:
            grids, strides = grid_strides(self.raw_input_size, STRIDES)
            if len(grids) != n:
                raise ValueError(f"postprocess_gpu: {n} anchors, but input {self.raw_input_size} has {len(grids)}")
            self._grids, self._strides = cuda.to_device(grids), cuda.to_device(strides)
        else:
            self._grids = cuda.device_array((1, 2), np.float32)
            self._strides = cuda.device_array(1, np.float32)

    def _select(self, pred: Any) -> int:
        """Launch the fused filter; returns the number of candidates K (one 4-byte device->host copy)."""
        n = pred.shape[0]
        self._allocate(n)
        K.init_kernel[1, 1](self._counter, self._maxc)
        K.select_kernel[math.ceil(n / 256), 256](
            pred, self.score_threshold, self._grids, self._strides, self.raw_input_size is not None,
            self._boxes, self._scores, self._classes, self._index, self._counter, self._maxc)
        return int(self._counter.copy_to_host()[0])

    def _nms(self, k: int) -> None:
        cb = math.ceil(k / K.BLOCK)
        if cb > K.MAX_COL_BLOCKS:
            raise ValueError(f"postprocess_gpu: {k} boxes over the score threshold, at most "
                             f"{K.MAX_COL_BLOCKS * K.BLOCK}; raise score_threshold")
        if self._mask.size < k * cb:
            self._mask = cuda.device_array(k * cb, np.uint64)
        mask = self._mask[: k * cb].reshape(k, cb)
        K.rank_kernel[math.ceil(k / 128), 128](
            k, self._scores, self._index, self._boxes, self._classes, self._maxc, self.class_agnostic,
            self._order, self._nms_boxes)
        K.iou_mask_kernel[(cb, cb), K.BLOCK](k, self._nms_boxes, self.iou_threshold, mask)
        K.reduce_kernel[1, K.REDUCE_THREADS](k, cb, mask, self._keep, self._nkeep)

    def __call__(self, pred: Any, ratio: float) -> Detections:
        """Detections of one image.

        Args:
            pred ([N, 5 + C] float32, device or host): decoded prediction (or raw, see ``raw_input_size``).
            ratio: the letterbox scale ``r``.

        Returns:
            `Detections` in original-image pixels by score descending, equal to `postprocess_ref`.
        """
        pred = as_device_pred(pred)
        k = self._select(pred)
        if k == 0:
            return Detections.empty(self.class_names)
        self._nms(k)
        K.gather_kernel[math.ceil(k / 128), 128](
            self._nkeep, self._keep, self._order, self._boxes, self._scores, self._classes,
            np.float32(ratio), self._out_boxes, self._out_scores, self._out_classes)
        n = int(self._nkeep.copy_to_host()[0])
        return Detections(self._out_boxes[:n].copy_to_host(), self._out_scores[:n].copy_to_host(),
                          self._out_classes[:n].copy_to_host(), class_names=self.class_names)


def postprocess_gpu(
    pred: Any,
    ratio: float,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    class_agnostic: bool = False,
    class_names: Sequence[str] | None = None,
) -> Detections:
    """GPU `postprocess` of one image's decoded prediction ``[N, 5 + C]`` (device or host array)."""
    return PostprocessGPU(score_threshold, iou_threshold, class_agnostic, class_names)(pred, ratio)


def postprocess_batch_gpu(
    preds: Any,
    ratios: float | Sequence[float],
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    class_agnostic: bool = False,
    class_names: Sequence[str] | None = None,
) -> list[Detections]:
    """GPU `postprocess_batch`: ``preds [B, N, 5 + C]`` on the device, one ratio per image or one for all."""
    preds = as_device_pred(preds, ndim=3)
    if isinstance(ratios, (int, float, np.floating)):
        ratios = [float(ratios)] * preds.shape[0]
    if len(ratios) != preds.shape[0]:
        raise ValueError(f"postprocess_batch_gpu: {preds.shape[0]} predictions but {len(ratios)} ratios")
    run = PostprocessGPU(score_threshold, iou_threshold, class_agnostic, class_names)
    return [run(preds[b], r) for b, r in enumerate(ratios)]
