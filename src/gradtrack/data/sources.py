"""Where training pairs come from, and the torch datasets that turn them into crops.

Sources (each yields :class:`gradtrack.data.pairs.Pair` objects from a ``numpy`` Generator):

* :class:`VideoPool`: curated annotated videos (the ``folder`` dataset's train split, or procedural
  synthetic sequences from :mod:`gradtrack.data.synthetic`), pairs within ``max_gap`` frames;
* :class:`gradtrack.data.stills.StillImages`: still-image pairs (train-split frames, package samples);
* with ``masks=True`` (SiamMLG) the procedural sequences are full-frame
  :class:`~gradtrack.data.masks.MaskVideo` objects with their exact masks, and every configured mask
  dataset (``data.mask_datasets``: YouTube-VOS, DAVIS, COCO; validation subsets refused) is one more source.

:class:`PairMixture` draws from the sources with fixed weights.  :class:`PairDataset` (one pair per item)
and :class:`GroupDataset` (template generalisation: ``k`` pairs from ``k`` different videos) are
map-style datasets whose item ``i`` is a pure function of ``(seed, i)``, so the data stream does not
depend on the number of DataLoader workers, and resuming at step ``s`` just starts at item
``s * batch``.  What a pair becomes is the dataset's *sample builder* (:mod:`gradtrack.data.samples`).

Paths in a :class:`DataConfig` are used as they are: the training config resolves them once when it is
loaded (:func:`gradtrack.training.config.load_train_config`).

The validation split never enters training: :func:`build_training_sources` refuses sequences listed
under ``val`` in the splits file (and :func:`build_validation_pool` takes only those).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.frames import EncodedFrames
from .augment import AugmentConfig, CropConfig
from .masks import MaskDatasetConfig, MaskVideo, PackedMasks
from .pairs import BoxFilter, CuratedVideo, Pair, usable_frames
from .stills import StillConfig, StillImages, package_sample_images

log = logging.getLogger(__name__)


@dataclass
class SyntheticConfig:
    count: int = 0  # procedural sequences to generate
    presets: list[str] = field(default_factory=list)  # cycled; empty = the module's default presets
    seed: int = 1000
    num_frames: int = 100
    min_visible: float = 0.3  # frames with less of the target visible are not used


@dataclass
class DataConfig:
    format: str = "folder"  # a dataset name understood by gradtrack.data.readers.build_dataset
    root: str = "../shared/data/sequences"
    splits_file: str | None = "../shared/data/splits.json"
    split: str = "train"
    val_split: str = "val"
    limit_sequences: int = 0  # 0 = all sequences of the split (small numbers for smoke tests)
    max_gap: int = 100
    weights: dict[str, float] = field(default_factory=lambda: {"sequences": 1.0, "stills": 0.25, "synthetic": 0.25})
    stills_per_sequence: int = 12  # frames of each train sequence used as still images
    package_stills: bool = True  # sample images shipped by cv2 / skimage / matplotlib
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    filter: BoxFilter = field(default_factory=BoxFilter)
    crop: CropConfig = field(default_factory=CropConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    still: StillConfig = field(default_factory=StillConfig)
    cache_size: int = 287  # side of the curated crops kept in memory
    cache_margin: float = 1.125  # curated window = 255 window * margin
    cache_quality: int = 88
    num_workers: int = 1
    # how DataLoader workers start: "spawn" (default; robust: forking a process whose OpenCV/OpenMP thread
    # pools are in use can deadlock the child) or "fork" / "forkserver"
    worker_start: Literal["spawn", "fork", "forkserver"] = "spawn"
    val_pairs: int = 64  # fixed validation pairs (or groups) from the val split; 0 = no validation
    mask_datasets: list[MaskDatasetConfig] = field(default_factory=list)  # sources with masks (SiamMLG)

    def validate(self) -> None:
        unknown = set(self.weights) - {"sequences", "stills", "synthetic"}
        if unknown:
            raise ValueError(f"weights: unknown source(s) {sorted(unknown)}; known: sequences, stills, synthetic")
        if any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0 with at least one > 0")
        if self.split == self.val_split:
            raise ValueError("the training split and the validation split must differ")
        if self.num_workers < 0 or self.max_gap < 0:
            raise ValueError("num_workers and max_gap must be >= 0")


# ------------------------------------------------------------------------------------------------
# sources


class VideoPool:
    """Curated videos; ``sample`` picks a video (not in ``exclude`` if possible) and a pair in it."""

    def __init__(self, videos: list[CuratedVideo], max_gap: int):
        self.videos = videos
        self.max_gap = max_gap

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def keys(self) -> list[str]:
        return [v.key for v in self.videos]

    def sample(self, rng: np.random.Generator, exclude: set | None = None) -> Pair:
        if not self.videos:
            raise ValueError("empty video pool")
        order = rng.permutation(len(self.videos))
        pick = order[0]
        if exclude:
            for j in order:
                if self.videos[j].key not in exclude:
                    pick = j
                    break
        return self.videos[int(pick)].sample(rng, self.max_gap)

    @property
    def frames(self) -> int:
        return sum(len(v) for v in self.videos)


class PairMixture:
    """Weighted mixture of sources (name -> (weight, source)); empty sources are dropped."""

    def __init__(self, sources: dict[str, tuple[float, object]]):
        items = [(n, float(w), s) for n, (w, s) in sources.items() if w > 0 and s is not None and len(s) > 0]
        if not items:
            raise ValueError("no training source with data and a positive weight")
        self.names = [n for n, _, _ in items]
        self.sources = [s for _, _, s in items]
        w = np.array([w for _, w, _ in items])
        self.probs = w / w.sum()

    def sample(self, rng: np.random.Generator, exclude: set | None = None) -> tuple[str, Pair]:
        i = int(rng.choice(len(self.sources), p=self.probs))
        return self.names[i], self.sources[i].sample(rng, exclude)

    def describe(self) -> dict:
        out = {}
        for n, s, p in zip(self.names, self.sources, self.probs):
            out[n] = {"weight": float(p), "videos": len(s), "frames": int(getattr(s, "frames", len(s)))}
        return out


# ------------------------------------------------------------------------------------------------
# building from a config


def split_names(splits_file: Path | None, split: str) -> list[str]:
    if splits_file is None:
        return []
    data = json.loads(Path(splits_file).read_text())
    return list(data.get(split, []))


def _ids(seq) -> set[str]:
    ids = {seq.name}
    if getattr(seq, "dataset", ""):
        ids.add(f"{seq.dataset}/{seq.name}")
    return ids


def assert_no_val(sequences, val_names: list[str]) -> None:
    """Raise if any sequence is one of ``val_names`` (by name or ``dataset/name``)."""
    val = set(val_names)
    if not val:
        return
    for seq in sequences:
        hit = _ids(seq) & val
        if hit:
            raise AssertionError(f"validation sequence {sorted(hit)[0]!r} would be used for training")


def _splits(cfg: DataConfig) -> Path | None:
    return None if cfg.splits_file is None else Path(cfg.splits_file).expanduser()


def _open_split(cfg: DataConfig, split: str):
    from .readers import build_dataset  # the readers module is written alongside; imported lazily

    splits = _splits(cfg)
    if splits is not None and not splits.is_file():
        raise FileNotFoundError(f"splits file not found: {splits}")
    kwargs = {"split": split, "splits": str(splits)} if splits is not None else {}
    ds = build_dataset(cfg.format, str(Path(cfg.root).expanduser()), **kwargs)
    seqs = list(ds)
    if cfg.limit_sequences:
        seqs = seqs[: cfg.limit_sequences]
    return seqs


def video_key(seq) -> str:
    """``dataset/name`` (names that already hold a path, like the folder dataset's, stay as they are)."""
    ds = getattr(seq, "dataset", "")
    return seq.name if ("/" in seq.name or not ds) else f"{ds}/{seq.name}"


def curate(seq, cfg: DataConfig, key: str | None = None) -> CuratedVideo | None:
    usable = usable_frames(seq.boxes, seq.image_size, cfg.filter, seq.absent)
    if not usable.any():
        return None
    return CuratedVideo(key or video_key(seq), seq.frames, seq.boxes, usable,
                        cfg.crop, cfg.cache_size, cfg.cache_margin, cfg.cache_quality)


def _still_frames(seq, usable: np.ndarray, count: int) -> list[int]:
    idx = np.flatnonzero(usable) if usable.any() else np.arange(len(seq))
    if count <= 0 or len(idx) == 0:
        return []
    return sorted(set(np.linspace(0, len(idx) - 1, min(count, len(idx))).round().astype(int).tolist()))


def synthetic_sequences(cfg: SyntheticConfig):
    """The procedural sequences of ``cfg`` as ``(key, sequence, boxes, absent)``: ``cfg.count`` sequences
    cycling through ``cfg.presets`` (empty: :data:`gradtrack.data.synthetic.BENCHMARK_PRESETS`), seeds
    ``cfg.seed + i``; ``absent`` marks frames with less than ``cfg.min_visible`` of the target visible."""
    if cfg.count <= 0:
        return []
    from . import synthetic

    presets = list(cfg.presets) or list(synthetic.BENCHMARK_PRESETS)
    out = []
    for i in range(cfg.count):
        name = presets[i % len(presets)]
        s = synthetic.preset(name, seed=cfg.seed + i, num_frames=cfg.num_frames)
        boxes = np.asarray(s.boxes, dtype=np.float64)
        absent = np.asarray(s.visible) < cfg.min_visible
        out.append((f"synthetic/{name}-{cfg.seed + i}", s, boxes, absent))
    return out


@dataclass
class TrainingSources:
    mixture: PairMixture
    stats: dict


def mask_dataset_videos(cfg: MaskDatasetConfig, flt: BoxFilter) -> list[MaskVideo]:
    """Every object of a mask dataset as a lazy :class:`MaskVideo` (frames and masks decoded on demand)."""
    from .readers import build_dataset

    ds = build_dataset(cfg.format, str(Path(cfg.root).expanduser()), **cfg.options)
    names = list(ds.names)
    if cfg.limit_sequences:
        names = names[: cfg.limit_sequences]
    out = []
    for name in names:
        seq = ds[name]
        annotated = np.asarray(seq.masks.annotated(), dtype=bool)
        usable = usable_frames(seq.boxes, seq.image_size, flt, seq.absent) & annotated
        if usable.any():
            out.append(MaskVideo(f"{cfg.format}/{seq.name}", seq.frames, seq.masks, seq.boxes, usable))
    return out


def build_training_sources(cfg: DataConfig, progress: bool = False, masks: bool = False) -> TrainingSources:
    """Curate the train split, the still images and the synthetic sequences into a :class:`PairMixture`;
    ``masks``: procedural sequences keep their masks (full frames) and the mask datasets join."""
    t0 = time.time()
    weights = {k: float(v) for k, v in cfg.weights.items()}
    videos: list[CuratedVideo] = []
    stills = StillImages(cfg.still)
    stats: dict = {"sequences": [], "skipped_sequences": [], "still_images": 0, "package_images": [],
                   "synthetic_sequences": 0}
    need_seq = weights.get("sequences", 0) > 0 or (weights.get("stills", 0) > 0 and cfg.stills_per_sequence > 0)
    if need_seq:
        seqs = _open_split(cfg, cfg.split)
        val_names = split_names(_splits(cfg), cfg.val_split)
        assert_no_val(seqs, val_names)
        it = seqs
        if progress:
            from tqdm import tqdm

            it = tqdm(seqs, desc="curating train sequences", unit="seq")
        for seq in it:
            usable = usable_frames(seq.boxes, seq.image_size, cfg.filter, seq.absent)
            want_stills = set(_still_frames(seq, usable, cfg.stills_per_sequence)) if weights.get("stills", 0) > 0 else set()
            key = video_key(seq)
            if weights.get("sequences", 0) > 0 and usable.any():
                captured: dict[int, np.ndarray] = {}

                def frames_tap(src=seq.frames, want=want_stills, store=captured):
                    for i, f in enumerate(src):
                        if i in want:
                            store[i] = f
                        yield f

                videos.append(CuratedVideo(key, frames_tap(), seq.boxes, usable, cfg.crop, cfg.cache_size,
                                           cfg.cache_margin, cfg.cache_quality))
                # frames after the last usable one were not decoded: fetch the few stills left
                for i in sorted(want_stills - set(captured)):
                    captured[i] = seq.frames[i]
            else:
                if not usable.any():
                    stats["skipped_sequences"].append(key)
                captured = {i: seq.frames[i] for i in sorted(want_stills)}
            for i in sorted(captured):
                stills.add(f"{key}#{i}", captured[i])
            stats["sequences"].append({"name": key, "frames": len(seq), "usable": int(usable.sum())})
    if weights.get("stills", 0) > 0 and cfg.package_stills:
        for name, img in package_sample_images().items():
            stills.add(name, img)
            stats["package_images"].append(name)
    stats["still_images"] = len(stills)
    synth_videos = []
    if weights.get("synthetic", 0) > 0:
        for key, seq, boxes, absent in synthetic_sequences(cfg.synthetic):
            usable = usable_frames(boxes, seq.size, cfg.filter, absent)
            if not usable.any():
                continue
            if masks:  # exact masks: full frames (JPEG) and bit-packed masks in memory
                synth_videos.append(MaskVideo(key, EncodedFrames(seq.frames, quality=90), PackedMasks(seq.masks),
                                              boxes, usable))
            else:
                synth_videos.append(CuratedVideo(key, iter(seq.frames), boxes, usable, cfg.crop, cfg.cache_size,
                                                 cfg.cache_margin, cfg.cache_quality))
        stats["synthetic_sequences"] = len(synth_videos)
    sources = {
        "sequences": (weights.get("sequences", 0.0), VideoPool(videos, cfg.max_gap)),
        "stills": (weights.get("stills", 0.0), stills),
        "synthetic": (weights.get("synthetic", 0.0), VideoPool(synth_videos, cfg.max_gap)),
    }
    for n, mcfg in enumerate(cfg.mask_datasets if masks else []):
        if mcfg.weight > 0:
            mvids = mask_dataset_videos(mcfg, cfg.filter)
            sources[f"mask:{mcfg.format}:{n}"] = (mcfg.weight, VideoPool(mvids, mcfg.max_gap))
            stats[f"mask:{mcfg.format}:{n}"] = {"root": mcfg.root, "objects": len(mvids)}
    mixture = PairMixture(sources)
    stats["mixture"] = mixture.describe()
    stats["curation_s"] = round(time.time() - t0, 1)
    stats["cache_bytes"] = int(sum(v.nbytes for v in videos + synth_videos))
    return TrainingSources(mixture, stats)


def build_validation_pool(cfg: DataConfig) -> VideoPool | None:
    """Curated val-split videos (evaluated only, never trained on)."""
    if cfg.val_pairs <= 0 or cfg.splits_file is None:
        return None
    vcfg = DataConfig(**{**cfg.__dict__, "split": cfg.val_split, "val_split": cfg.split, "limit_sequences": 0})
    seqs = _open_split(vcfg, cfg.val_split)
    val_names = set(split_names(_splits(cfg), cfg.val_split))
    for seq in seqs:  # the reverse check: everything here must be listed as val
        if val_names and not (_ids(seq) & val_names):
            raise AssertionError(f"sequence {seq.name!r} is not in the validation split")
    videos = [v for v in (curate(s, cfg) for s in seqs) if v is not None]
    return VideoPool(videos, cfg.max_gap) if videos else None


# ------------------------------------------------------------------------------------------------
# torch datasets


def item_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


INFINITE = 1 << 40


class PairDataset(Dataset):
    """Item ``i``: ``build(pair, aug, rng[, negative])`` of one pair (a pure function of ``(seed, i)``); with
    ``aug.negative_prob`` the search frame comes from another video's pair (where the pool has one)."""

    def __init__(self, mixture, build, aug: AugmentConfig | None, seed: int, length: int = INFINITE):
        self.mixture, self.build, self.aug, self.seed, self.length = mixture, build, aug, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = item_rng(self.seed, i)
        _, pair = self.mixture.sample(rng)
        neg = None
        if self.aug is not None and self.aug.negative_prob > 0 and rng.random() < self.aug.negative_prob:
            _, neg = self.mixture.sample(rng, {pair.video})
            if neg.video == pair.video:  # a single-video pool: no negative possible
                neg = None
        return self.build(pair, self.aug, rng, neg)


class GroupDataset(Dataset):
    """Template generalisation: item ``i`` holds ``k`` samples of pairs from ``k`` different videos, each
    field stacked (``{"z": k x 3xExE, "x": k x 3xSxS, ...}``, + ``distinct``); pair 0's template is *the*
    template of the group."""

    def __init__(self, mixture, k: int, build, aug: AugmentConfig | None, seed: int, length: int = INFINITE):
        if k < 1:
            raise ValueError("k must be >= 1")
        self.mixture, self.k, self.build, self.aug, self.seed, self.length = mixture, k, build, aug, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = item_rng(self.seed, i)
        used: set[str] = set()
        items = []
        for _ in range(self.k):
            _, pair = self.mixture.sample(rng, used)
            used.add(pair.video)
            items.append(self.build(pair, self.aug, rng))
        out = {key: torch.stack([it[key] for it in items]) for key in items[0]}
        out["distinct"] = torch.tensor(len(used))
        return out


def training_dataset(mixture, build, aug: AugmentConfig | None, seed: int, group: int | None) -> Dataset:
    """:class:`GroupDataset` of ``group`` pairs per item, or :class:`PairDataset` when ``group`` is None."""
    return PairDataset(mixture, build, aug, seed) if group is None else GroupDataset(mixture, group, build, aug, seed)


VALIDATION_SEED = 10_000_019  # validation items use seed VALIDATION_SEED + the run's seed


def validation_batches(pool: VideoPool | None, build, count: int, batch: int, seed: int,
                       group: int | None = None) -> list[dict]:
    """Fixed, unaugmented validation batches from ``pool``: ``count`` pairs, or ``count // k`` groups of
    ``k = min(group, videos in the pool)`` pairs; empty without a pool or with ``count`` 0."""
    if pool is None or count <= 0:
        return []
    mix = PairMixture({"val": (1.0, pool)})
    if group is None:
        return fixed_batches(PairDataset(mix, build, None, VALIDATION_SEED + seed), count, batch)
    k = min(group, max(1, len(pool)))
    return fixed_batches(GroupDataset(mix, k, build, None, VALIDATION_SEED + seed), max(1, count // group), batch)


def fixed_batches(dataset: Dataset, count: int, batch: int, start: int = 0) -> list[dict]:
    """``count`` items of ``dataset`` collated into batches (for validation)."""
    from torch.utils.data import default_collate

    out = []
    for b0 in range(0, count, batch):
        items = [dataset[start + j] for j in range(b0, min(count, b0 + batch))]
        out.append(default_collate(items))
    return out


def worker_init(_worker_id: int) -> None:
    """DataLoader workers: one thread each for OpenCV and torch (the cores belong to the model)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
