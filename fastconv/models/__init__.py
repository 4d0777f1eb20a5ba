"""fastconv.models: the classic small CNNs for MNIST and CIFAR-10, written in fastconv.nn.

Each network's parameter names and shapes equal those of the PyTorch code it comes from,
so ``model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})``
loads torch weights and ``torch_model.load_state_dict`` takes ours back (via torch.from_numpy).

- :class:`LeNet5`: LeNet-5 on 1×32×32 input (MNIST padded by 2).
- :class:`TutorialNet`: the PyTorch CIFAR-10 tutorial net ("Training a Classifier").
- :class:`KerasNet`: the Keras/TensorFlow CIFAR-10 CNN tutorial.
- :class:`CifarNet`: conv3-32 p1, pool, conv32-64 p1, pool, fc 4096-128-10.

:data:`MODELS` maps the command-line names to a :class:`ModelSpec` (class, dataset,
input shape), the one registry that ``fastconv train``/``eval`` and the tests read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastconv.models.cifar import (
    CifarNet,
    KerasNet,
    TutorialNet,
    cifarnet_class,
    keras_net_class,
    tutorial_net_class,
)
from fastconv.models.lenet import LeNet5, lenet5_class
from fastconv.nn import Module

__all__ = ["MODELS", "CifarNet", "KerasNet", "LeNet5", "ModelSpec", "TutorialNet",
           "architecture", "get_model"]


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model and what data it expects.

    Attributes
    ----------
    cls : type
        The model class; ``cls()`` builds it with torch's default initialisation.
    dataset : str
        ``'mnist'`` or ``'cifar10'``: the dataset the architecture is written for.
    input_shape : tuple of int
        ``(C, H, W)`` of one input image, after the dataset's transforms (LeNet-5 takes
        MNIST's 28×28 padded by 2 to 32×32).
    num_classes : int
        Number of logits (10 for both datasets).
    """

    cls: type[Module]
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int = 10
    factory: Callable | None = None  # (nn, F) -> the class written against those modules


MODELS: dict[str, ModelSpec] = {
    "lenet5": ModelSpec(LeNet5, "mnist", (1, 32, 32), factory=lenet5_class),
    "tutorial": ModelSpec(TutorialNet, "cifar10", (3, 32, 32), factory=tutorial_net_class),
    "keras": ModelSpec(KerasNet, "cifar10", (3, 32, 32), factory=keras_net_class),
    "cifarnet": ModelSpec(CifarNet, "cifar10", (3, 32, 32), factory=cifarnet_class),
}


def architecture(name: str, nn, F):
    """Build model `name` from the same source code against another library's modules.

    ``architecture("lenet5", torch.nn, torch.nn.functional)`` is the PyTorch twin of
    ``LeNet5()``: same layers, same parameter names, torch's own initialisation.
    """
    get_model(name)  # validates the name
    return MODELS[name].factory(nn, F)()


def get_model(name: str) -> Module:
    """Build the registered model `name` (a key of :data:`MODELS`).

    Raises
    ------
    ValueError
        If `name` is not registered; the message lists the known names.
    """
    spec = MODELS.get(name)
    if spec is None:
        msg = f"unknown model {name!r}; choose one of {', '.join(MODELS)}"
        raise ValueError(msg)
    return spec.cls()
