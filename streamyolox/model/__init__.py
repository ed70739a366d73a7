"""YOLOX models: the zoo (`build_model`, `ZOO`) and the `YOLOX` module."""

from streamyolox.model.build import ZOO, ZooEntry, build_model, canonical_name
from streamyolox.model.head import decode_outputs, make_grids
from streamyolox.model.yolox import YOLOX

__all__ = ["YOLOX", "ZOO", "ZooEntry", "build_model", "canonical_name", "decode_outputs", "make_grids"]
