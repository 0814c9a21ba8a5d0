"""Benchmark readers and the Sequence / SequenceDataset containers.

Real layouts come from ../shared/data/formats (skipped where absent); formats that are not shipped there
(LaSOT, GOT-10k, TC-128, UAV123 sub-sequences, UAVDT, OTB multi-target, VOT masks) are written by the
tests into tmp_path as a few tiny PNGs plus annotation files.  Frame decoding is kept to a handful of
frames: readers are lazy.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtrack.data.readers import (
    DATASET_NAMES, DATASETS, OTB2013_SEQUENCES, OTB2015_SEQUENCES, UAV123_SUBSEQUENCES, AnnotationError,
    DatasetError, build_dataset, read_boxes, read_table,
)
from gradtrack.data.readers.annotations import mask_rle_to_box, parse_region, read_flags, read_regions
from gradtrack.data.sequence import FrameRange, LazyFrames, Sequence, SequenceDataset, SequenceError
from gradtrack.geometry.boxes import polygon_to_xywh
from gradtrack.io.frames import ArrayFrames

# ------------------------------------------------------------------------------------------------ helpers


def raw_rows(path: Path) -> list[list[float]]:
    """The test's own independent reading of a box file (any of , tab space)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rows.append([float(t) for t in line.replace(",", " ").replace("\t", " ").split()])
    return rows


def write_images(folder: Path, numbers, fmt: str = "{:04d}.png", size=(10, 8)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in numbers:
        img = np.full((size[1], size[0], 3), k % 256, np.uint8)
        p = folder / fmt.format(k)
        assert cv2.imwrite(str(p), img)
        out.append(p)
    return out


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def frames_of(n, w=6, h=4):
    return ArrayFrames([np.full((h, w, 3), i, np.uint8) for i in range(n)])


# ------------------------------------------------------------------------------------------------ Sequence


def test_sequence_validation_and_derived_fields():
    boxes = np.array([[1, 2, 3, 4], [np.nan] * 4, [5, 6, 7, 8]], float)
    s = Sequence("a", frames_of(3), boxes, dataset="x", tags={"occ": [0, 1, 0]}, cover=[8, 0, 3])
    assert len(s) == 3 and s.image_size == (6, 4)
    assert s.absent.tolist() == [False, True, False]
    assert s.valid.tolist() == [True, False, True]
    assert s.tags["occ"].dtype == bool and s.tags["occ"].tolist() == [False, True, False]
    np.testing.assert_array_equal(s.init_box, [1, 2, 3, 4])
    # given absent flags are combined with NaN rows
    s2 = Sequence("b", frames_of(3), boxes, absent=[False, False, True])
    assert s2.absent.tolist() == [False, True, True]
    with pytest.raises(SequenceError, match="N x 4"):
        Sequence("c", frames_of(3), np.zeros((3, 5)))
    with pytest.raises(SequenceError, match="partly NaN"):
        Sequence("c", frames_of(1), np.array([[1, np.nan, 3, 4]]))
    with pytest.raises(SequenceError, match="trim them explicitly with FrameRange"):
        Sequence("c", frames_of(5), np.zeros((3, 4)))
    with pytest.raises(SequenceError, match="2 frames but 3 annotation rows"):
        Sequence("c", frames_of(2), np.zeros((3, 4)))
    with pytest.raises(SequenceError, match="tag 'occ'"):
        Sequence("c", frames_of(3), np.zeros((3, 4)), tags={"occ": [0, 1]})
    with pytest.raises(SequenceError, match="cover labels"):
        Sequence("c", frames_of(3), np.zeros((3, 4)), cover=[0, 9, 1])
    with pytest.raises(SequenceError, match="polygons"):
        Sequence("c", frames_of(3), np.zeros((3, 4)), polygons=np.zeros((3, 6)))
    with pytest.raises(SequenceError, match="first frame has no box"):
        Sequence("d", frames_of(2), np.array([[np.nan] * 4, [1, 1, 1, 1]])).init_box


def test_frame_range_trims_explicitly():
    src = frames_of(10)
    r = FrameRange(src, 3, 7)
    assert len(r) == 4 and r.size == (6, 4)
    assert r[0][0, 0, 0] == 3 and r[-1][0, 0, 0] == 6
    assert [f[0, 0, 0] for f in r] == [3, 4, 5, 6]
    with pytest.raises(IndexError):
        r[4]
    with pytest.raises(SequenceError, match="does not fit"):
        FrameRange(src, 5, 11)
    s = Sequence("trimmed", r, np.zeros((4, 4)))
    assert len(s) == 4


def test_lazy_frames_open_late_and_check_the_real_count():
    opened = []

    def opener():
        opened.append(1)
        return frames_of(3)

    lf = LazyFrames(opener, 3, "clip")
    s = Sequence("v", lf, np.zeros((3, 4)))
    assert opened == []  # building the sequence decodes nothing
    assert s.frames[2][0, 0, 0] == 2 and len(opened) == 1
    assert [f[0, 0, 0] for f in lf] == [0, 1, 2]
    with pytest.raises(SequenceError, match="clip has 3 frames but the annotations have 5"):
        LazyFrames(opener, 5, "clip")[0]
    with pytest.raises(SequenceError, match="ended after 3 frames"):
        list(LazyFrames(opener, 5, "clip"))
    with pytest.raises(SequenceError, match="more frames"):
        list(LazyFrames(opener, 2, "clip"))
    assert len(list(LazyFrames(opener, 2, "clip", allow_longer=True))) == 2


class _Toy(SequenceDataset):
    dataset = "toy"

    def __init__(self):
        super().__init__("toyroot", ["a", "b", "c"])
        self.loads = []

    def _load(self, name):
        self.loads.append(name)
        return Sequence(name, frames_of(2), np.ones((2, 4)), dataset=self.dataset)


def test_sequence_dataset_indexing_subset_and_laziness():
    ds = _Toy()
    assert ds.loads == [] and len(ds) == 3 and ds.names == ["a", "b", "c"]
    assert ds[1].name == "b" and ds[-1].name == "c" and ds["a"].name == "a"
    assert ds.loads == ["b", "c", "a"]
    ds["b"]
    assert ds.loads == ["b", "c", "a"]  # cached
    assert [s.name for s in ds] == ["a", "b", "c"] and "b" in ds
    with pytest.raises(KeyError, match="unknown sequence"):
        ds["zz"]
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError):
        ds[1.5]
    sub = ds.subset(["c", "a"])
    assert sub.names == ["c", "a"] and len(sub) == 2 and sub[0].name == "c"
    assert ds.names == ["a", "b", "c"]  # the original is untouched
    assert ds.subset("b").names == ["b"]
    with pytest.raises(KeyError, match="'nope'"):
        ds.subset(["a", "nope"])


