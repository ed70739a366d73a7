"""Datasets (COCO JSON, YOLO txt folders), augmentation and loaders for training and evaluation."""

from trainer.data.records import DetectionData, ImageRecord, LoadReport
from trainer.data.sources import load_data

__all__ = ["DetectionData", "ImageRecord", "LoadReport", "load_data"]
