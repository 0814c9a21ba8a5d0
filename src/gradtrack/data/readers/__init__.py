"""Benchmark readers: every dataset layout turned into :class:`gradtrack.data.sequence.SequenceDataset`.

``build_dataset(name, root, **kw)`` builds a reader by registry name (:data:`DATASET_NAMES`)::

    ds = build_dataset("otb", "/data/OTB100", version="otb2015")
    seq = ds["Jogging.1"]          # or ds[0]; frames are decoded only when indexed

All readers convert their benchmark's box convention to gradtrack's (0-based ``x, y, w, h``, NaN rows
where the target is absent or unannotated) and validate the layout with errors that say what was
expected where and what was found.
"""
from __future__ import annotations

import functools

from gradtrack.registry import Registry

from ..sequence import DatasetError, Sequence, SequenceDataset
from .annotations import AnnotationError, read_boxes, read_flags, read_regions, read_table
from .folder import FolderDataset
from .got10k import GOT10kDataset
from .lasot import LaSOTDataset
from .otb import OTB2013_SEQUENCES, OTB2015_SEQUENCES, OTB_ATTRIBUTES, OTB_FRAME_RANGES, OTBDataset, TC128Dataset
from .tld import TLDDataset
from .uav import UAV123_SUBSEQUENCES, DTB70Dataset, UAV123Dataset, UAVDTDataset, read_subsequence_table
from .vot import VOTDataset
from .vid import VIDDataset
from .trackingnet import TrackingNetDataset
from .masks import COCODataset, DAVISDataset, YouTubeVOSDataset

#: name -> reader factory ``(root, **kw) -> SequenceDataset``
DATASETS: Registry = Registry("dataset")

_FACTORIES = {
    "folder": FolderDataset,
    "otb": OTBDataset,
    "otb2013": functools.partial(OTBDataset, version="otb2013"),
    "otb2015": functools.partial(OTBDataset, version="otb2015"),
    "tc128": TC128Dataset,
    "uav123": functools.partial(UAV123Dataset, version="UAV123"),
    "uav123_10fps": functools.partial(UAV123Dataset, version="UAV123_10fps"),
    "uav20l": functools.partial(UAV123Dataset, version="UAV20L"),
    "dtb70": DTB70Dataset,
    "uavdt": UAVDTDataset,
    "lasot": LaSOTDataset,
    "got10k": GOT10kDataset,
    "vot": VOTDataset,
    "tld": TLDDataset,
    "vid": VIDDataset,
    "trackingnet": TrackingNetDataset,
    "youtube_vos": YouTubeVOSDataset,
    "davis": DAVISDataset,
    "coco": COCODataset,
}
for _name, _factory in _FACTORIES.items():
    DATASETS.register(_name)(_factory)

#: every registered reader name
DATASET_NAMES: list[str] = DATASETS.names()


def build_dataset(name: str, root, **kw) -> SequenceDataset:
    """The reader registered as ``name`` opened at ``root`` (keyword options go to the reader)."""
    return DATASETS.get(name)(root, **kw)


__all__ = [
    "DATASETS", "DATASET_NAMES", "build_dataset", "AnnotationError", "DatasetError", "Sequence", "SequenceDataset",
    "FolderDataset", "GOT10kDataset", "LaSOTDataset", "OTBDataset", "TC128Dataset", "TLDDataset", "UAV123Dataset",
    "DTB70Dataset", "UAVDTDataset", "VOTDataset", "OTB2013_SEQUENCES", "OTB2015_SEQUENCES", "OTB_ATTRIBUTES", "OTB_FRAME_RANGES",
    "UAV123_SUBSEQUENCES", "read_subsequence_table", "read_boxes", "read_flags", "read_regions", "read_table",
]
