"""Readers for training sources: ILSVRC2015-VID, TrackingNet, and the mask datasets YouTube-VOS, DAVIS, COCO.

Every layout is written by the tests into tmp_path: tiny images, XML / JSON / text annotations and palette
PNGs (written with Pillow, which matplotlib installs).  Expected boxes and masks are worked out by hand in
the comments next to them.
"""
from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gradtrack.data.masks import ArrayMasks, LoadedMasks, MaskSequence, mask_to_box
from gradtrack.data.readers import DATASETS, AnnotationError, DatasetError, build_dataset
from gradtrack.data.readers.masks import (
    decode_rle, object_mask, polygons_to_mask, read_label_png, rle_string_to_counts,
)
from gradtrack.data.readers.vid import parse_vid_xml
from gradtrack.data.sequence import SequenceError
from gradtrack.io.frames import ArrayFrames

# ------------------------------------------------------------------------------------------------ helpers


def write_image(path: Path, value: int, size=(20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size[1], size[0], 3), value, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_palette(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [200] * (256 * 3 - 12))
    im.save(path)
    return path


def vid_xml(objects, size=(20, 16)) -> str:
    """objects: (trackid, wnid, xmin, ymin, xmax, ymax, occluded)."""
    parts = [f"<annotation><folder>x</folder><filename>f</filename><size><width>{size[0]}</width>"
             f"<height>{size[1]}</height></size>"]
    for tid, wnid, x1, y1, x2, y2, occ in objects:
        parts.append(f"<object><trackid>{tid}</trackid><name>{wnid}</name><bndbox><xmax>{x2}</xmax><xmin>{x1}</xmin>"
                     f"<ymax>{y2}</ymax><ymin>{y1}</ymin></bndbox><occluded>{occ}</occluded>"
                     f"<generated>0</generated></object>")
    parts.append("</annotation>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ ILSVRC-VID

SNIP = "ILSVRC2015_train_00000000"
BATCH = "ILSVRC2015_VID_train_0000"
# frame -> objects.  Track 0 (a dog) in frames 0, 1, 3 (absent in 2); track 1 (a car) in frames 2..4.
VID_FRAMES = {
    0: [(0, "n02084071", 2, 3, 5, 9, 0)],
    1: [(0, "n02084071", 3, 3, 6, 9, 1)],
    2: [(1, "n02958343", 10, 1, 14, 4, 0)],
    3: [(0, "n02084071", 4, 4, 7, 10, 0), (1, "n02958343", 11, 1, 15, 4, 0)],
    4: [(1, "n02958343", 12, 2, 16, 5, 0)],
}


def make_vid(root: Path, subset: str = "train") -> Path:
    rel = f"{BATCH}/{SNIP}" if subset == "train" else "ILSVRC2015_val_00000000"
    for i, objs in VID_FRAMES.items():
        write_image(root / "ILSVRC2015/Data/VID" / subset / rel / f"{i:06d}.JPEG", 10 * i)
        write(root / "ILSVRC2015/Annotations/VID" / subset / rel / f"{i:06d}.xml", vid_xml(objs))
    return root / "ILSVRC2015"


def test_vid_raw_layout_tracks_boxes_and_absent_frames(tmp_path):
    root = make_vid(tmp_path)
    ds = build_dataset("vid", tmp_path)  # the parent of ILSVRC2015 is accepted too
    assert ds.names == [f"{SNIP}.0", f"{SNIP}.1"]
    dog = ds[f"{SNIP}.0"]
    # frames 0..3; inclusive corners: x = xmin, w = xmax - xmin + 1 (2..5 -> 4 px wide)
    assert len(dog) == 4 and dog.dataset == "vid"
    np.testing.assert_array_equal(dog.boxes[0], [2, 3, 4, 7])
    np.testing.assert_array_equal(dog.boxes[1], [3, 3, 4, 7])
    assert np.isnan(dog.boxes[2]).all() and dog.absent.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(dog.boxes[3], [4, 4, 4, 7])
    assert dog.tags["occluded"].tolist() == [False, True, False, False]
    assert dog.meta["object_class"] == "dog" and dog.meta["wnid"] == "n02084071" and dog.meta["first_frame"] == 0
    car = ds[f"{SNIP}.1"]
    # the car's sequence starts at its first frame (2): its frame 0 is image 000002
    assert len(car) == 3 and car.meta["first_frame"] == 2 and car.meta["object_class"] == "car"
    np.testing.assert_array_equal(car.boxes, [[10, 1, 5, 4], [11, 1, 5, 4], [12, 2, 5, 4]])
    assert abs(int(car.frames[0][0, 0, 0]) - 20) <= 2 and abs(int(car.frames[2][0, 0, 0]) - 40) <= 2
    assert car.image_size == (20, 16)
    ex = build_dataset("vid", root, corners="exclusive")
    np.testing.assert_array_equal(ex[f"{SNIP}.0"].boxes[0], [2, 3, 3, 6])
    assert len(build_dataset("vid", root, min_frames=3)) == 2  # each track is annotated in 3 frames
    with pytest.raises(DatasetError, match="no track .* has at least 4 annotated frames"):
        build_dataset("vid", root, min_frames=4)


def test_vid_val_layout_and_cache(tmp_path):
    root = make_vid(tmp_path, "val")
    cache = tmp_path / "index.json"
    ds = build_dataset("vid", root, subset="val", cache=cache)
    assert ds.names == ["ILSVRC2015_val_00000000.0", "ILSVRC2015_val_00000000.1"]
    assert cache.is_file()
    # with a valid cache the XMLs are not parsed again: breaking one does not matter
    write(root / "Annotations/VID/val/ILSVRC2015_val_00000000/000001.xml", "<annotation><object>")
    again = build_dataset("vid", root, subset="val", cache=cache)
    np.testing.assert_array_equal(again[0].boxes, ds[0].boxes)
    with pytest.raises(AnnotationError, match=r"000001\.xml:1"):
        build_dataset("vid", root, subset="val")


def test_vid_malformed_annotations_name_the_file(tmp_path):
    root = make_vid(tmp_path)
    ann = root / "Annotations/VID/train" / BATCH / SNIP
    good = (ann / "000003.xml").read_text()
    write(ann / "000003.xml", good.replace("<xmin>4</xmin>", ""))
    with pytest.raises(AnnotationError, match=r"000003\.xml: <object> 1 \(trackid 0\): missing <xmin>"):
        build_dataset("vid", root)
    write(ann / "000003.xml", good.replace("<xmax>7</xmax>", "<xmax>1</xmax>"))
    with pytest.raises(AnnotationError, match=r"000003\.xml.*xmax < xmin"):
        build_dataset("vid", root)
    write(ann / "000003.xml", good.replace("<trackid>1</trackid>", "<trackid>0</trackid>"))
    with pytest.raises(AnnotationError, match=r"000003\.xml.*appears twice"):
        build_dataset("vid", root)
    write(ann / "000003.xml", good.replace("<occluded>0</occluded>", "<occluded>yes</occluded>", 1))
    with pytest.raises(AnnotationError, match=r"000003\.xml.*<occluded> must be 0 or 1"):
        build_dataset("vid", root)
    write(ann / "000003.xml", good)
    (ann / "000002.xml").unlink()  # a gap in the numbering would shift every following frame
    with pytest.raises(AnnotationError, match=r"000003\.xml: .*expected 000002\.xml"):
        build_dataset("vid", root)


def test_vid_wrong_layout_and_missing_images(tmp_path):
    with pytest.raises(DatasetError, match=r"Annotations/VID/train.*expected"):
        build_dataset("vid", tmp_path)
    write_image(tmp_path / "cur/Data/VID/train/a/snip/000000.00.crop.x.jpg", 0)
    with pytest.raises(DatasetError, match="curated SiamFC layout .* not supported"):
        build_dataset("vid", tmp_path / "cur")
    root = make_vid(tmp_path)
    with pytest.raises(ValueError, match="subset"):
        build_dataset("vid", root, subset="test")
    (root / "Data/VID/train" / BATCH / SNIP / "000001.JPEG").unlink()
    ds = build_dataset("vid", root)
    with pytest.raises(DatasetError, match=r"no image in .*: 000001"):
        ds[0]
    assert parse_vid_xml(root / "Annotations/VID/train" / BATCH / SNIP / "000000.xml")["size"] == [20, 16]


# ------------------------------------------------------------------------------------------------ TrackingNet


def make_trackingnet(root: Path) -> Path:
    for k in range(12):  # 0.jpg .. 11.jpg: natural order, not lexicographic
        write_image(root / "TRAIN_0/frames/vidA" / f"{k}.jpg", 20 * k)
    write(root / "TRAIN_0/anno/vidA.txt", "".join(f"{k}.5,2,5,{3 + k}\n" for k in range(12)))
    for k in range(3):
        write_image(root / "TRAIN_1/frames/vidB" / f"{k}.jpg", k)
        write_image(root / "TEST/frames/vidT" / f"{k}.jpg", k)
    write(root / "TRAIN_1/anno/vidB.txt", "1,1,4,4\n2,2,4,4\n3,3,4,4\n")
    write(root / "TEST/anno/vidT.txt", "4,5,6,7\n")
    return root


def test_trackingnet_train_and_test(tmp_path):
    root = make_trackingnet(tmp_path)
    ds = build_dataset("trackingnet", root)
    assert ds.names == ["vidA", "vidB"]
    a = ds["vidA"]
    assert len(a) == 12 and a.meta["chunk"] == "TRAIN_0"
    np.testing.assert_array_equal(a.boxes[10], [10.5, 2, 5, 13])  # stored as is, 0-based
    assert abs(int(a.frames[10][0, 0, 0]) - 200) <= 2  # frame 10 is 10.jpg (natural order)
    test = build_dataset("trackingnet", root, subset="test")
    t = test["vidT"]
    np.testing.assert_array_equal(t.init_box, [4, 5, 6, 7])
    assert np.isnan(t.boxes[1:]).all() and len(t) == 3
    assert build_dataset("trackingnet", root, subset=None).names == ["vidA", "vidB", "vidT"]
    assert build_dataset("trackingnet", root, chunks=[1]).names == ["vidB"]
    assert build_dataset("trackingnet", root / "TRAIN_1").names == ["vidB"]  # a chunk folder itself


def test_trackingnet_errors(tmp_path):
    with pytest.raises(DatasetError, match="no TRAIN_<k> folder"):
        build_dataset("trackingnet", tmp_path)
    root = make_trackingnet(tmp_path)
    with pytest.raises(DatasetError, match=r"TRAIN_7 not found"):
        build_dataset("trackingnet", root, chunks=[7])
    write(root / "TRAIN_1/anno/vidB.txt", "1,1,4,4\n2,2,4,4\n")
    with pytest.raises(DatasetError, match=r"2 rows in .*vidB\.txt but 3 images"):
        build_dataset("trackingnet", root)["vidB"]
    write(root / "TRAIN_1/anno/vidB.txt", "1,1,4,4\n2,2,x,4\n3,3,4,4\n")
    with pytest.raises(AnnotationError, match=r"vidB\.txt:2"):
        build_dataset("trackingnet", root)["vidB"]
    write(root / "TRAIN_1/anno/vidC.txt", "1,1,4,4\n")
    with pytest.raises(DatasetError, match=r"no folder in .*frames: vidC"):
        build_dataset("trackingnet", root)


# ------------------------------------------------------------------------------------------------ masks: helpers


def test_mask_to_box_and_mask_sequence():
    m = np.zeros((6, 8), bool)
    m[1:3, 2:7] = True  # rows 1..2, cols 2..6 -> x=2, y=1, w=5, h=2
    np.testing.assert_array_equal(mask_to_box(m), [2, 1, 5, 2])
    assert np.isnan(mask_to_box(np.zeros((3, 3)))).all()
    frames = ArrayFrames([np.zeros((6, 8, 3), np.uint8)] * 2)
    seq = MaskSequence("s", frames, np.array([mask_to_box(m), [np.nan] * 4]), masks=ArrayMasks([m, None]))
    assert seq.mask(1) is None and seq.mask(0).sum() == 10 and seq.absent.tolist() == [False, True]
    with pytest.raises(SequenceError, match="1 masks but 2 frames"):
        MaskSequence("s", frames, np.zeros((2, 4)), masks=ArrayMasks([m]))
    with pytest.raises(SequenceError, match="needs masks"):
        MaskSequence("s", frames, np.zeros((2, 4)))
    with pytest.raises(IndexError):
        seq.masks[2]


def test_rle_compressed_hand_cases():
    # 40 -> groups 8 (with the 'more' bit: 8|32 = 40 -> 'X'), then 1 -> '1'; 3 -> '3'; 2 -> '2'; the fourth run
    # is stored as the difference to the second: 3 - 3 = 0 -> '0'
    assert rle_string_to_counts("X1320") == [40, 3, 2, 3]
    # fourth run 1 stored as 1 - 10 = -9: low 5 bits 23 with the sign bit 0x10 set -> chr(48 + 23) = 'G'
    assert rle_string_to_counts("5:2G") == [5, 10, 2, 1]
    m = decode_rle("X1320", 4, 12)
    # column-major: pixels 40..42 and 45..47 are set; pixel k is (row k % 4, column k // 4)
    expect = np.zeros((4, 12), bool)
    expect[0:3, 10] = True
    expect[1:4, 11] = True
    np.testing.assert_array_equal(m, expect)
    # runs 1 zero, 2 ones, 3 zeros down the columns: column 0 = (0, 1), column 1 = (1, 0), column 2 = (0, 0)
    np.testing.assert_array_equal(decode_rle([1, 2, 3], 2, 3), [[False, True, False], [True, False, False]])
    with pytest.raises(AnnotationError, match="cover 6 pixels but the mask is 2 x 4"):
        decode_rle([1, 2, 3], 2, 4, "ann.json: annotation id 7")
    with pytest.raises(AnnotationError, match="ends inside a value"):
        rle_string_to_counts("X")


def _encode_counts(counts):
    """The test's own encoder, written from the format description (5-bit groups, sign, delta from i-2)."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        while True:
            g = x & 0x1F
            x >>= 5
            more = x != -1 if g & 0x10 else x != 0
            out.append(chr(48 + (g | (0x20 if more else 0))))
            if not more:
                break
    return "".join(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=30))
def test_rle_string_round_trip(counts):
    assert rle_string_to_counts(_encode_counts(counts)) == counts


def test_polygon_rasterisation_by_pixel_centres():
    # square x 2..6, y 2..5: centres c + 0.5 in (2, 6) -> cols 2..5; r + 0.5 in (2, 5) -> rows 2..4
    m = polygons_to_mask([[2, 2, 6, 2, 6, 5, 2, 5]], 8, 10)
    expect = np.zeros((8, 10), bool)
    expect[2:5, 2:6] = True
    np.testing.assert_array_equal(m, expect)
    # a triangle (0,0) (4,0) (0,4): centre (c+.5, r+.5) inside when c + r + 1 < 4 (centres on the
    # hypotenuse, a right edge, are outside)
    tri = polygons_to_mask([[0, 0, 4, 0, 0, 4]], 5, 5)
    rr, cc = np.mgrid[0:5, 0:5]
    np.testing.assert_array_equal(tri, (cc + rr + 1) < 4)
    # centres exactly on edges: x 1.5..3.5 holds centres 1.5 (left edge: in), 2.5, 3.5 (right edge: out);
    # y 0.5..2.5 likewise rows 0, 1.  Two such polygons sharing an edge do not overlap.
    left = polygons_to_mask([[1.5, 0.5, 3.5, 0.5, 3.5, 2.5, 1.5, 2.5]], 4, 6)
    right = polygons_to_mask([[3.5, 0.5, 5.5, 0.5, 5.5, 2.5, 3.5, 2.5]], 4, 6)
    expect = np.zeros((4, 6), bool)
    expect[0:2, 1:3] = True
    np.testing.assert_array_equal(left, expect)
    assert not (left & right).any() and right[0:2, 3:5].all() and right.sum() == 4
    # two polygons: union
    two = polygons_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [5, 5, 7, 5, 7, 7, 5, 7]], 8, 8)
    assert two.sum() == 8 and two[0:2, 0:2].all() and two[5:7, 5:7].all()
    with pytest.raises(AnnotationError, match="polygon 0 needs an even number >= 6"):
        polygons_to_mask([[1, 2, 3, 4]], 5, 5, "f.json")


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 9), st.floats(0, 7), st.floats(0.1, 6), st.floats(0.1, 5))
def test_polygon_rectangle_matches_centre_rule(x, y, w, h):
    m = polygons_to_mask([[x, y, x + w, y, x + w, y + h, x, y + h]], 8, 10)
    cy, cx = np.mgrid[0:8, 0:10] + 0.5
    np.testing.assert_array_equal(m, (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h))


def test_label_png_palette_indices_void_and_binary(tmp_path):
    ids = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    p = write_palette(tmp_path / "a.png", ids)
    # OpenCV would return palette colours here; the ids come back, void 255 becomes background
    np.testing.assert_array_equal(read_label_png(p), [[0, 1, 1], [2, 0, 0]])
    np.testing.assert_array_equal(object_mask(p, 2), [[False, False, False], [True, False, False]])
    b = tmp_path / "b.png"
    cv2.imwrite(str(b), np.array([[0, 255], [255, 0]], np.uint8))  # DAVIS 2016: binary 0/255
    np.testing.assert_array_equal(read_label_png(b), [[0, 1], [1, 0]])
    rgb = tmp_path / "c.png"
    cv2.imwrite(str(rgb), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(AnnotationError, match=r"c\.png: .*palette \(P\) or grayscale"):
        read_label_png(rgb)
    write(tmp_path / "d.png", "not a png")
    with pytest.raises(AnnotationError, match=r"d\.png: not a readable PNG"):
        read_label_png(tmp_path / "d.png")
    lm = LoadedMasks([p, None], functools.partial(object_mask, object_id=1))
    lm2 = pickle.loads(pickle.dumps(lm))
    assert lm2[1] is None and lm2[0].tolist() == [[False, True, True], [False, False, False]]
    assert lm.annotated().tolist() == [True, False]


# ------------------------------------------------------------------------------------------------ YouTube-VOS

H, W = 12, 16


def yvos_label(frame: int) -> np.ndarray:
    """Object 1 is a 3x4 block moving right (absent at frame 10); object 2 appears at frames 5 and 10."""
    a = np.zeros((H, W), np.uint8)
    if frame != 10:
        a[2:5, frame // 5: frame // 5 + 4] = 1
    if frame in (5, 10):
        a[7:11, 10:12] = 2  # rows 7..10, cols 10..11 -> box (10, 7, 2, 4)
    return a


def make_yvos(root: Path, meta: dict | None = None) -> Path:
    split = root / "train"
    for f in (0, 5, 10, 15):
        write_image(split / "JPEGImages/v1" / f"{f:05d}.jpg", f, size=(W, H))
        write_palette(split / "Annotations/v1" / f"{f:05d}.png", yvos_label(f))
    if meta is None:
        meta = {"videos": {"v1": {"objects": {
            "1": {"category": "cat", "frames": ["00000", "00005", "00015"]},
            "2": {"category": "dog", "frames": ["00005", "00010"]},
        }}}}
    write(split / "meta.json", json.dumps(meta, indent=1))
    return root


def test_youtube_vos_sequences_per_object(tmp_path):
    ds = build_dataset("youtube_vos", make_yvos(tmp_path))
    assert ds.names == ["v1.1", "v1.2"]
    s1 = ds["v1.1"]
    assert isinstance(s1, MaskSequence) and len(s1) == 4 and s1.meta["object_class"] == "cat"
    # frame f: rows 2..4, cols f/5 .. f/5+3 -> (f/5, 2, 4, 3); frame 10 annotated but object absent
    np.testing.assert_array_equal(s1.boxes[[0, 1, 3]], [[0, 2, 4, 3], [1, 2, 4, 3], [3, 2, 4, 3]])
    assert np.isnan(s1.boxes[2]).all() and s1.absent.tolist() == [False, False, True, False]
    assert s1.mask(2).shape == (H, W) and not s1.mask(2).any()
    np.testing.assert_array_equal(s1.mask(1), yvos_label(5) == 1)
    assert s1.frames.fps == 6.0 and s1.image_size == (W, H)
    s2 = ds["v1.2"]  # from its first to its last visible frame: 00005, 00010
    assert s2.meta["frame_names"] == ["00005", "00010"] and len(s2) == 2
    np.testing.assert_array_equal(s2.boxes, [[10, 7, 2, 4], [10, 7, 2, 4]])
    assert abs(int(s2.frames[1][0, 0, 0]) - 10) <= 2  # image 00010.jpg
    for i in range(len(s2)):
        np.testing.assert_array_equal(mask_to_box(s2.mask(i)), s2.boxes[i])


def test_youtube_vos_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"no train/meta\.json.*expected"):
        build_dataset("youtube_vos", tmp_path)
    root = make_yvos(tmp_path)
    meta = root / "train/meta.json"
    write(meta, '{\n "videos": {\n  "v1": {"objects": {"1": }\n }\n}\n')
    with pytest.raises(AnnotationError, match=r"meta\.json:3: invalid JSON"):
        build_dataset("youtube_vos", root)
    write(meta, json.dumps({"videos": {"v1": {"objects": {"1": {"frames": []}}}}}))
    with pytest.raises(AnnotationError, match=r"meta\.json: video 'v1' object 1: expected a non-empty 'frames'"):
        build_dataset("youtube_vos", root)
    write(meta, json.dumps({"videos": {"v1": {"objects": {"3": {"frames": ["00000"]}}}, "v9": {"objects": {}}}}))
    with pytest.raises(DatasetError, match=r"have no folder in .*Annotations: v9"):
        build_dataset("youtube_vos", root)
    write(meta, json.dumps({"videos": {"v1": {"objects": {"3": {"frames": ["00000"]}}}}}))
    with pytest.raises(DatasetError, match=r"lists object 3 in video 'v1' but no annotation PNG .* id 3"):
        build_dataset("youtube_vos", root)["v1.3"]
    # annotation of another size than the frames
    write(meta, json.dumps({"videos": {"v1": {"objects": {"1": {"frames": ["00000"]}}}}}))
    write_palette(root / "train/Annotations/v1/00015.png", np.zeros((H, W + 1), np.uint8))
    with pytest.raises(DatasetError, match=r"00015\.png is 17x12 but the frames are 16x12"):
        build_dataset("youtube_vos", root)["v1.1"]


# ------------------------------------------------------------------------------------------------ DAVIS


def make_davis(root: Path) -> Path:
    for f in range(3):
        write_image(root / "JPEGImages/480p/bear" / f"{f:05d}.jpg", f, size=(W, H))
    a0 = np.zeros((H, W), np.uint8)
    a0[1:4, 1:3] = 1  # box (1, 1, 2, 3)
    a0[4, 1] = 255  # void next to object 1: must not grow its box
    a0[6:8, 8:15] = 2  # box (8, 6, 7, 2)
    a1 = np.zeros((H, W), np.uint8)
    a1[2:4, 3:4] = 1  # box (3, 2, 1, 2); object 2 not visible
    write_palette(root / "Annotations/480p/bear/00000.png", a0)
    write_palette(root / "Annotations/480p/bear/00001.png", a1)  # frame 2 has no annotation
    write(root / "ImageSets/2017/train.txt", "bear\n")
    write(root / "ImageSets/2017/val.txt", "")
    return root


def test_davis_objects_masks_void_and_unannotated(tmp_path):
    ds = build_dataset("davis", make_davis(tmp_path))
    assert ds.names == ["bear.1", "bear.2"]
    b1, b2 = ds["bear.1"], ds["bear.2"]
    np.testing.assert_array_equal(b1.boxes[:2], [[1, 1, 2, 3], [3, 2, 1, 2]])
    assert np.isnan(b1.boxes[2]).all() and b1.mask(2) is None and b1.masks.annotated().tolist() == [True, True, False]
    np.testing.assert_array_equal(b2.boxes[0], [8, 6, 7, 2])
    assert np.isnan(b2.boxes[1]).all() and not b2.mask(1).any()
    assert b1.mask(0).sum() == 6 and b1.frames.fps == 24.0 and b1.frames is b2.frames
    assert build_dataset("davis", tmp_path, split=None).names == ["bear.1", "bear.2"]


def test_davis_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"JPEGImages/480p.*expected"):
        build_dataset("davis", tmp_path)
    root = make_davis(tmp_path)
    with pytest.raises(DatasetError, match=r"test-dev\.txt.*splits available: \['train', 'val'\]"):
        build_dataset("davis", root, split="test-dev")
    with pytest.raises(DatasetError, match=r"val\.txt lists no sequence"):
        build_dataset("davis", root, split="val")
    write(root / "ImageSets/2017/train.txt", "bear\nbear extra\n")
    with pytest.raises(AnnotationError, match=r"train\.txt:2: expected one sequence name per line"):
        build_dataset("davis", root)
    write(root / "ImageSets/2017/train.txt", "bear\nowl\n")
    with pytest.raises(DatasetError, match=r"sequence 'owl' has no image folder"):
        build_dataset("davis", root)
    write(root / "ImageSets/2017/train.txt", "bear\n")
    write_palette(root / "Annotations/480p/bear/00000.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=r"00000\.png of sequence 'bear' holds no object"):
        build_dataset("davis", root)


# ------------------------------------------------------------------------------------------------ COCO


def coco_json() -> dict:
    return {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 12, "height": 10},
                   {"id": 2, "file_name": "000000000002.jpg", "width": 12, "height": 4}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 101, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 12.0,
             "bbox": [2.0, 2.0, 4.0, 3.0], "segmentation": [[2, 2, 6, 2, 6, 5, 2, 5]]},
            {"id": 102, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 6.0,
             "bbox": [10.0, 0.0, 2.0, 4.0], "segmentation": {"size": [4, 12], "counts": "X1320"}},
            {"id": 103, "image_id": 1, "category_id": 3, "iscrowd": 1, "area": 50.0,
             "bbox": [0.0, 0.0, 12.0, 10.0], "segmentation": {"size": [10, 12], "counts": [10, 50, 60]}},
            {"id": 104, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 0.5,
             "bbox": [1.0, 1.0, 1.0, 1.0], "segmentation": [[1, 1, 2, 1, 2, 1.5]]},
        ],
    }


def make_coco(root: Path, data: dict | None = None) -> Path:
    write_image(root / "train2017/000000000001.jpg", 50, size=(12, 10))
    write_image(root / "train2017/000000000002.jpg", 90, size=(12, 4))
    write(root / "annotations/instances_train2017.json", json.dumps(data or coco_json()))
    return root


def test_coco_instances_polygon_and_rle(tmp_path):
    ds = build_dataset("coco", make_coco(tmp_path))
    assert ds.names == ["000000000001.101", "000000000002.102", "000000000001.104"]
    poly = ds["000000000001.101"]
    assert len(poly) == 1 and poly.meta["object_class"] == "dog" and poly.image_size == (12, 10)
    np.testing.assert_array_equal(poly.init_box, [2, 2, 4, 3])
    expect = np.zeros((10, 12), bool)
    expect[2:5, 2:6] = True
    np.testing.assert_array_equal(poly.mask(0), expect)
    rle = ds["000000000002.102"]
    m = rle.mask(0)
    assert m.shape == (4, 12) and m.sum() == 6 and m[0:3, 10].all() and m[1:4, 11].all()
    np.testing.assert_array_equal(mask_to_box(m), rle.boxes[0])
    assert build_dataset("coco", tmp_path, min_area=1.0).names == ["000000000001.101", "000000000002.102"]
    crowd = build_dataset("coco", tmp_path, include_crowd=True, categories=["car"])
    assert crowd.names == ["000000000002.102", "000000000001.103"]
    c = crowd["000000000001.103"].mask(0)  # uncompressed RLE: pixels 10..59 (columns 1..5) set
    assert c.sum() == 50 and c[:, 1:6].all() and not c[:, 0].any() and not c[:, 6:].any()
    with pytest.raises(ValueError, match="unknown category 'zebra'"):
        build_dataset("coco", tmp_path, categories=["zebra"])


def test_coco_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"expected the instances annotation file.*instances_train2017\.json"):
        build_dataset("coco", tmp_path)
    data = coco_json()
    data["annotations"][1]["bbox"] = [1, 2, 3]
    make_coco(tmp_path, data)
    with pytest.raises(AnnotationError, match=r"instances_train2017\.json: annotation id 102: 'bbox' must be"):
        build_dataset("coco", tmp_path)
    data = coco_json()
    data["annotations"][1]["segmentation"]["counts"] = "X132"
    make_coco(tmp_path, data)
    ds = build_dataset("coco", tmp_path)
    with pytest.raises(AnnotationError, match=r"annotation id 102: RLE runs cover 45 pixels but the mask is 4 x 12"):
        ds["000000000002.102"].mask(0)
    data = coco_json()
    data["annotations"][0]["image_id"] = 9
    make_coco(tmp_path, data)
    with pytest.raises(AnnotationError, match="annotation id 101: image_id 9 is not in 'images'"):
        build_dataset("coco", tmp_path)
    data = coco_json()
    data["images"][1]["width"] = 13
    data["annotations"][1]["segmentation"]["size"] = [4, 13]
    make_coco(tmp_path, data)
    with pytest.raises(DatasetError, match=r"000000000002\.jpg is 12x4 but 'images' says 13x4"):
        build_dataset("coco", tmp_path)["000000000002.102"]
    write(tmp_path / "annotations/instances_train2017.json", '{"images": [],\n "annotations": [,]}')
    with pytest.raises(AnnotationError, match=r"instances_train2017\.json:2: invalid JSON"):
        build_dataset("coco", tmp_path)
    make_coco(tmp_path)
    (tmp_path / "train2017/000000000001.jpg").unlink()
    with pytest.raises(DatasetError, match=r"annotation id 101.*not found"):
        build_dataset("coco", tmp_path)["000000000001.101"]


def test_registry_has_the_training_readers(tmp_path):
    for name in ("vid", "trackingnet", "youtube_vos", "davis", "coco"):
        assert name in DATASETS
        with pytest.raises(DatasetError, match="expected"):
            build_dataset(name, tmp_path / "nowhere")
