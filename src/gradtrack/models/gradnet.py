"""GradNet (Li et al., ICCV 2019): gradient-guided template update on top of a SiamFC.

* ``siamfc``: the search branch (a trained SiamFC, frozen while GradNet trains).  Its backbone embeds
  search crops; applied to the exemplar it also gives the fixed SiamFC template used by the
  ``official`` fusion.
* ``template``: a separate backbone of the same kind for the template branch (``template: {}`` = the
  search branch's spec).  ``template.stem`` gives the shallow feature ``f2`` (AlexNet: conv2 + pool2,
  ``256 x 12 x 12``; EfficientNet-Lite: the end of the stride-8 stage); ``template.head`` followed by the
  template neck is U1 (AlexNet: conv3..conv5).
* ``u2``: 3x3 conv + BN + tanh applied to the scaled gradient ``dL/df2``, times ``u2_scale``.
* the update: ``L = balanced_logistic(adjust(xcorr(U1(f2), phi(x))), centred label)``,
  ``g = dL/df2`` (autograd; ``create_graph=True`` in training for second-order gradients),
  ``f2' = f2 + U2(grad_scale * g)``, ``beta* = U1(f2')``.

The tanh bounds U2's correction to ``[-u2_scale, u2_scale]`` per element.  The paper's AlexNet ``f2``
(conv2 + pool2) has a standard deviation of about 0.4, so a bound of 1 lets the update move it by more
than two standard deviations; EfficientNet-Lite0's stride-8 ``f2`` has one of about 8, where a bound of 1
is an eighth of a standard deviation and the update cannot change the template (measured: loss after the
update equal to the loss before to four digits, the template moving 0.2-0.9 %).  ``u2_scale`` restores
the paper's ratio on other backbones (the EfficientNet GradNet configs use 20 = 8.0 / 0.4).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..geometry.scoremap import ScoreMapGeometry
from typing import Any

from .backbones import build_backbone, normalize_spec
from .labels import balanced_logistic_loss
from .siamfc import SiamFC, SiamFCConfig, center_crop, make_neck
from .xcorr import ResponseAdjust, xcorr


@dataclass
class GradNetConfig:
    siamfc: SiamFCConfig = field(default_factory=SiamFCConfig)
    template: dict[str, Any] = field(default_factory=dict)  # backbone spec; {} = the same as siamfc.backbone
    # Gradient multiplier before U2.  The official code multiplies by 1e4 on a loss that is additionally
    # divided by H*W (225 in training); our loss is not (see labels.balanced_logistic_loss), so the
    # equivalent constant is 1e4 / 225 ~= 44.
    grad_scale: float = 44.0
    # U2's output multiplier (its tanh bounds the correction to +-u2_scale; see the module docstring)
    u2_scale: float = 1.0
    label_radius: float = 2.0  # cells (16 px at stride 8)
    u2_kernel: int = 3
    shared_u1: bool = True  # False = the paper's "w 2U" ablation: the initial template uses its own U1
    # False = the paper's "w/o MG" ablation: no gradient step; the template is U1(f2(z)) (trackers skip the update)
    use_gradient: bool = True

    def template_spec(self) -> dict:
        """The template branch's backbone spec: ``template`` over the search branch's spec (same name)."""
        search = normalize_spec(self.siamfc.backbone, "alexnet", "siamfc.backbone")
        own = normalize_spec(self.template, search["name"], "template") if not isinstance(self.template, dict) \
            else dict(self.template)
        if own.get("name", search["name"]) != search["name"]:
            return normalize_spec(own, search["name"], "template")
        return normalize_spec({**search, **own}, search["name"], "template")

    def __post_init__(self) -> None:
        self.template = self.template_spec()

    def geometry(self) -> ScoreMapGeometry:
        g = self.siamfc.geometry()
        return ScoreMapGeometry(g.exemplar_size, g.instance_size, g.stride, g.score_size, self.label_radius)


class GradientUpdate(nn.Module):
    """U2: ``out_scale * tanh(BN(conv(grad_scale * g)))``."""

    def __init__(self, channels: int, kernel: int = 3, grad_scale: float = 44.0, out_scale: float = 1.0):
        super().__init__()
        if not (out_scale > 0 and math.isfinite(out_scale)):
            raise ValueError(f"U2's output scale must be a positive finite number, got {out_scale}")
        self.grad_scale = grad_scale
        self.out_scale = out_scale
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(channels, eps=1e-3)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, grad: torch.Tensor) -> torch.Tensor:
        return self.out_scale * torch.tanh(self.bn(self.conv(grad * self.grad_scale)))


class GradNet(nn.Module):
    def __init__(self, cfg: GradNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or GradNetConfig()
        self.siamfc = SiamFC(cfg.siamfc)
        self.template = build_backbone(cfg.template_spec())
        self.template_neck = make_neck(self.template.out_channels, cfg.siamfc.neck_channels)
        if cfg.siamfc.neck_channels == 0 and self.template.out_channels != self.siamfc.backbone.out_channels:
            raise ValueError("template and search branches must output the same number of channels")
        self.u2 = GradientUpdate(self.template.f2_channels, cfg.u2_kernel, cfg.grad_scale, cfg.u2_scale)
        self.adjust = ResponseAdjust(cfg.siamfc.adjust_scale, cfg.siamfc.adjust_learn_scale)
        # "w 2U" ablation: a second U1 for the initial template (the gradient is taken through it)
        self.u1_init = self.u1_init_neck = None
        if not cfg.shared_u1:
            self.u1_init = build_backbone(cfg.template_spec()).head
            self.u1_init_neck = make_neck(self.template.out_channels, cfg.siamfc.neck_channels)

    # -- building blocks -------------------------------------------------------------------------
    def search_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.siamfc.embed(x)

    def f2(self, z: torch.Tensor) -> torch.Tensor:
        return self.template.stem(z)

    def u1(self, f2: torch.Tensor) -> torch.Tensor:
        return self.template_neck(self.template.head(f2))

    def u1_initial(self, f2: torch.Tensor) -> torch.Tensor:
        """The U1 of the initial template (its own in the "w 2U" ablation)."""
        return self.u1_init_neck(self.u1_init(f2)) if self.u1_init is not None else self.u1(f2)

    def score(self, template: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.adjust(xcorr(center_crop(template, self.cfg.siamfc.template_crop), xf))

    def gradient(self, f2: torch.Tensor, xf: torch.Tensor, label: torch.Tensor, weight: torch.Tensor,
                 create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(dL/df2, L)`` for the initial template ``U1(f2)`` against search features ``xf``.

        ``xf`` may hold ``k`` samples per template (template generalisation); the loss is their mean.
        """
        with torch.enable_grad():
            leaf = f2 if (create_graph and f2.requires_grad) else f2.detach().requires_grad_(True)
            loss = balanced_logistic_loss(self.score(self.u1_initial(leaf), xf), label, weight)
            (g,) = torch.autograd.grad(loss, leaf, create_graph=create_graph)
        return g, loss

    def update(self, f2: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(beta*, f2')`` with ``f2' = f2 + U2(g)`` and ``beta* = U1(f2')``."""
        f2_new = f2 + self.u2(grad)
        return self.u1(f2_new), f2_new

    def forward(self, z: torch.Tensor, x: torch.Tensor, label: torch.Tensor, weight: torch.Tensor,
                create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward: templates ``z`` (B), searches ``x`` (B*k).  Returns
        ``(score after the update, loss before, loss after)``; only the loss after is optimised."""
        xf = self.search_features(x)
        f2 = self.f2(z)
        if not self.cfg.use_gradient:
            score = self.score(self.u1(f2), xf)
            loss = balanced_logistic_loss(score, label, weight)
            return score, loss, loss
        g, loss0 = self.gradient(f2, xf, label, weight, create_graph=create_graph)
        template, _ = self.update(f2, g)
        score = self.score(template, xf)
        return score, loss0, balanced_logistic_loss(score, label, weight)
