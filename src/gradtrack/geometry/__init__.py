"""Geometry: the box convention, conversions, IoU and the one crop-and-resize."""
from .boxes import (BoxError, clip_box, cxcywh_to_xywh, iou, iou_matrix, parse_box, polygon_to_xywh,
                    validate_box, xywh_to_cxcywh, xywh_to_polygon, xywh_to_xyxy, xyxy_to_xywh)
from .crop import crop_affine, crop_and_resize, crop_and_resize_torch, crop_pyramid, mean_color
from .scoremap import ScoreMapGeometry

__all__ = [
    "BoxError", "clip_box", "cxcywh_to_xywh", "iou", "iou_matrix", "parse_box", "polygon_to_xywh", "validate_box",
    "xywh_to_cxcywh", "xywh_to_polygon", "xywh_to_xyxy", "xyxy_to_xywh", "crop_affine", "crop_and_resize",
    "crop_and_resize_torch", "crop_pyramid", "mean_color", "ScoreMapGeometry",
]
