"""A VOT toolkit experiment class for the local stack (imported by the ``vot`` process, never by gradtrack).

vot-toolkit 0.9.0's ``SupervisedExperiment.execute`` hands the runtime one ``ObjectStatus`` where
``TraxTrackerRuntime.initialize`` expects a list of them, so every single-object TraX tracker fails on the
first frame with "Tracker does not support multiple objects, but multiple objects were provided for
initialization" (and the update reply is a list where the experiment reads one object).  ``Supervised``
is the same reset-based experiment with those two calls made the way the runtime defines them: the
parameters (``repetitions``, ``skip_initialize``, ``skip_tags``, ``failure_overlap``), the early stop after
three identical runs, the trajectory labels and the result files are the toolkit's, and it *is* a
``SupervisedExperiment``, so the toolkit's AR, failure and EAO analyses accept it.  The local stack written
by ``gradtrack vot-workspace`` names it as ``type: gradtrack.integrations.vot_experiment.Supervised``.
"""
from __future__ import annotations

from vot.experiment.multirun import SupervisedExperiment
from vot.region import Special, calculate_overlap
from vot.tracker import Trajectory

__all__ = ["Supervised"]


def _one(status):
    """The single object of a runtime reply (a list of ``ObjectStatus`` or one ``ObjectStatus``)."""
    if isinstance(status, list):
        if len(status) != 1:
            raise ValueError(f"expected one tracked object in the tracker's reply, got {len(status)}")
        return status[0]
    return status


class Supervised(SupervisedExperiment):
    """``SupervisedExperiment`` that talks to single-object runtimes with lists (see the module docstring)."""

    def execute(self, tracker, sequence, force: bool = False, callback=None):
        if len(sequence.objects()) != 1:
            raise ValueError("the supervised experiment needs single-target sequences")
        results = self.results(tracker, sequence)
        with self._get_runtime(tracker, sequence) as runtime:
            multi = bool(getattr(runtime, "multiobject", False))
            for rep in range(1, self.repetitions + 1):
                name = f"{sequence.name}_{rep:03d}"
                if Trajectory.exists(results, name) and not force:
                    continue
                if self._can_stop(tracker, sequence):
                    return
                trajectory = Trajectory(len(sequence))
                n = len(sequence)
                frame = 0
                while frame < n:
                    state = self._get_initialization(sequence, frame)
                    _, elapsed = runtime.initialize(sequence.frame(frame), state if multi else [state])
                    trajectory.set(frame, Special(Trajectory.INITIALIZATION), {"time": elapsed})
                    frame += 1
                    while frame < n:
                        reply, elapsed = runtime.update(sequence.frame(frame), None if multi else [])
                        target = _one(reply)
                        props = dict(target.properties)
                        props["time"] = elapsed
                        overlap = calculate_overlap(target.region, sequence.groundtruth(frame), sequence.size)
                        if overlap <= self.failure_overlap:
                            trajectory.set(frame, Special(SupervisedExperiment.FAILURE), props)
                            frame += self.skip_initialize
                            if self.skip_tags:
                                while frame < n and [t for t in sequence.tags(frame) if t in self.skip_tags]:
                                    frame += 1
                            break
                        trajectory.set(frame, target.region, props)
                        frame += 1
                if callback:
                    callback(rep / self.repetitions)
                trajectory.write(results, name)
