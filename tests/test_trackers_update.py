"""Shared tracker plumbing: the online-update schedule (``trackers/update.py``), the frame loop
(``trackers.base.track_frames``) and the search size taken from the model's geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gradtrack
from gradtrack.config import ConfigError
from gradtrack.trackers import TrackResult, track_frames
from gradtrack.trackers.gradnet import GradNetTrackerConfig
from gradtrack.trackers.siammlg import SiamMLGTrackerConfig
from gradtrack.trackers.update import OnlineUpdateConfig, Sample, UpdateSchedule, blend


class Recorder:
    """The tracker side of the schedule: records ``(frame, keep)`` of each update and each re-cut crop."""

    def __init__(self):
        self.updates, self.crops = [], []

    def update(self, sample: Sample, keep: float) -> None:
        self.updates.append((sample.frame, keep))

    def crop_for(self, frame: int):
        def crop():
            self.crops.append(frame)
            return f"crop{frame}"
        return crop


def run(schedule: UpdateSchedule, rec: Recorder, scores: dict[int, float]) -> dict[int, tuple[bool, bool, bool]]:
    out = {}
    for i, score in scores.items():
        s = schedule.step(i, score, rec.crop_for(i), rec.update)
        out[i] = (s.reliable, s.rescued, s.updated)
    return out


def test_schedule_threshold_buffer_rescue_and_periodic_updates():
    sched, rec = UpdateSchedule(OnlineUpdateConfig()), Recorder()
    assert sched.start(Sample("crop0", 0.0, 0), rec.update)
    assert rec.updates == [(0, 0.4)]  # frame 0: the periodic update on the ground-truth sample
    scores = {1: 0.8, 2: 0.8, 3: 0.8, 4: 0.8, 5: 0.8, 6: 0.3, 7: 0.35, 8: 0.9, 9: 0.9, 10: 0.9, 11: 0.1}
    flags = run(sched, rec, scores)
    assert sched.f_thr == pytest.approx(0.8)
    assert all(flags[i][0] for i in range(1, 6))  # F_thr = 0 before frame 5: everything is reliable
    assert flags[6] == (False, True, False)  # 0.3 < 0.4 F_thr, frame 6 < 10: rescued, not buffered
    assert flags[7] == (False, False, False)  # unreliable (< 0.5 F_thr) but not low enough for a rescue
    assert flags[11] == (False, False, False)  # no rescue from frame 10 on
    assert flags[5][2] and flags[10][2] and sum(f[2] for f in flags.values()) == 2
    # periodic updates on the best buffered sample (the first of equal scores), rescues on the new crop
    assert rec.updates == [(0, 0.4), (1, 0.4), (6, 0.3), (8, 0.4)]
    assert rec.crops == [1, 2, 3, 4, 5, 6, 8, 9, 10]  # re-cut only when buffered or rescued
    assert [s.frame for s in sched.samples] == [4, 5, 8, 9, 10] and sched.rescues == 1


def test_schedule_bound_with_an_empty_buffer_and_without_rescues():
    sched = UpdateSchedule(OnlineUpdateConfig(rescue_before=0))
    sched.f_thr = 0.8
    assert sched.bound() == pytest.approx(0.4)  # empty buffer: reliable_ratio * F_thr alone
    sched.samples.append(Sample(None, 0.2, 0))
    assert sched.bound() == pytest.approx(0.2)  # else min(reliable_ratio * F_thr, mean of the buffer)
    sched.samples.clear()
    rec = Recorder()
    assert run(sched, rec, {6: 0.1}) == {6: (False, False, False)} and rec.updates == []


def test_blend_keeps_the_old_state_share():
    hid, f2 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -2.0])
    torch.testing.assert_close(blend(hid, f2, 0.4), hid + 0.6 * (f2 - hid))
    torch.testing.assert_close(blend(hid, f2, 1.0), hid)


def test_one_knob_name_for_both_trackers():
    for cls in (GradNetTrackerConfig, SiamMLGTrackerConfig):
        assert issubclass(cls, OnlineUpdateConfig) and cls().periodic_keep == 0.4
    assert GradNetTrackerConfig().rescue_before == 10 and SiamMLGTrackerConfig().rescue_before == 0
    with pytest.raises(ConfigError, match="unknown key"):
        gradtrack.build_tracker("siammlg", weights="random", device="cpu", update_blend=0.6)
    for bad in ({"periodic_keep": 1.5}, {"rescue_before": -1}, {"buffer_size": 0}):
        with pytest.raises(ConfigError):
            gradtrack.build_tracker("siammlg", weights="random", device="cpu", **bad)


class Fake:
    def __init__(self):
        self.calls = []

    def init(self, image, box):
        self.calls.append(("init", int(image[0, 0, 0])))

    def update(self, image):
        self.calls.append(("update", int(image[0, 0, 0])))
        return TrackResult(box=np.full(4, float(image[0, 0, 0])), score=1.0)


def test_track_frames_is_one_lazy_loop():
    def frames():
        for k in range(5):
            if k == 3:
                raise AssertionError("read past the frames that were asked for")
            yield np.full((4, 4, 3), k, np.uint8)

    fake = Fake()
    steps = []
    for step in track_frames(fake, frames(), [1, 2, 3, 4]):
        steps.append(step)
        if step.index == 2:
            break
    assert fake.calls == [("init", 0), ("update", 1), ("update", 2)]
    assert steps[0].result is None and steps[0].box.tolist() == [1, 2, 3, 4]
    assert steps[2].box.tolist() == [2.0] * 4 and steps[2].result.score == 1.0
    assert all(s.seconds >= 0 for s in steps) and [s.index for s in steps] == [0, 1, 2]


def test_search_size_from_the_model_geometry():
    t = gradtrack.build_tracker("siamfc", weights="random", device="cpu")
    assert t.geom == t.model.cfg.geometry() and t.geom.score_size == 17
    big = gradtrack.build_tracker("siamfc", weights="random", device="cpu", instance_size=287)
    assert big.geom.instance_size == 287 and big.geom.score_size == 21
    img = np.random.default_rng(0).integers(0, 255, (200, 240, 3), dtype=np.uint8)
    big.init(img, [100, 80, 30, 40])
    assert np.isfinite(big.update(img).box).all()
    with pytest.raises(ConfigError, match="centre cell"):
        gradtrack.build_tracker("siamfc", weights="random", device="cpu", instance_size=263)
    with pytest.raises(ConfigError, match="multiple"):
        gradtrack.build_tracker("gradnet", weights="random", device="cpu", instance_size=260)
