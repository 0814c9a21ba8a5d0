"""Training: configs, recipes (one per family), the generic loop (single process or torchrun), export."""
from .config import GradNetTrainConfig, OptimConfig, SiamMLGTrainConfig, TrainConfig, load_train_config, lr_factor

__all__ = ["GradNetTrainConfig", "OptimConfig", "SiamMLGTrainConfig", "TrainConfig", "load_train_config", "lr_factor",
           "train"]


def train(*args, **kwargs):
    """See :func:`gradtrack.training.trainer.train` (imported lazily)."""
    from .trainer import train as _train

    return _train(*args, **kwargs)