# ------------------------------------------------------------------------------------------------ parser


def test_parser_delimiters_nan_blank_trailing_lines_and_bom(tmp_path):
    p = write(tmp_path / "gt.txt", "\ufeff1,2,3,4\n5\t6\t7\t8\n9 10  11 12\nnan,NaN,NAN,nan\n1;2;3;4\r\n\n\n")
    b = read_table(p)
    assert b.shape == (5, 4)
    np.testing.assert_array_equal(b[:3], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert np.isnan(b[3]).all()
    ob = read_boxes(p, one_based=True)
    np.testing.assert_array_equal(ob[0], [0, 1, 3, 4])
    corners = read_boxes(write(tmp_path / "c.txt", "11,21,30,60\n"), one_based=True, corners="inclusive")
    np.testing.assert_array_equal(corners[0], [10, 20, 20, 40])
    corners = read_boxes(tmp_path / "c.txt", corners="exclusive")
    np.testing.assert_array_equal(corners[0], [11, 21, 19, 39])


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("1,2,3,4\n1,2,3\n", 2, "expected 4 values, found 3"),
        ("1,2,3,4\n1,2,x,4\n", 2, "'x' is not a number"),
        ("1,2,3,4\n\n1,2,3,4\n", 2, "blank line in the middle"),
        ("1,2,3,4\nnan,2,3,4\n", 2, "partly NaN"),
        ("1,2,3,4\n1,2,inf,4\n", 2, "infinite"),
    ],
)
def test_malformed_annotation_lines_name_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path / "groundtruth_rect.txt", text)
    with pytest.raises(AnnotationError, match=message) as e:
        read_boxes(p)
    assert f"{p}:{line}" in str(e.value)


def test_parser_rejects_empty_and_missing_files(tmp_path):
    with pytest.raises(AnnotationError, match="empty"):
        read_table(write(tmp_path / "e.txt", "\n\n"))
    with pytest.raises(AnnotationError, match="not found"):
        read_table(tmp_path / "missing.txt")
    with pytest.raises(AnnotationError, match=r"e8.txt:2: 8 values but line 1 has 4"):
        read_table(write(tmp_path / "e8.txt", "1,2,3,4\n1,2,3,4,5,6,7,8\n"), (4, 8))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=6),
    sep=st.sampled_from([",", "\t", " ", ", ", "\t "]),
)
def test_parser_roundtrip_property(tmp_path_factory, rows, sep):
    p = tmp_path_factory.mktemp("rt") / "gt.txt"
    p.write_text("\n".join(sep.join(repr(v) for v in r) for r in rows) + "\n")
    np.testing.assert_array_equal(read_table(p), np.array(rows))


def test_flags_one_per_line_or_comma_line(tmp_path):
    assert read_flags(write(tmp_path / "a.label", "0\n1\n1\n"), 3).tolist() == [0, 1, 1]
    assert read_flags(write(tmp_path / "b.txt", "0,1,0,1"), 4).tolist() == [0, 1, 0, 1]
    with pytest.raises(AnnotationError, match="3 labels but the sequence has 4"):
        read_flags(tmp_path / "a.label", 4)
    with pytest.raises(AnnotationError, match=r"c.label:2: labels must be integers"):
        read_flags(write(tmp_path / "c.label", "0\n0.5\n"), 2)


def test_vot_regions_rect_polygon_mask_and_empty(tmp_path):
    box, poly = parse_region("10,20,30,40")
    np.testing.assert_array_equal(box, [10, 20, 30, 40])
    np.testing.assert_array_equal(poly, [10, 20, 40, 20, 40, 60, 10, 60])
    rot = "0,10,10,0,20,10,10,20"  # a diamond: area 200 in a 20x20 min-max box
    box, poly = parse_region(rot)
    np.testing.assert_allclose(box, polygon_to_xywh(np.array([0, 10, 10, 0, 20, 10, 10, 20.0])))
    np.testing.assert_allclose(box[2] * box[3], 200.0)
    # mask patch at (2,1) of 4x3: 5 zeros, 2 ones -> pixels (row 1, cols 1-2)
    np.testing.assert_array_equal(mask_rle_to_box("m2,1,4,3,5,2,5", "f:1"), [3, 2, 2, 1])
    # a run wrapping over rows covers every column: 3 zeros then 6 ones over rows 0..2
    np.testing.assert_array_equal(mask_rle_to_box("m2,1,4,3,3,6,3", "f:1"), [2, 1, 4, 3])
    assert np.isnan(mask_rle_to_box("m0,0,4,3,12", "f:1")).all()
    assert np.isnan(parse_region("0")[0]).all()
    with pytest.raises(AnnotationError, match="f:3: mask run lengths cover 20 pixels"):
        mask_rle_to_box("m0,0,4,3,10,10", "f:3")
    with pytest.raises(AnnotationError, match="found 5 values"):
        parse_region("1,2,3,4,5", "f:1")
    p = write(tmp_path / "groundtruth.txt", "1,2,3,4\n0\nm0,0,4,3,5,2,5\n")
    boxes, polys = read_regions(p)
    assert boxes.shape == (3, 4) and polys.shape == (3, 8)
    assert np.isnan(boxes[1]).all() and np.isnan(polys[1]).all()
    np.testing.assert_array_equal(boxes[2], [1, 1, 2, 1])


