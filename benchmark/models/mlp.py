"""A flat fully-connected network on the (standardised) pixels of one channel or of all of them.

It is the topo-cluster seed's baseline (a dense network on the flattened EMB1 layer) and a reference
recipe's model (:mod:`benchmark.recipes`); it is not one of the board's searched models (``on_board``
False), but ``--model mlp`` searches it like any other.
"""
from __future__ import annotations

from torch import nn

from benchmark.errors import ConfigError
from benchmark.models._registry import register_model
from benchmark.models.training import TRAIN_DEFAULTS, NeuralModel, number


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"512,512,256"`` -> ``(512, 512, 256)``: the hidden layers' widths ("" = none: a linear model)."""
    try:
        widths = tuple(int(w) for w in str(text).replace(" ", "").split(",") if w)
    except ValueError:
        widths = (0,)
    if any(w < 1 for w in widths):
        raise ConfigError(f"model 'mlp': config 'hidden' must be comma-separated positive widths, got {text!r}")
    return widths


@register_model
class MLPModel(NeuralModel):
    """Dense layers with ReLU (and ``dropout`` after each) on the flattened image of channel ``channel``
    (-1: every channel), then one logit.

    Example:
        >>> from benchmark.models import create_model
        >>> from benchmark.tasks import get_task
        >>> create_model("mlp", get_task("atlas_topo"), {"channel": 0, "hidden": "512,512,256"}).n_parameters()
        656897
    """

    name = "mlp"
    on_board = False
    tiny_config = {"hidden": "16", "epochs": 2, "batch_size": 32}
    default_config = {**TRAIN_DEFAULTS, "hidden": "256,128", "channel": -1, "dropout": 0.0, "label_smoothing": 0.0}
    rules = {"channel": number(int, low=-1), "hidden": lambda v: None if isinstance(v, str) else "must be a string"}

    def __init__(self, task, config, **kwargs) -> None:
        super().__init__(task, config, **kwargs)
        parse_hidden(self.config["hidden"])
        if self.config["channel"] >= self.task.image_shape[0]:
            raise ConfigError(f"model 'mlp': channel {self.config['channel']} is out of range for "
                              f"{self.task.name}'s {self.task.image_shape[0]} channel(s)")

    def build_net(self) -> nn.Module:
        c = self.config
        C, H, W = self.input_shape
        layers: list[nn.Module] = [] if c["channel"] < 0 else [Channel(c["channel"])]
        width = (C if c["channel"] < 0 else 1) * H * W
        layers.append(nn.Flatten())
        for w in parse_hidden(c["hidden"]):
            layers += [nn.Linear(width, w), nn.ReLU(inplace=True), nn.Dropout(c["dropout"])]
            width = w
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers)


class Channel(nn.Module):
    """``(n, C, H, W)`` -> ``(n, 1, H, W)``: one channel."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, self.index:self.index + 1]

