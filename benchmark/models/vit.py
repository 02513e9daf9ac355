"""Vision transformers at the task's native resolution, and any timm classifier.

``vit`` builds a timm :class:`~timm.models.vision_transformer.VisionTransformer` for the task's own
``(C, H, W)``: no resizing, no pretrained weights (no network access), ``in_chans = C``, one logit.
When ``patch_size`` does not divide H or W, the (standardised) image is zero-padded symmetrically up
to the next multiple inside the model (:class:`PadTo`), so every ``patch_size`` is a valid HPO choice;
zero is the channel mean after standardisation, i.e. "no information".

``timm`` (used as ``create_model("timm:<name>", task, config)``) builds any timm image model the
same way (``img_size`` passed when the model takes one) and trains it with the same loop.

The HCAL seed's approach, which the native model avoids, is a ``timm`` config key: ``resize: 224``
resizes every (standardised) image to 224x224 and makes it 3 channels (:func:`reference_vit_inputs`),
so ``timm:vit_tiny_patch16_224`` sees what it saw (the reference recipe ``hcal-vit-tiny224``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models._registry import register_model
from benchmark.models.training import TRAIN_DEFAULTS, NeuralModel, number


class InputWrapper(nn.Module):
    """``net`` behind a fixed input map (``forward``); timm's ``no_weight_decay`` names pass through."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def no_weight_decay(self) -> set[str]:
        inner = self.net.no_weight_decay() if hasattr(self.net, "no_weight_decay") else ()
        return {f"net.{n}" for n in inner}


class PadTo(InputWrapper):
    """Zero-pad ``(n, C, H, W)`` symmetrically to ``size`` (the extra row / column goes last)."""

    def __init__(self, net: nn.Module, image_hw: tuple[int, int], size: tuple[int, int]) -> None:
        super().__init__(net)
        dh, dw = size[0] - image_hw[0], size[1] - image_hw[1]
        self.pad = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)

    def forward(self, x):
        return self.net(F.pad(x, self.pad) if any(self.pad) else x)


def padded_size(hw: tuple[int, int], patch: int | tuple[int, int]) -> tuple[int, int]:
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    return math.ceil(hw[0] / ph) * ph, math.ceil(hw[1] / pw) * pw


@register_model
class ViTModel(NeuralModel):
    """A ViT at the task's native resolution (padded up to whole patches when needed).

    ``drop_rate`` is timm's dropout on the head *and* on the attention / MLP projections
    (``proj_drop_rate``); ``drop_path_rate`` is stochastic depth. ``embed_dim`` must be a multiple of
    ``num_heads``.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("vit", get_task("hcal_dqm"), {"patch_size": 5, "depth": 2})
    """

    name = "vit"
    tiny_config = {"embed_dim": 16, "depth": 1, "num_heads": 2, "patch_size": 8, "epochs": 2, "batch_size": 32}
    default_config = {**TRAIN_DEFAULTS, "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 2.0,
                      "patch_size": 4, "embed_dim": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 2.0,
                      "drop_rate": 0.0, "drop_path_rate": 0.1, "label_smoothing": 0.0}
    rules = {"patch_size": number(int, low=1), "embed_dim": number(int, low=1), "depth": number(int, low=1),
             "num_heads": number(int, low=1), "mlp_ratio": number(float, low=0, open_low=True),
             "drop_rate": number(float, low=0, high=0.99), "drop_path_rate": number(float, low=0, high=0.99)}

    def __init__(self, task, config, **kwargs) -> None:
        super().__init__(task, config, **kwargs)
        c = self.config
        if c["embed_dim"] % c["num_heads"]:
            raise ConfigError(f"model 'vit': embed_dim {c['embed_dim']} is not a multiple of num_heads "
                              f"{c['num_heads']}")
        _, H, W = self.input_shape
        if c["patch_size"] > max(H, W):
            raise ConfigError(f"model 'vit': patch_size {c['patch_size']} is larger than the {H}x{W} image "
                              "(after crop and pool)")

    def build_net(self) -> nn.Module:
        from timm.models.vision_transformer import VisionTransformer

        c = self.config
        C, H, W = self.input_shape
        size = padded_size((H, W), c["patch_size"])
        vit = VisionTransformer(img_size=size, patch_size=c["patch_size"], in_chans=C, num_classes=1,
                                embed_dim=c["embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                                mlp_ratio=c["mlp_ratio"], drop_rate=c["drop_rate"],
                                proj_drop_rate=c["drop_rate"], drop_path_rate=c["drop_path_rate"])
        return PadTo(vit, (H, W), size)


@register_model
class TimmModel(NeuralModel):
    """Any timm image model, from scratch: ``create_model("timm:resnet18", task, config)``.

    Models that take ``img_size`` get the task's (patch-padded) size; the rest get the native image
    and must cope with its size themselves (CNNs with global pooling do).

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> model = create_model("timm:resnet18", get_task("ee_gamma"), {"epochs": 5})
    """

    name = "timm"
    family_key = "model_name"
    tiny_config = {"model_name": "resnet10t", "epochs": 1, "batch_size": 32}
    default_config = {"model_name": "resnet18", **TRAIN_DEFAULTS, "label_smoothing": 0.0, "resize": 0}
    rules = {"resize": number(int, low=0)}  # 0: the native image; N: N x N, 3 channels (reference_vit_inputs)

    def __init__(self, task, config, **kwargs) -> None:
        super().__init__(task, config, **kwargs)
        import timm

        if not isinstance(self.config["model_name"], str) or not timm.is_model(self.config["model_name"]):
            raise ConfigError(f"model 'timm': unknown timm model {self.config['model_name']!r} "
                              "(see timm.list_models())")

    def build_net(self) -> nn.Module:
        import timm

        C, H, W = self.input_shape
        if resize := self.config["resize"]:
            C, H, W = 3, resize, resize
        name = self.config["model_name"]
        kwargs = {"pretrained": False, "in_chans": C, "num_classes": 1}
        try:
            net = timm.create_model(name, img_size=(H, W), **kwargs)
        except TypeError:  # the model has no img_size argument (most CNNs)
            net = timm.create_model(name, **kwargs)
        else:
            patch = getattr(getattr(net, "patch_embed", None), "patch_size", None)
            if patch is not None and padded_size((H, W), patch) != (H, W):
                size = padded_size((H, W), patch)
                net = PadTo(timm.create_model(name, img_size=size, **kwargs), (H, W), size)
        return Resized(net, resize) if resize else net


class Resized(InputWrapper):
    """``net`` on :func:`reference_vit_inputs` of its input: ``size`` x ``size``, 3 channels."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__(net)
        self.size = size

    def forward(self, x):
        return self.net(reference_vit_inputs(x, self.size))


def reference_vit_inputs(X: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """The reference solution's inputs for ``timm`` ``vit_tiny_patch16_224``: bilinear resize of
    ``(n, C, H, W)`` to ``size x size`` and exactly 3 channels (the first three, or the channels
    repeated cyclically when there are fewer: 1 -> (0, 0, 0), 2 -> (0, 1, 0)).

    It multiplies the pixels (a 32x32 image becomes 49x larger) and invents channels, which the native
    :class:`ViTModel` avoids; kept for the performance comparison and the seed's reference recipe.
    """
    x = X.float() if isinstance(X, torch.Tensor) else torch.from_numpy(np.array(X, dtype=np.float32))
    x = x[:, [i % x.shape[1] for i in range(3)]]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
