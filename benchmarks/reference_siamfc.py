"""A plain reference SiamFC loop: the yardstick of ``gradtrack bench --compare`` (row ``reference_siamfc``).

The speed issue compares gradtrack against siamfc-pytorch (huanglianghua), which cannot be installed here.
This file stands in for it: it does what a straightforward PyTorch implementation of SiamFC-3s does, with
nothing tuned for speed, so that the ratios in the README ("x reference") have a fixed 1.00:

* per frame, three scale crops, each cut with ``cv2.copyMakeBorder`` (mean-colour padding when the window
  leaves the image) + slicing + ``cv2.resize`` (bilinear) to 255 x 255;
* one fp32 forward of the three crops through the AlexNet of the shipped ``weights/siamfc.pt``
  (NCHW, BatchNorm layers as they are, ``torch.no_grad``), correlation with the template (``F.conv2d``),
  the adjust scale and bias;
* each 17 x 17 map upsampled separately with ``cv2.resize`` bicubic to 272 x 272, scale penalty, best scale,
  min-subtract / sum normalisation, cosine (Hann) window, peak -> displacement, damped scale update.

The hyper-parameters are gradtrack's SiamFC defaults (step 1.0375, penalty 0.9745, window 0.176, scale lr
0.59, x16 upsampling), so it does the same amount of work per frame; its boxes are close to, not identical
with, gradtrack's (different crop rounding).  Only the speed is compared.

    .venv/bin/python benchmarks/reference_siamfc.py [--frames 50]     # fps on the procedural demo sequence
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

EXEMPLAR, INSTANCE, STRIDE, UP = 127, 255, 8, 16


class ReferenceSiamFC:
    name = "reference_siamfc"
    precision = "fp32"

    def __init__(self, weights=None, device="cpu", scale_num=3, scale_step=1.0375, scale_penalty=0.9745,
                 window_influence=0.176, scale_lr=0.59, context=0.5):
        from gradtrack.trackers.common import load_tracker_model

        self.device = torch.device(device)
        model, _ = load_tracker_model("siamfc", weights, "siamfc", self.device)
        if type(model.backbone).__name__ != "AlexNet":
            raise ValueError("the reference SiamFC needs AlexNet siamfc weights")
        self.backbone = model.backbone.eval()
        self.adjust_scale = float(model.adjust.scale.detach())
        self.adjust_bias = float(model.adjust.bias.detach())
        self.scale_factors = scale_step ** np.linspace(-(scale_num // 2), scale_num // 2, scale_num)
        self.scale_penalty, self.window_influence, self.scale_lr, self.context = \
            scale_penalty, window_influence, scale_lr, context
        n = (INSTANCE - EXEMPLAR) // STRIDE + 1
        self.upscale_sz = n * UP
        hann = np.outer(np.hanning(self.upscale_sz), np.hanning(self.upscale_sz))
        self.hann_window = hann / hann.sum()

    @staticmethod
    def _crop(img, center, size, out_size, border_value):
        size = round(size)
        corners = np.concatenate((np.round(center - (size - 1) / 2), np.round(center - (size - 1) / 2) + size))
        corners = np.round(corners).astype(int)
        pads = np.concatenate((-corners[:2], corners[2:] - img.shape[:2]))
        npad = max(0, int(pads.max()))
        if npad > 0:
            img = cv2.copyMakeBorder(img, npad, npad, npad, npad, cv2.BORDER_CONSTANT, value=border_value)
        corners = (corners + npad).astype(int)
        patch = img[corners[0]:corners[2], corners[1]:corners[3]]
        return cv2.resize(patch, (out_size, out_size))

    @torch.no_grad()
    def init(self, img, box):
        # box: 0-based x, y, w, h; the state is kept as (row, col) centre and (h, w) size
        x, y, w, h = (float(v) for v in box)
        self.center = np.array([y + h / 2, x + w / 2])
        self.target_sz = np.array([h, w])
        ctx = self.context * self.target_sz.sum()
        self.z_sz = np.sqrt(np.prod(self.target_sz + ctx))
        self.x_sz = self.z_sz * INSTANCE / EXEMPLAR
        self.avg_color = np.mean(img, axis=(0, 1))
        z = self._crop(img, self.center, self.z_sz, EXEMPLAR, self.avg_color.tolist())
        z = torch.from_numpy(z).to(self.device).permute(2, 0, 1).unsqueeze(0).float()
        self.kernel = self.backbone(z)

    @torch.no_grad()
    def update(self, img):
        crops = [self._crop(img, self.center, self.x_sz * f, INSTANCE, self.avg_color.tolist())
                 for f in self.scale_factors]
        x = torch.from_numpy(np.stack(crops, axis=0)).to(self.device).permute(0, 3, 1, 2).float()
        xf = self.backbone(x)
        responses = F.conv2d(xf, self.kernel) * self.adjust_scale + self.adjust_bias
        responses = responses.squeeze(1).cpu().numpy()
        responses = np.stack([cv2.resize(r, (self.upscale_sz, self.upscale_sz), interpolation=cv2.INTER_CUBIC)
                              for r in responses])
        mid = len(self.scale_factors) // 2
        responses[:mid] *= self.scale_penalty
        responses[mid + 1:] *= self.scale_penalty
        scale_id = int(np.argmax(np.amax(responses, axis=(1, 2))))
        response = responses[scale_id]
        response -= response.min()
        response /= response.sum() + 1e-16
        response = (1 - self.window_influence) * response + self.window_influence * self.hann_window
        loc = np.array(np.unravel_index(response.argmax(), response.shape), dtype=np.float64)
        disp_in_response = loc - (self.upscale_sz - 1) / 2
        disp_in_instance = disp_in_response * STRIDE / UP
        disp_in_image = disp_in_instance * self.x_sz * self.scale_factors[scale_id] / INSTANCE
        self.center = self.center + disp_in_image
        scale = (1 - self.scale_lr) * 1.0 + self.scale_lr * self.scale_factors[scale_id]
        self.target_sz = self.target_sz * scale
        self.z_sz *= scale
        self.x_sz *= scale
        h, w = self.target_sz
        return np.array([self.center[1] - w / 2, self.center[0] - h / 2, w, h])


def build(device="cpu", weights=None) -> ReferenceSiamFC:
    return ReferenceSiamFC(weights=weights, device=device)


def main(argv=None) -> None:
    from gradtrack.data import synthetic

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args(argv)
    seq = synthetic.preset("demo", seed=0, num_frames=args.frames)
    frames = [np.asarray(f) for f in seq.frames]
    tracker = build()
    t0 = time.perf_counter()
    tracker.init(frames[0], np.asarray(seq.boxes[0], float))
    for f in frames[1:]:
        tracker.update(f)
    print(f"reference_siamfc: {len(frames) / (time.perf_counter() - t0):.1f} fps on {len(frames)} demo frames")


if __name__ == "__main__":
    main()
