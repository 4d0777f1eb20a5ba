"""fastconv.nn: torch.nn-shaped modules, Parameter and init.

Constructor signatures, parameter names and shapes, default initialisation and
``state_dict()`` keys follow torch.nn, so a torch state_dict converted to NumPy
(``{k: v.numpy() for k, v in model.state_dict().items()}``) loads with
``load_state_dict`` and the same forward pass gives the same numbers.
"""

from __future__ import annotations

import sys

from fastconv import functional  # so fc.nn.functional.relu works as torch.nn.functional.relu

# ... and `import fastconv.nn.functional as F` too, naming the same module object.
sys.modules[__name__ + ".functional"] = functional
from fastconv.nn import init
from fastconv.nn.module import Module
from fastconv.nn.modules import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ModuleList,
    MSELoss,
    NLLLoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from fastconv.nn.parameter import Parameter

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d",
    "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "Flatten", "Identity", "LeakyReLU",
    "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleList", "NLLLoss",
    "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh", "functional", "init",
]
