"""Input/output at the bottom layer: image normalisation and frame sources."""
from .frames import (
    ArrayFrames,
    CameraFrames,
    EncodedFrames,
    FrameError,
    FrameSource,
    ImageFolderFrames,
    VideoFrames,
    VideoWriter,
    open_frames,
    read_image,
    write_video,
)
from .image import ImageError, as_rgb_uint8

__all__ = [
    "ArrayFrames",
    "CameraFrames",
    "EncodedFrames",
    "FrameError",
    "FrameSource",
    "ImageError",
    "ImageFolderFrames",
    "VideoFrames",
    "VideoWriter",
    "as_rgb_uint8",
    "open_frames",
    "read_image",
    "write_video",
]
