"""YOLOX trainer: datasets, augmentation, SimOTA, losses, the training engine and COCO evaluation.

Kept out of `streamyolox/` so the inference package does not pull training code; `streamyolox train`
and `streamyolox eval` import it lazily.
"""
