"""Small CNNs for CIFAR-10 (3×32×32 input, 10 classes).

Each architecture is written once, as a function of the library's ``nn`` and ``F`` modules
(``*_class(nn, F)``), so the same code builds the fastconv model and, with ``torch.nn``, the
PyTorch twin that tests and benchmarks compare against.
"""

from __future__ import annotations

from fastconv import functional as _F
from fastconv import nn as _nn

__all__ = ["CifarNet", "KerasNet", "TutorialNet", "cifarnet_class", "keras_net_class",
           "tutorial_net_class"]


def tutorial_net_class(nn, F):
    """The TutorialNet class written against `nn` / `F` (fastconv's or torch's)."""

    class TutorialNet(nn.Module):
        """The CIFAR-10 net of PyTorch's "Training a Classifier" tutorial.

        conv 3→6 k5, ReLU, max-pool 2; conv 6→16 k5, ReLU, max-pool 2; fc 400→120→84→10.
        Source: https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html (class
        ``Net``); attribute names ``conv1, pool, conv2, fc1, fc2, fc3`` as there.

        Input ``(N, 3, 32, 32)``; output ``(N, 10)`` logits.
        """

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))   # (N, 6, 14, 14)
            x = self.pool(F.relu(self.conv2(x)))   # (N, 16, 5, 5)
            x = x.flatten(1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    return TutorialNet


TutorialNet = tutorial_net_class(_nn, _F)
TutorialNet.__qualname__ = "TutorialNet"


def keras_net_class(nn, F):  # noqa: ARG001 (F unused by the Sequential nets)
    """The KerasNet class written against `nn` / `F` (fastconv's or torch's)."""

    class KerasNet(nn.Sequential):
        """The CNN of the TensorFlow/Keras "Convolutional Neural Network (CNN)" tutorial.

        conv 3→32 k3, ReLU, max-pool 2; conv 32→64 k3, ReLU, max-pool 2; conv 64→64 k3, ReLU;
        flatten; dense 1024→64, ReLU; dense 64→10 (logits). Source:
        https://www.tensorflow.org/tutorials/images/cnn (the Keras ``Sequential`` there). Written as a ``Sequential``, so
        parameters are named by position (``0.weight`` … ``10.bias``), as the same layers in a
        ``torch.nn.Sequential``. Keras flattens NHWC where this flattens NCHW: the layer shapes
        match, Keras weights would need the dense kernel's rows permuted.

        Input ``(N, 3, 32, 32)``; output ``(N, 10)`` logits.
        """

        def __init__(self) -> None:
            super().__init__(
                nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),      # (N, 32, 15, 15)
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),     # (N, 64, 6, 6)
                nn.Conv2d(64, 64, 3), nn.ReLU(),                      # (N, 64, 4, 4)
                nn.Flatten(),
                nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
                nn.Linear(64, 10),
            )

    return KerasNet


KerasNet = keras_net_class(_nn, _F)
KerasNet.__qualname__ = "KerasNet"


def cifarnet_class(nn, F):  # noqa: ARG001 (F unused by the Sequential nets)
    """The CifarNet class written against `nn` / `F` (fastconv's or torch's)."""

    class CifarNet(nn.Sequential):
        """A small VGG-style CIFAR-10 ConvNet: two padded 3×3 conv blocks and two dense layers.

        conv 3→32 k3 p1, ReLU, max-pool 2; conv 32→64 k3 p1, ReLU, max-pool 2; flatten;
        fc 4096→128, ReLU; fc 128→10: 3×3 "same" convolutions doubling the channels after
        each 2×2 pooling (the VGG pattern, Simonyan & Zisserman 2015), sized to train in
        minutes on a CPU. Source: fastconv's API contract (``shared/API.md``, issue 4:
        "conv3-32-p1, pool, conv32-64-p1, pool, fc4096-128-10"), the layout of the usual
        small CIFAR-10 example CNNs. Written as a ``Sequential``: parameters ``0.*, 3.*, 7.*,
        9.*``, as the same layers in a ``torch.nn.Sequential``.

        Input ``(N, 3, 32, 32)``; output ``(N, 10)`` logits.
        """

        def __init__(self) -> None:
            super().__init__(
                nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),   # (N, 32, 16, 16)
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),  # (N, 64, 8, 8)
                nn.Flatten(),
                nn.Linear(64 * 8 * 8, 128), nn.ReLU(),
                nn.Linear(128, 10),
            )

    return CifarNet


CifarNet = cifarnet_class(_nn, _F)
CifarNet.__qualname__ = "CifarNet"