# ------------------------------------------------------------------------------------------------ registry


def test_registry_names_and_unknown():
    for n in ["folder", "otb", "otb2013", "otb2015", "tc128", "uav123", "uav123_10fps", "uav20l", "dtb70", "uavdt",
              "lasot", "got10k", "vot", "tld"]:
        assert n in DATASETS and n in DATASET_NAMES
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        build_dataset("nope", ".")
    assert len(OTB2013_SEQUENCES) == 51 and len(OTB2015_SEQUENCES) == 100
    assert len(set(OTB2015_SEQUENCES)) == 100 and set(OTB2013_SEQUENCES) <= set(OTB2015_SEQUENCES)
    assert {"Jogging.1", "Jogging.2", "Skating2.1", "Skating2.2", "Human4"} <= set(OTB2015_SEQUENCES)


def test_missing_root_is_a_clear_error(tmp_path):
    for name in DATASET_NAMES:
        with pytest.raises(DatasetError, match="expected"):
            build_dataset(name, tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------ real layouts


@pytest.fixture(scope="module")
def formats(request):
    shared = request.getfixturevalue("shared_data")
    return shared / "formats"


def test_otb_real_crossing_and_diving_range(formats, shared_data):
    ds = build_dataset("otb", formats / "otb")
    assert "Crossing" in ds.names and "Diving" in ds.names
    cr = ds["Crossing"]
    raw = raw_rows(formats / "otb/Crossing/groundtruth_rect.txt")
    assert len(cr) == len(raw) == 120 and cr.dataset == "otb"
    np.testing.assert_array_equal(cr.boxes[0], [205 - 1, 151 - 1, 17, 50])  # raw "205\t151\t17\t50"
    np.testing.assert_array_equal(cr.boxes[-1], np.array(raw[-1]) - [1, 1, 0, 0])
    for seq in ds:  # every shipped OTB sequence: rows match frames, 1-based -> 0-based
        raw = raw_rows(formats / "otb" / seq.name / "groundtruth_rect.txt")
        assert len(seq) == len(raw) and len(seq.frames.paths) == len(raw)
        np.testing.assert_array_equal(seq.boxes[0], np.array(raw[0]) - [1, 1, 0, 0])
    dv = ds["Diving"]
    assert len(dv) == 215 and len(list((formats / "otb/Diving/img").glob("*.jpg"))) == 231
    assert dv.frames.paths[0].name == "0001.jpg" and dv.frames.paths[-1].name == "0215.jpg"
    assert dv.meta["frame_range"] == (1, 215)
    np.testing.assert_array_equal(dv.boxes[0], [176, 50, 21, 129])  # raw "177,51,21,129"
    meta = json.loads((shared_data / "sequences/otb/Diving/meta.json").read_text())
    assert dv.image_size == (meta["width"], meta["height"])
    assert dv.frames[0].shape == (meta["height"], meta["width"], 3)
    # without the range, the 231 images would not match 215 rows: the reader says so
    with pytest.raises(DatasetError, match="215 annotation rows .* 231 images"):
        build_dataset("otb", formats / "otb", frame_ranges={"Diving": (1, 231)})["Diving"]
    with pytest.raises(DatasetError, match="missing under"):
        build_dataset("otb2015", formats / "otb")
    part = build_dataset("otb", formats / "otb", version="otb2013", allow_missing=True)
    assert part.names == ["Crossing"]  # Diving is OTB-2015 only


def test_vot2014_car_polygons_and_tags(formats):
    ds = build_dataset("vot", formats / "vot2014")
    assert ds.names == ["car"]
    car = ds["car"]
    folder = formats / "vot2014/car"
    raw = raw_rows(folder / "groundtruth.txt")
    assert len(car) == len(raw) == 252 and car.polygons.shape == (252, 8)
    np.testing.assert_array_equal(car.polygons[0], raw[0])
    np.testing.assert_allclose(car.boxes, polygon_to_xywh(np.array(raw)))
    np.testing.assert_allclose(car.boxes[0], [6, 166, 43, 27])  # the axis-aligned rectangle 6..49 x 166..193
    assert set(car.tags) == {"camera_motion", "illum_change", "motion_change", "occlusion", "size_change"}
    for key, tag in car.tags.items():
        assert tag.sum() == sum(int(v) for v in (folder / f"{key}.label").read_text().split())
    assert car.tags["occlusion"].sum() == 24
    assert car.meta["values"]["practical"].shape == (252,)
    assert car.image_size == (640, 272) and car.frames[0].shape == (272, 640, 3)


def test_uav123_10fps_official_layout(formats):
    ds = build_dataset("uav123_10fps", formats / "UAV123_10fps")
    assert ds.names == ["wakeboard7"] and ds.version == "UAV123_10fps"
    s = ds["wakeboard7"]
    assert len(s) == 67 and s.frames.fps == 10.0
    np.testing.assert_array_equal(s.boxes[0], [622, 298, 11, 38])  # raw "623,299,11,38"
    assert s.image_size == (1280, 720)
    with pytest.raises(DatasetError, match="anno/UAV123"):
        build_dataset("uav123", formats / "UAV123_10fps")  # the 30 fps annotations are not there


def test_uav123_version_autodetect(formats):
    from gradtrack.data.readers import UAV123Dataset

    assert UAV123Dataset(formats / "UAV123_10fps").version == "UAV123_10fps"


def test_dtb70_surfing06(formats):
    s = build_dataset("dtb70", formats / "dtb70")["Surfing06"]
    assert len(s) == 106
    np.testing.assert_array_equal(s.boxes[:2], [[724, 303, 41, 60], [721.5, 307, 41, 60]])
    assert s.image_size == (1280, 720)


def test_tld_corners_nan_rows_and_video(formats):
    ds = build_dataset("tld", formats / "tld")
    assert ds.names == ["01_david", "03_pedestrian1", "04_pedestrian2", "05_pedestrian3", "10_panda"]
    d = ds["01_david"]
    assert len(d) == 761
    np.testing.assert_array_equal(d.boxes[0], [164, 92, 216 - 165 + 1, 147 - 93 + 1])  # raw corners 165,93,216,147
    p2 = ds["04_pedestrian2"]
    raw = (formats / "tld/04_pedestrian2/gt.txt").read_text().splitlines()
    nan_lines = [i for i, line in enumerate(raw) if line.lower().startswith("nan")]
    assert len(nan_lines) == 72 and nan_lines[0] == 33
    assert np.flatnonzero(p2.absent).tolist() == nan_lines
    assert np.isnan(p2.boxes[33]).all() and not np.isnan(p2.boxes[32]).any()
    x1, y1, x2, y2 = (float(v) for v in raw[32].split(","))
    np.testing.assert_allclose(p2.boxes[32], [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])
    assert len(ds["10_panda"]) == 3000
    ped = ds["03_pedestrian1"]
    assert ped.image_size == (320, 240)
    assert ped.frames[0].shape == (240, 320, 3)  # decodes; also checks the video has 140 frames


# ------------------------------------------------------------------------------------------------ folder


@pytest.fixture(scope="module")
def folder_ds(request):
    shared = request.getfixturevalue("shared_data")
    return build_dataset("folder", shared / "sequences")


# The pool after the December 2026 additions (../shared/data/README.md), counted from the files:
# 110 sequence folders, 47,277 groundtruth rows; splits.json: train 94 / 42,868 frames, val 16 / 4,409.
POOL_SEQUENCES, POOL_FRAMES = 110, 47277
SPLIT_SIZES = {"train": (94, 42868), "val": (16, 4409)}
POOL_KINDS = {"davis": 44, "dtb70": 4, "mot360": 1, "otb": 6, "ptb-tir": 1, "tld": 7, "uav123": 23, "uavdt": 5,
              "vot": 16, "vot-tir": 2, "votlt": 1}


def test_folder_reads_all_sequences_of_the_pool(folder_ds, shared_data):
    assert len(folder_ds) == POOL_SEQUENCES
    kinds: dict[str, int] = {}
    for name in folder_ds.names:
        kinds[name.split("/")[0]] = kinds.get(name.split("/")[0], 0) + 1
    assert kinds == POOL_KINDS
    for name in ("otb/Crossing", "uav123/car16_2", "davis/bmx-bumps", "vot-tir/horse", "ptb-tir/airplane",
                 "tld/08_volkswagen", "tld/09_carchase", "mot360/office_woman", "votlt/car9", "otb/Basketball"):
        assert name in folder_ds.names, name
    total = 0
    for seq in folder_ds:
        meta = json.loads((shared_data / "sequences" / seq.name / "meta.json").read_text())
        assert len(seq) == meta["frames"] and seq.dataset == meta["dataset"]
        w, h = seq.image_size  # opens the video and decodes only its first frame
        # odd sizes were padded by one pixel at the right/bottom when encoding
        assert (w, h) == (meta["width"] + meta["width"] % 2, meta["height"] + meta["height"] % 2), seq.name
        assert seq.frames.fps == meta["fps"]
        total += len(seq)
    assert total == POOL_FRAMES


def test_folder_every_groundtruth_row_and_absent_frame(folder_ds, shared_data):
    """Every sequence's groundtruth.txt, read independently of the reader: same rows, ``nan`` rows are the
    absent frames (DAVIS empty masks, TLD, UAV123 out-of-view), frame 0 always has a box."""
    absent_total = 0
    for seq in folder_ds:
        raw = [line for line in (shared_data / "sequences" / seq.name / "groundtruth.txt").read_text().splitlines()
               if line.strip()]
        nan_rows = [i for i, line in enumerate(raw) if "nan" in line.lower()]
        assert len(seq.boxes) == len(raw), seq.name
        assert np.flatnonzero(seq.absent).tolist() == nan_rows, seq.name
        assert np.isnan(seq.boxes[nan_rows]).all() and not np.isnan(np.delete(seq.boxes, nan_rows, 0)).any(), seq.name
        assert 0 not in nan_rows, seq.name
        ok = ~seq.absent
        assert (seq.boxes[ok, 2:] > 0).all(), seq.name
        first = [float(v) for v in raw[0].replace("\t", ",").replace(" ", ",").split(",") if v]
        shift = 1.0 if seq.meta["one_based"] else 0.0
        np.testing.assert_allclose(seq.boxes[0], np.array(first) - [shift, shift, 0, 0], err_msg=seq.name)
        absent_total += len(nan_rows)
    # MANIFEST-added-2026-12.md: DAVIS bmx-bumps 14 / surf 1, TLD volkswagen 3435 / carchase 1268
    assert int(folder_ds["davis/bmx-bumps"].absent.sum()) == 14 and int(folder_ds["davis/surf"].absent.sum()) == 1
    assert int(folder_ds["tld/08_volkswagen"].absent.sum()) == 3435
    assert int(folder_ds["tld/09_carchase"].absent.sum()) == 1268
    assert absent_total == 5177
    # the 1-based OTB-style sources are shifted, the others (DAVIS, TLD, VOT, thermal, mot360) are not
    assert folder_ds["otb/Basketball"].meta["one_based"] is True and folder_ds["uav123/car14"].meta["one_based"] is True
    for name in ("davis/bear", "tld/09_carchase", "vot/book", "vot-tir/horse", "ptb-tir/airplane",
                 "mot360/office_woman", "votlt/car9"):
        assert folder_ds[name].meta["one_based"] is False, name


@pytest.mark.parametrize("name", ["davis/bmx-bumps", "vot-tir/horse", "ptb-tir/airplane", "mot360/office_woman",
                                  "votlt/car9", "tld/09_carchase"])
def test_folder_decodes_first_and_last_frame_of_new_kinds(shared_data, name):
    """First and last frame of a few of the new kinds (DAVIS with nan rows, thermal, mot360, the long-term
    aerial car, the longest TLD video at 9,928 frames with a padded odd height): the last-frame access
    checks the video's real frame count against the annotation rows."""
    ds = build_dataset("folder", shared_data / "sequences")
    seq = ds[name]
    meta = json.loads((shared_data / "sequences" / name / "meta.json").read_text())
    h, w = meta["height"] + meta["height"] % 2, meta["width"] + meta["width"] % 2
    first, last = seq.frames[0], seq.frames[len(seq) - 1]
    assert first.shape == last.shape == (h, w, 3) and first.dtype == np.uint8
    assert first.std() > 1.0 and last.std() > 1.0  # real picture content, not a blank frame
    assert not np.array_equal(first, last)
    with pytest.raises(IndexError):
        seq.frames[len(seq)]


def test_folder_split_and_frame_decoding(folder_ds, shared_data):
    root = shared_data / "sequences"
    train = build_dataset("folder", root, split="train")
    val = build_dataset("folder", root, split="val")
    splits = json.loads((shared_data / "splits.json").read_text())
    for ds, key in ((train, "train"), (val, "val")):
        assert ds.names == splits[key]
        assert (len(ds), sum(len(ds[n].boxes) for n in ds.names)) == SPLIT_SIZES[key], key
    assert not set(train.names) & set(val.names) and set(train.names) | set(val.names) == set(folder_ds.names)
    assert "otb/Crossing" in val.names and "davis/soapbox" in val.names and "vot-tir/horse" in val.names
    assert "tld/08_volkswagen" in train.names and "tld/09_carchase" in train.names
    s = val["tld/04_pedestrian2"]
    assert s.frames[0].shape == (240, 320, 3)
    with pytest.raises(DatasetError, match="no split 'test'"):
        build_dataset("folder", root, split="test")


def test_folder_one_based_auto_matches_benchmark_readers(folder_ds, formats):
    # OTB-derived compact files are 1-based (meta.json says so): the same boxes as the OTB reader
    np.testing.assert_array_equal(folder_ds["otb/Diving"].boxes, build_dataset("otb", formats / "otb")["Diving"].boxes)
    assert folder_ds["otb/Diving"].meta["one_based"] is True
    # VOT: the compact boxes are the rounded area-preserving boxes of the polygons
    car = build_dataset("vot", formats / "vot2014")["car"]
    assert folder_ds["vot/car"].meta["one_based"] is False
    np.testing.assert_allclose(folder_ds["vot/car"].boxes, car.boxes, atol=1.0)
    # TLD: the compact file kept x1,y1 and used w = x2 - x1; the TLD reader is 0-based with inclusive corners
    tld = build_dataset("tld", formats / "tld")["04_pedestrian2"]
    fb = folder_ds["tld/04_pedestrian2"].boxes
    assert (np.isnan(fb).all(1) == tld.absent).all()
    ok = ~tld.absent
    np.testing.assert_allclose(tld.boxes[ok, :2], fb[ok, :2] - 1, atol=1e-3)
    np.testing.assert_allclose(tld.boxes[ok, 2:], fb[ok, 2:] + 1, atol=1e-3)


def test_folder_fake_layout_images_video_meta_and_errors(tmp_path):
    root = tmp_path / "pool"
    write_images(root / "a" / "s1" / "img", range(1, 4))
    write(root / "a" / "s1" / "groundtruth.txt", "1,1,4,4\n2,2,4,4\nnan,nan,nan,nan\n")
    write_images(root / "b", range(1, 3))
    write(root / "b" / "groundtruth.txt", "0 0 3 3\n1 1 3 3\n")
    write(root / "b" / "meta.json", json.dumps({"frames": 2, "fps": 12, "one_based": True, "dataset": "mine"}))
    write(root / "splits.json", json.dumps({"train": ["a/s1"], "val": ["b"]}))
    ds = build_dataset("folder", root)
    assert ds.names == ["a/s1", "b"]
    assert ds["a/s1"].absent.tolist() == [False, False, True] and ds["a/s1"].meta["one_based"] is False
    b = ds["b"]
    np.testing.assert_array_equal(b.boxes[0], [-1, -1, 3, 3])
    assert b.dataset == "mine" and b.frames.fps == 12 and b.image_size == (10, 8)
    assert build_dataset("folder", root, split="val").names == ["b"]
    assert build_dataset("folder", root, one_based=False)["b"].boxes[0].tolist() == [0, 0, 3, 3]
    write(root / "splits2.json", json.dumps({"train": ["a/s1", "zz/missing"]}))
    with pytest.raises(DatasetError, match="zz/missing"):
        build_dataset("folder", root, split="train", splits=root / "splits2.json")
    write(root / "b" / "meta.json", json.dumps({"frames": 5}))
    with pytest.raises(DatasetError, match="says 5 frames but .* has 2 rows"):
        build_dataset("folder", root)["b"]
    write(root / "c" / "groundtruth.txt", "1,1,1,1\n")
    with pytest.raises(DatasetError, match="no video and no images"):
        build_dataset("folder", root)
    with pytest.raises(DatasetError, match="no sequence folders"):
        build_dataset("folder", tmp_path / "pool" / "a" / "s1" / "img")


def test_sequences_pickle_without_decoders(folder_ds):
    import pickle

    s = folder_ds["tld/03_pedestrian1"]
    s.image_size  # opens the video
    t = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(t.boxes, s.boxes)
    assert len(t.frames) == 140 and t.image_size == (320, 240)


def test_folder_video_count_mismatch_is_detected_on_access(tmp_path):
    from gradtrack.io.frames import write_video

    folder = tmp_path / "v" / "clip"
    folder.mkdir(parents=True)
    write_video(folder / "video.avi", [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(3)], fps=5, fourcc="MJPG")
    write(folder / "groundtruth.txt", "1,1,4,4\n" * 4)
    s = build_dataset("folder", tmp_path / "v")["clip"]
    assert len(s) == 4 and s.image_size == (16, 16)
    with pytest.raises(SequenceError, match="has 3 frames but the annotations have 4 rows"):
        s.frames[0]


# ------------------------------------------------------------------------------------------------ fake layouts


def test_otb_multi_target_delimiters_ranges_and_layout_errors(tmp_path):
    root = tmp_path / "otb"
    write_images(root / "Jogging" / "img", range(1, 4))
    write(root / "Jogging" / "groundtruth_rect.1.txt", "11,21,5,6\n12\t22\t5\t6\n13 23 5 6\n")
    write(root / "Jogging" / "groundtruth_rect.2.txt", "31,41,7,8\n32,42,7,8\n33,43,7,8\n")
    write_images(root / "Human4" / "img", range(1, 3))
    write(root / "Human4" / "groundtruth_rect.2.txt", "1,1,2,2\n2,2,2,2\n")
    write_images(root / "Part" / "img", range(1, 6))
    write(root / "Part" / "groundtruth_rect.txt", "5,5,2,2\n6,6,2,2\n7,7,2,2\n")
    (root / "notes").mkdir()  # unrelated folders are ignored
    ds = build_dataset("otb", root, frame_ranges={"Part": (2, 4)})
    assert ds.names == ["Human4", "Jogging.1", "Jogging.2", "Part"]
    j1, j2 = ds["Jogging.1"], ds["Jogging.2"]
    np.testing.assert_array_equal(j1.boxes, [[10, 20, 5, 6], [11, 21, 5, 6], [12, 22, 5, 6]])
    np.testing.assert_array_equal(j2.boxes[0], [30, 40, 7, 8])
    assert j1.frames.paths == j2.frames.paths
    part = ds["Part"]
    assert [p.name for p in part.frames.paths] == ["0002.png", "0003.png", "0004.png"]
    assert part.frames[0][0, 0, 0] == 2
    with pytest.raises(DatasetError, match=r"3 annotation rows in groundtruth_rect.txt but 5 images"):
        build_dataset("otb", root)["Part"]
    with pytest.raises(DatasetError, match="image number 6 is missing"):
        build_dataset("otb", root, frame_ranges={"Part": (4, 6)})["Part"]
    att = write(tmp_path / "att" / "Jogging.txt", "1 0 1 1 0 0 0 1 0 0 0\n").parent
    withatt = build_dataset("otb", root, frame_ranges={"Part": (2, 4)}, attributes=att)
    assert withatt["Jogging.2"].attributes == ["IV", "OCC", "DEF", "OPR"] and withatt["Human4"].attributes == []
    assert build_dataset("otb", root, attributes={"Human4": ["SV"]})["Human4"].attributes == ["SV"]
    write(tmp_path / "att" / "Human4.txt", "1 0 1\n")
    with pytest.raises(AnnotationError, match="Human4.txt:1: expected 11 values"):
        build_dataset("otb", root, frame_ranges={"Part": (2, 4)}, attributes=att)["Human4"]
    ver = build_dataset("otb2013", root, allow_missing=True)
    assert ver.names == ["Jogging.1", "Jogging.2"]
    with pytest.raises(DatasetError, match=r"49 of the 51 sequences of otb2013 are missing"):
        build_dataset("otb2013", root)
    write(root / "Broken" / "groundtruth_rect.txt", "1,1,1,1\n")
    with pytest.raises(DatasetError, match=r"Broken has groundtruth_rect.txt but no img/ folder"):
        build_dataset("otb", root)
    empty = tmp_path / "empty"
    (empty / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no sequences under .*holds: x/.*expected <root>/<Sequence>/img/0001.jpg"):
        build_dataset("otb", empty)


def test_otb_malformed_file_reports_line(tmp_path):
    root = tmp_path / "otb"
    write_images(root / "Bad" / "img", range(1, 3))
    gt = write(root / "Bad" / "groundtruth_rect.txt", "1,1,2,2\n1,1,2\n")
    with pytest.raises(AnnotationError, match=f"{gt}:2: expected 4 values, found 3"):
        build_dataset("otb", root)["Bad"]


def test_tc128_frame_ranges(tmp_path):
    root = tmp_path / "tc"
    write_images(root / "Ball_ce1" / "img", range(1, 7))
    write(root / "Ball_ce1" / "Ball_ce1_gt.txt", "10,10,4,4\n11,11,4,4\n12,12,4,4\n")
    write(root / "Ball_ce1" / "Ball_ce1_frames.txt", "2,4\n")
    s = build_dataset("tc128", root)["Ball_ce1"]
    assert [p.name for p in s.frames.paths] == ["0002.png", "0003.png", "0004.png"]
    np.testing.assert_array_equal(s.boxes[0], [9, 9, 4, 4])
    write(root / "Ball_ce1" / "Ball_ce1_frames.txt", "2,5\n")
    with pytest.raises(DatasetError, match="3 annotation rows but the range 2-5 has 4 frames"):
        build_dataset("tc128", root)["Ball_ce1"]
    (root / "Ball_ce1" / "Ball_ce1_frames.txt").unlink()
    with pytest.raises(DatasetError, match="frame range of Ball_ce1"):
        build_dataset("tc128", root)


def test_uav123_builtin_subsequence_table(tmp_path):
    t10 = UAV123_SUBSEQUENCES["UAV123_10fps"]
    assert t10["car16_2"] == ("car16", 139, 665) and t10["group1_3"] == ("group1", 839, 1309)
    assert UAV123_SUBSEQUENCES["UAV123"]["bird1_2"] == ("bird1", 775, 1477)
    assert all(name.rsplit("_", 1)[0] == folder for name, (folder, _, _) in t10.items())
    # person12_1 at 10 fps is frames 1..201 of data_seq/UAV123_10fps/person12 (which holds more frames)
    root = tmp_path / "uav"
    write_images(root / "data_seq/UAV123_10fps/person12", range(1, 206), fmt="{:06d}.png", size=(4, 4))
    rows = ["NaN,NaN,NaN,NaN" if k in (5, 6) else f"{k},{k},3,3" for k in range(1, 202)]
    write(root / "anno/UAV123_10fps/person12_1.txt", "\n".join(rows) + "\n")
    s = build_dataset("uav123_10fps", root)["person12_1"]
    assert len(s) == 201 and s.frames.paths[-1].name == "000201.png" and s.meta["frame_range"] == (1, 201)
    assert np.flatnonzero(s.absent).tolist() == [4, 5]
    np.testing.assert_array_equal(s.boxes[0], [0, 0, 3, 3])


def test_uav123_subsequence_table_file_and_errors(tmp_path):
    root = tmp_path / "uav"
    write_images(root / "data_seq/UAV123/car1", range(1, 11), fmt="{:06d}.png")
    write_images(root / "data_seq/UAV123/bike1", range(1, 3), fmt="{:06d}.png")
    write(root / "anno/UAV123/bike1.txt", "1,1,2,2\n2,2,2,2\n")
    write(root / "anno/UAV123/car1_1.txt", "1,1,2,2\n" * 4)
    write(root / "anno/UAV123/car1_2.txt", "1,1,2,2\n" * 7)
    table = write(tmp_path / "table.txt", "# name folder start end\ncar1_1 car1 1 4\ncar1_2 car1 4 10  # overlap\n")
    ds = build_dataset("uav123", root, subsequences=table)
    assert ds.names == ["bike1", "car1_1", "car1_2"]
    c2 = ds["car1_2"]
    assert len(c2) == 7 and c2.frames.paths[0].name == "000004.png" and c2.frames.fps == 30.0
    assert len(ds["bike1"]) == 2
    # the built-in 30 fps table says car1_1 is frames 1..751: 4 annotation rows do not match
    with pytest.raises(DatasetError, match="frames 1-751 are needed but image number 11 is missing"):
        build_dataset("uav123", root)["car1_1"]
    write(root / "anno/UAV123/boat1.txt", "1,1,2,2\n")
    with pytest.raises(DatasetError, match="no frame folder .*boat1.*not in the sub-sequence table"):
        build_dataset("uav123", root, subsequences=table)
    bad = write(tmp_path / "bad.txt", "car1_1 car1 1\n")
    with pytest.raises(AnnotationError, match=f"{bad}:1: expected '<name> <folder> <start> <end>'"):
        build_dataset("uav123", root, subsequences=bad)
    with pytest.raises(DatasetError, match="no anno/ folder"):
        build_dataset("uav123", root / "data_seq")


def test_uavdt_layouts(tmp_path):
    root = tmp_path / "uavdt"
    write_images(root / "UAV-benchmark-S/S0101", range(1, 4), fmt="img{:06d}.png")
    write(root / "UAV-benchmark-SOT_v1.0/anno/S0101_gt.txt", "10,20,5,5\n11,21,5,5\n12,22,5,5\n")
    write(root / "UAV-benchmark-SOT_v1.0/anno/S0101_att.txt", "1,0,0,1,0,0,0,1\n")
    write_images(root / "S0202/img", range(1, 3), fmt="img{:06d}.png")
    write(root / "S0202/S0202_gt.txt", "1,1,3,3\n2,2,3,3\n")
    ds = build_dataset("uavdt", root)
    assert ds.names == ["S0101", "S0202"]
    s = ds["S0101"]
    np.testing.assert_array_equal(s.boxes[0], [9, 19, 5, 5])
    assert s.meta["attribute_flags"] == [1, 0, 0, 1, 0, 0, 0, 1] and len(s.frames) == 3
    assert len(ds["S0202"]) == 2
    write(root / "anno/S0303_gt.txt", "1,1,1,1\n")
    with pytest.raises(DatasetError, match="S0303_gt.txt has no frame folder"):
        build_dataset("uavdt", root)


def test_dtb70_fake_mismatch(tmp_path):
    write_images(tmp_path / "d/Car1/img", range(1, 3), fmt="{:05d}.png")
    write(tmp_path / "d/Car1/groundtruth_rect.txt", "1,1,2,2\n")
    with pytest.raises(DatasetError, match="1 annotation rows but 2 images"):
        build_dataset("dtb70", tmp_path / "d")["Car1"]


def _lasot(root: Path) -> Path:
    for name, n in (("airplane-1", 4), ("airplane-2", 2)):
        seq = root / "airplane" / name
        write_images(seq / "img", range(1, n + 1), fmt="{:08d}.png")
        write(seq / "groundtruth.txt", "".join(f"{10 + k},{20 + k},30,40\n" for k in range(n)))
        write(seq / "full_occlusion.txt", ",".join(["0"] * (n - 2) + ["1", "0"]))
        write(seq / "out_of_view.txt", ",".join(["0"] * (n - 1) + ["1"]))
        write(seq / "nlp.txt", f"white airplane {name}\n")
    write(root / "testing_set.txt", "airplane-2\n")
    return root


def test_lasot_flags_nlp_and_split(tmp_path):
    root = _lasot(tmp_path / "lasot")
    ds = build_dataset("lasot", root)
    assert ds.names == ["airplane-1", "airplane-2"]
    s = ds["airplane-1"]
    np.testing.assert_array_equal(s.boxes[1], [10, 20, 30, 40])
    assert s.tags["full_occlusion"].tolist() == [False, False, True, False]
    assert s.tags["out_of_view"].tolist() == [False, False, False, True]
    assert s.absent.tolist() == [False, False, True, True]
    assert s.meta["nlp"] == "white airplane airplane-1" and s.meta["object_class"] == "airplane"
    assert build_dataset("lasot", root, split="test").names == ["airplane-2"]
    assert build_dataset("lasot", root, split="train").names == ["airplane-1"]
    write(root / "airplane/airplane-1/out_of_view.txt", "0,0,1\n")
    with pytest.raises(AnnotationError, match="3 out_of_view flags but the sequence has 4 frames"):
        build_dataset("lasot", root)["airplane-1"]
    (root / "testing_set.txt").unlink()
    with pytest.raises(DatasetError, match="testing_set.txt"):
        build_dataset("lasot", root, split="test")


def _got10k(root: Path) -> Path:
    seq = root / "val" / "GOT-10k_Val_000001"
    write_images(seq, range(1, 5), fmt="{:08d}.png")
    write(seq / "groundtruth.txt", "1,2,3,4\n2,3,3,4\n3,4,3,4\n4,5,3,4\n")
    write(seq / "absence.label", "0\n0\n1\n0\n")
    write(seq / "cover.label", "8\n5\n0\n3\n")
    write(seq / "cut_by_image.label", "0\n1\n0\n0\n")
    write(seq / "meta_info.ini", "[METAINFO]\nobject_class: sheep\nmotion_class: walking\nanno_fps: 10Hz\n")
    write(root / "val" / "list.txt", "GOT-10k_Val_000001\n")
    tseq = root / "test" / "GOT-10k_Test_000001"
    write_images(tseq, range(1, 4), fmt="{:08d}.png")
    write(tseq / "groundtruth.txt", "5,6,7,8\n")
    write(root / "test" / "list.txt", "GOT-10k_Test_000001\n")
    return root


def test_got10k_val_labels_and_test_first_box(tmp_path):
    root = _got10k(tmp_path / "got")
    val = build_dataset("got10k", root, subset="val")
    s = val["GOT-10k_Val_000001"]
    np.testing.assert_array_equal(s.boxes[0], [1, 2, 3, 4])
    assert s.absent.tolist() == [False, False, True, False]
    assert s.cover.tolist() == [8, 5, 0, 3] and s.tags["cut_by_image"].tolist() == [False, True, False, False]
    assert s.meta["object_class"] == "sheep" and s.frames.fps == 10
    assert len(build_dataset("got10k", root / "val")) == 1  # a split folder as root
    t = build_dataset("got10k", root, subset="test")[0]
    assert len(t) == 3 and np.isnan(t.boxes[1:]).all()
    np.testing.assert_array_equal(t.init_box, [5, 6, 7, 8])
    with pytest.raises(DatasetError, match="pass subset="):
        build_dataset("got10k", root)
    write(root / "val" / "list.txt", "GOT-10k_Val_000001\nGOT-10k_Val_000002\n")
    with pytest.raises(DatasetError, match="GOT-10k_Val_000002"):
        build_dataset("got10k", root, subset="val")
    write(root / "val" / "list.txt", "GOT-10k_Val_000001\n")
    write(root / "val/GOT-10k_Val_000001/cover.label", "8\n5\n0\n9\n")
    with pytest.raises(DatasetError, match="0..8"):
        val2 = build_dataset("got10k", root, subset="val")
        val2[0]


def test_vot_fake_color_folder_masks_tags_and_sequence_file(tmp_path):
    root = tmp_path / "vot"
    seq = root / "ball"
    write_images(seq / "color", range(1, 5), fmt="{:08d}.png", size=(12, 10))
    write(seq / "groundtruth.txt", "1,1,4,4\n0,0,4,0,4,4,0,4\n0\nm2,1,4,3,5,2,5\n")
    write(seq / "occlusion.tag", "0\n1\n")  # shorter than the sequence: padded with 0
    write(seq / "sequence", "channels.color=color/%08d.png\nfps=25\nformat=default\n")
    write(root / "list.txt", "ball\n")
    s = build_dataset("vot", root)["ball"]
    assert len(s) == 4 and s.frames.fps == 25 and s.image_size == (12, 10)
    np.testing.assert_array_equal(s.boxes[0], [1, 1, 4, 4])
    np.testing.assert_array_equal(s.boxes[1], [0, 0, 4, 4])
    assert np.isnan(s.boxes[2]).all() and s.absent.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(s.boxes[3], [3, 2, 2, 1])
    assert s.tags["occlusion"].tolist() == [False, True, False, False]
    assert s.meta["sequence_file"]["format"] == "default"
    write(seq / "occlusion.tag", "0\n2\n")
    with pytest.raises(DatasetError, match=r"occlusion.tag:2: tags must be 0 or 1"):
        build_dataset("vot", root)["ball"]
    write(seq / "occlusion.tag", "0\n")
    write(seq / "groundtruth.txt", "1,1,4,4\n1,2,3,4,5\n")
    with pytest.raises(AnnotationError, match=r"groundtruth.txt:2: a VOT region"):
        build_dataset("vot", root)["ball"]
    write(root / "list.txt", "ball\nmissing\n")
    with pytest.raises(DatasetError, match="missing"):
        build_dataset("vot", root)


def test_tld_fake_with_images(tmp_path):
    root = tmp_path / "tld"
    write_images(root / "07_motocross", range(1, 4), fmt="{:05d}.png")
    write(root / "07_motocross/gt.txt", "11,21,20,40\nNaN,NaN,NaN,NaN\n12,22,21,41\n")
    s = build_dataset("tld", root)["07_motocross"]
    np.testing.assert_array_equal(s.boxes[0], [10, 20, 10, 20])
    assert s.absent.tolist() == [False, True, False]
    write(root / "08_empty/gt.txt", "1,1,2,2\n")
    with pytest.raises(DatasetError, match="no video"):
        build_dataset("tld", root)


def test_in_memory_dataset_by_index_and_name_and_unique_names():
    import numpy as np

    from gradtrack.data.sequence import DatasetError, InMemoryDataset, Sequence
    from gradtrack.io import ArrayFrames

    def seq(name):
        frames = ArrayFrames([np.zeros((8, 8, 3), np.uint8)] * 2)
        return Sequence(name, frames, np.array([[1.0, 1, 4, 4], [2, 2, 4, 4]]))

    ds = InMemoryDataset([seq("a"), seq("b")])
    assert len(ds) == 2 and ds.names == ["a", "b"] and ds["b"].name == "b" and ds[0].name == "a"
    with pytest.raises(DatasetError, match="unique.*'a'"):
        InMemoryDataset([seq("a"), seq("a")])
