"""The layers of fastconv.nn, grouped by kind as in torch.nn.modules."""

from __future__ import annotations

from fastconv.nn.modules.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from fastconv.nn.modules.batchnorm import BatchNorm2d
from fastconv.nn.modules.container import ModuleList, Sequential
from fastconv.nn.modules.conv import Conv2d, ConvTranspose2d
from fastconv.nn.modules.dropout import Dropout
from fastconv.nn.modules.flatten import Flatten
from fastconv.nn.modules.linear import Identity, Linear
from fastconv.nn.modules.loss import CrossEntropyLoss, MSELoss, NLLLoss
from fastconv.nn.modules.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d",
    "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "Flatten", "Identity", "LeakyReLU",
    "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "ModuleList", "NLLLoss", "ReLU",
    "Sequential", "Sigmoid", "Softmax", "Tanh",
]
