"""Training: configs, the loop (single process or torchrun), export of fp16 weights."""
from .config import GradNetTrainConfig, OptimConfig, TrainConfig, lr_factor

__all__ = ["GradNetTrainConfig", "OptimConfig", "TrainConfig", "lr_factor", "train"]


def train(*args, **kwargs):
    """See :func:`gradtrack.training.trainer.train` (imported lazily)."""
    from .trainer import train as _train

    return _train(*args, **kwargs)
