"""Pure ``nn.Module`` models: no per-sequence state, no file I/O, no hard-coded device."""
from .alexnet import AlexNet, AlexNetConfig
from .gradnet import GradNet, GradNetConfig, GradientUpdate
from .labels import balanced_logistic_loss, centered_label
from .registry import MODELS, build_model, model_config_class
from .siamfc import SiamFC, SiamFCConfig
from .xcorr import ResponseAdjust, xcorr, xcorr_depthwise

__all__ = [
    "AlexNet", "AlexNetConfig", "GradNet", "GradNetConfig", "GradientUpdate", "balanced_logistic_loss",
    "centered_label", "MODELS", "build_model", "model_config_class", "SiamFC", "SiamFCConfig", "ResponseAdjust",
    "xcorr", "xcorr_depthwise",
]
