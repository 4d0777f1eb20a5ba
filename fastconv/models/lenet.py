"""LeNet-5 for MNIST.

The architecture is written once, as a function of the library's ``nn`` and ``F`` modules
(:func:`lenet5_class`), so the same code builds the fastconv model and, with ``torch.nn``,
the PyTorch twin that tests and benchmarks compare against.
"""

from __future__ import annotations

from fastconv import functional as _F
from fastconv import nn as _nn

__all__ = ["LeNet5", "lenet5_class"]


def lenet5_class(nn, F):
    """The LeNet5 class written against `nn` / `F` (fastconv's or torch's)."""

    class LeNet5(nn.Module):
        """LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998), as in the PyTorch tutorials.

        conv 1→6 k5, ReLU, max-pool 2; conv 6→16 k5, ReLU, max-pool 2; fc 400→120→84→10 with
        ReLU between. ReLU and max pooling replace the paper's scaled tanh and trainable
        subsampling, and every C3 map sees all S2 maps. Source: "Gradient-based learning
        applied to document recognition" (Proc. IEEE 1998) as adapted by PyTorch's "Neural
        Networks" tutorial, https://pytorch.org/tutorials/beginner/blitz/neural_networks_tutorial.html.

        Input ``(N, 1, 32, 32)`` float32 (MNIST's 28×28 digits padded by 2, as the paper's
        32×32 field); output ``(N, 10)`` logits. Parameters ``conv1, conv2, fc1, fc2, fc3``
        (each ``.weight``, ``.bias``), named and shaped as the torch tutorial's.
        """

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # (N, 6, 14, 14)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # (N, 16, 5, 5)
            x = x.flatten(1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    return LeNet5


LeNet5 = lenet5_class(_nn, _F)
LeNet5.__qualname__ = "LeNet5"
