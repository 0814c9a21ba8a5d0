"""BatchedTracker: slots advanced together give the one-by-one boxes (fp32, 1e-3 px); eval --batch N."""
import numpy as np
import torch
import pytest

import gradtrack
from gradtrack.data import synthetic
from gradtrack.trackers.batched import BatchedTracker, SlotError
from gradtrack.trackers.common import resolve_precision


def _seqs():
    # different lengths, different frame sizes: the sequences end at different steps
    return [synthetic.preset("demo", seed=0, num_frames=9, size=(192, 144)),
            synthetic.preset("scale", seed=1, num_frames=5, size=(160, 128)),
            synthetic.preset("fast", seed=2, num_frames=12, size=(208, 160))]


def _one_by_one(tracker, seqs):
    return [tracker.track([s.frames[i] for i in range(len(s.frames))], s.boxes[0])[0] for s in seqs]


def _batched(bt, seqs):
    out = [[np.asarray(s.boxes[0], float)] for s in seqs]
    for k, s in enumerate(seqs):
        bt.init(k, s.frames[0], s.boxes[0])
    i = 1
    while len(bt):
        res = bt.update({k: seqs[k].frames[i] for k in list(bt.slots)})
        for k, r in res.items():
            out[k].append(r.box)
            if i + 1 >= len(seqs[k].frames):
                bt.release(k)
        i += 1
    return [np.stack(o) for o in out]


# siamfc's "auto" may mean int8 through onnxruntime (CPUs without AMX), which is not batched: the torch
# precision "auto" would pick otherwise.
TORCH_AUTO = resolve_precision("auto", False, torch.device("cpu"))


@pytest.mark.parametrize("name,kw", [("siamfc", {"precision": TORCH_AUTO}), ("gradnet", {"online_update": False}),
                                     ("gradnet", {})])
def test_batched_equals_one_by_one(name, kw):
    tracker = gradtrack.build_tracker(name, device="cpu", **kw)
    seqs = _seqs()
    ref = _one_by_one(tracker, seqs)
    bt = BatchedTracker(tracker)
    assert bt.batched
    got = _batched(bt, seqs)
    # The batched convolutions sum in another order (~1e-6 relative).  With the retrained gradnet weights
    # (2 Dec 2026) and its online update on, that tips one near-tie of a response map in sequence 0 at
    # frame 7 (checked: the same sequence alone in the batched tracker is bitwise equal to one-by-one), so
    # there the box may move by one upsampled response pixel (0.17 px here); everywhere else 1e-3 px.
    tol = 0.25 if kw == {} and name == "gradnet" else 1e-3
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        assert np.abs(r - g).max() < tol
    assert sum(int(np.abs(r - g).max() >= 1e-3) for r, g in zip(ref, got)) <= 1


def test_gradnet_updates_happen_in_batched_mode():
    """Every update of the one-by-one tracker also runs in batched mode (20 frames, 4 periodic updates)."""
    single = gradtrack.build_tracker("gradnet", device="cpu")
    bt = BatchedTracker(gradtrack.build_tracker("gradnet", device="cpu"))
    s = synthetic.preset("demo", seed=0, num_frames=21, size=(160, 128))
    single.init(s.frames[0], s.boxes[0])
    bt.init("a", s.frames[0], s.boxes[0])
    n0 = bt.tracker("a").state.updates
    for i in range(1, 21):
        want = single.update(s.frames[i]).box
        got = bt.update({"a": s.frames[i]})["a"].box
        assert np.abs(want - got).max() < 1e-3, i
    assert bt.tracker("a").state.updates > n0  # periodic updates at frames 5, 10, 15, 20
    assert bt.tracker("a").state.updates == single.state.updates


def test_bad_frame_names_slot_and_moves_nothing():
    bt = BatchedTracker.build("siamfc", device="cpu")
    a = synthetic.preset("demo", seed=0, num_frames=3, size=(160, 128))
    bt.init(0, a.frames[0], a.boxes[0])
    bt.init(1, a.frames[0], a.boxes[0])
    before = bt.tracker(0).state.center.copy()
    with pytest.raises(SlotError) as err:
        bt.update({0: a.frames[1], 1: np.zeros((10, 10, 3), np.uint8)})
    assert err.value.slot == 1 and "10x10" in str(err.value)
    assert np.array_equal(bt.tracker(0).state.center, before)
    with pytest.raises(SlotError):
        bt.update({7: a.frames[1]})


def test_fallback_loops_and_says_why():
    tracker = gradtrack.build_tracker("siamfc", device="cpu", long_term=True, precision=TORCH_AUTO)
    bt = BatchedTracker(tracker)
    assert not bt.batched and "long_term" in bt.fallback_reason
    seqs = _seqs()[:2]
    ref = _one_by_one(gradtrack.build_tracker("siamfc", device="cpu", long_term=True, precision=TORCH_AUTO), seqs)
    got = _batched(bt, seqs)
    for r, g in zip(ref, got):
        assert np.abs(r - g).max() < 1e-3


def test_eval_batch_writes_the_one_by_one_results(tmp_path):
    from gradtrack.evaluation.runner import TrackerSpec, run_benchmark

    seqs = {s.name + str(k): s for k, s in enumerate(_seqs())}
    for k, s in seqs.items():
        s.name = k

    class DS(dict):
        names = property(lambda self: list(self))

    ds = DS(seqs)
    spec = TrackerSpec("siamfc", device="cpu")
    run_benchmark(spec, ds, tmp_path / "one", progress=False, log=lambda m: None)
    st = run_benchmark(spec, ds, tmp_path / "bat", progress=False, log=lambda m: None, batch=2)
    assert set(st.values()) == {"ran"}
    for name in seqs:
        a = np.loadtxt(tmp_path / "one" / "siamfc" / f"{name}.txt", delimiter=",")
        b = np.loadtxt(tmp_path / "bat" / "siamfc" / f"{name}.txt", delimiter=",")
        assert np.abs(a - b).max() < 1e-3
    # resume: the batched results carry the same fingerprint, so a one-by-one run skips them
    st = run_benchmark(spec, ds, tmp_path / "bat", progress=False, log=lambda m: None)
    assert set(st.values()) == {"skipped"}
    with pytest.raises(ValueError, match="OPE"):
        run_benchmark(spec, ds, tmp_path / "v", protocol="vot", progress=False, batch=2)


def test_updates_on_samples_with_cached_features_still_run():
    """A periodic update may pick a buffered sample already used (features cached): it must still run."""
    from gradtrack.trackers.update import Sample

    bt = BatchedTracker.build("gradnet", device="cpu")
    calls = []

    class Slot:
        def _update_from(self, sample, keep):
            calls.append((sample.frame, keep))

    cached = Sample(crop=np.zeros((1, 8, 8, 3), np.uint8), score=1.0, frame=3, features=torch.zeros(1))
    bt._run_updates([(Slot(), [(cached, 0.4)])])
    assert calls == [(3, 0.4)]
