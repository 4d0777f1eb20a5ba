"""Named benchmark shapes from real networks, with their FLOP and byte counts.

The layer tables play the role of XNNPACK's ``bench/models/*.txt``: every convolution,
pooling and Linear layer of the networks users run, at the batch sizes they run them.

- LeNet-5 (1×32×32), the PyTorch CIFAR-10 tutorial net, the Keras CIFAR-10 tutorial net and
  CifarNet (3×32×32), at batch 64 (training) and 1 (inference). Layers that two networks
  share (LeNet-5's and the tutorial net's conv2/fc layers) are benchmarked once, under the
  first name, with the other listed in ``aliases``.
- ResNet-18 (He et al. 2016, torchvision's layout): the 7×7/2 stem, the stride-1 3×3
  convolution of each stage (56/28/14/7, 64–512 channels), the 1×1/2 downsample
  projections and the 3×3/2 p1 max-pool, at batch 1 and 8.
- VGG-16's conv3 (3×3, 256 channels at 56×56), MobileNet-v2 depthwise 3×3 layers, and a
  DeepLab-style dilated 3×3 (dilation 2).
- GEMM squares 64…2048.

FLOPs follow STYLE §8: a convolution costs 2·N·K·(C/g)·KH·KW·OH·OW in each direction
(forward, backward_data, backward_weight); GEMM 2·M·N·K. Bytes are the minimum traffic of
one call: every operand read once and every result written once (float32, 4 bytes; max-pool
indices int64, 8 bytes). Arithmetic intensity = FLOPs / bytes (the roofline's x axis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOAT_BYTES = 4
INDEX_BYTES = 8


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's Conv2d output size along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvShape:
    """One Conv2d layer: input (N, C, H, W), weight (K, C/groups, R, S), square hyperparameters."""

    name: str
    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    quick: bool = False
    aliases: tuple[str, ...] = ()

    kind = "conv2d"
    directions = ("forward", "backward_data", "backward_weight")

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c // self.groups, self.r, self.s)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        oh = conv_output_size(self.h, self.r, self.stride, self.padding, self.dilation)
        ow = conv_output_size(self.w, self.s, self.stride, self.padding, self.dilation)
        return (self.n, self.k, oh, ow)

    def flops(self, direction: str = "forward") -> float:  # noqa: ARG002 - same each way
        """2·N·K·(C/g)·R·S·OH·OW, the same for forward, backward_data and backward_weight."""
        n, k, oh, ow = self.y_shape
        return 2.0 * n * k * (self.c // self.groups) * self.r * self.s * oh * ow

    def bytes(self, direction: str = "forward") -> float:
        """Minimum traffic: forward reads x, w, b and writes y; backward_data reads dy, w and
        writes dx; backward_weight reads dy, x and writes dw, db."""
        x, w, y = _numel(self.x_shape), _numel(self.w_shape), _numel(self.y_shape)
        words = {"forward": x + w + self.k + y,
                 "backward_data": y + w + x,
                 "backward_weight": y + x + w + self.k}[direction]
        return float(FLOAT_BYTES * words)

    def im2col_bytes(self) -> float:
        """One image's im2col matrix, every group: (C·R·S) × (OH·OW) floats. The issue's
        workspace bound is this much per thread."""
        _, _, oh, ow = self.y_shape
        return float(FLOAT_BYTES * self.c * self.r * self.s * oh * ow)

    def describe(self) -> dict:
        return {"x": list(self.x_shape), "weight": list(self.w_shape), "y": list(self.y_shape),
                "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


@dataclass(frozen=True)
class PoolShape:
    """One pooling layer (``op`` 'max_pool2d' or 'avg_pool2d') on an (N, C, H, W) map."""

    name: str
    op: str
    n: int
    c: int
    h: int
    w: int
    kernel: int
    stride: int
    padding: int = 0
    quick: bool = False
    aliases: tuple[str, ...] = ()

    directions = ("forward", "backward")

    @property
    def kind(self) -> str:
        return self.op

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        oh = conv_output_size(self.h, self.kernel, self.stride, self.padding, 1)
        ow = conv_output_size(self.w, self.kernel, self.stride, self.padding, 1)
        return (self.n, self.c, oh, ow)

    def flops(self, direction: str = "forward") -> float:  # noqa: ARG002
        """Pooling is memory-bound: no FLOP count, its rate is reported in GB/s."""
        return 0.0

    def bytes(self, direction: str = "forward") -> float:  # noqa: ARG002 - same each way
        """Max-pool forward reads x, writes y and the int64 indices; backward reads dy and the
        indices and writes dx. Avg-pool moves x and y only."""
        x, y = _numel(self.x_shape), _numel(self.y_shape)
        idx = INDEX_BYTES * y if self.op == "max_pool2d" else 0
        return float(FLOAT_BYTES * (x + y) + idx)

    def describe(self) -> dict:
        return {"x": list(self.x_shape), "y": list(self.y_shape), "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding}


@dataclass(frozen=True)
class GemmShape:
    """C[M, N] = A[M, K] @ B[K, N] (kind 'gemm'), or a Linear layer (kind 'linear'):
    y[B, out] = x[B, in] @ W[out, in]^T, with its backward_data (dx = dy @ W) and
    backward_weight (dW = dy^T @ x) GEMMs."""

    name: str
    m: int
    n: int
    k: int
    linear: bool = False
    quick: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "linear" if self.linear else "gemm"

    @property
    def directions(self) -> tuple[str, ...]:
        return ("forward", "backward_data", "backward_weight") if self.linear else ("gemm",)

    def gemm_mnk(self, direction: str) -> tuple[int, int, int]:
        """(M, N, K) of the GEMM one direction runs. For a Linear layer self.m is the batch,
        self.n the output features and self.k the input features."""
        b, out, inp = self.m, self.n, self.k
        return {"gemm": (b, out, inp), "forward": (b, out, inp),
                "backward_data": (b, inp, out), "backward_weight": (out, inp, b)}[direction]

    def flops(self, direction: str = "gemm") -> float:
        m, n, k = self.gemm_mnk(direction)
        return 2.0 * m * n * k

    def bytes(self, direction: str = "gemm") -> float:
        m, n, k = self.gemm_mnk(direction)
        return float(FLOAT_BYTES * (m * k + k * n + m * n))

    def describe(self) -> dict:
        if self.linear:
            return {"batch": self.m, "out_features": self.n, "in_features": self.k}
        return {"m": self.m, "n": self.n, "k": self.k}


@dataclass(frozen=True)
class Network:
    """The layers of one network at one batch size (for the whole-model rows' FLOP count)."""

    name: str
    batch: int
    layers: list = field(default_factory=list)

    def forward_flops(self) -> float:
        """Sum of the convolution and Linear forward FLOPs (activations/pooling are free)."""
        return sum(l.flops("forward") for l in self.layers if not isinstance(l, PoolShape))


def _numel(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# ---- the classic small CNNs -----------------------------------------------------------

def _pools(prefix: str, n: int, c: int, hw: int, quick: bool) -> list[PoolShape]:
    """2×2/2 max and avg pooling, and 3×3/2 p1 max-pool, on one feature map."""
    return [PoolShape(f"{prefix} max2x2/2", "max_pool2d", n, c, hw, hw, 2, 2, 0, quick),
            PoolShape(f"{prefix} avg2x2/2", "avg_pool2d", n, c, hw, hw, 2, 2, 0),
            PoolShape(f"{prefix} max3x3/2p1", "max_pool2d", n, c, hw, hw, 3, 2, 1)]


def small_cnn(net: str, n: int) -> list:
    """Conv, pooling (on each pooled feature map) and Linear layers of `net` at batch `n`."""
    b = f"b{n}"
    q = n == 64  # --quick keeps the training batch
    if net in ("lenet5", "tutorial"):
        c_in, hw = (1, 32) if net == "lenet5" else (3, 32)
        return [
            ConvShape(f"{net}.conv1 {b}", n, c_in, hw, hw, 6, 5, 5, quick=q),
            *_pools(f"{net}.pool1 {b}", n, 6, 28, q and net == "lenet5"),
            ConvShape(f"{net}.conv2 {b}", n, 6, 14, 14, 16, 5, 5, quick=q),
            *_pools(f"{net}.pool2 {b}", n, 16, 10, False),
            GemmShape(f"{net}.fc1 {b}", n, 120, 400, linear=True, quick=q),
            GemmShape(f"{net}.fc2 {b}", n, 84, 120, linear=True),
            GemmShape(f"{net}.fc3 {b}", n, 10, 84, linear=True),
        ]
    if net == "keras":
        return [
            ConvShape(f"keras.conv1 {b}", n, 3, 32, 32, 32, 3, 3),
            *_pools(f"keras.pool1 {b}", n, 32, 30, False),
            ConvShape(f"keras.conv2 {b}", n, 32, 15, 15, 64, 3, 3),
            *_pools(f"keras.pool2 {b}", n, 64, 13, False),
            ConvShape(f"keras.conv3 {b}", n, 64, 6, 6, 64, 3, 3),
            GemmShape(f"keras.fc1 {b}", n, 64, 1024, linear=True),
            GemmShape(f"keras.fc2 {b}", n, 10, 64, linear=True),
        ]
    if net == "cifarnet":
        return [
            ConvShape(f"cifarnet.conv1 {b}", n, 3, 32, 32, 32, 3, 3, padding=1, quick=q),
            *_pools(f"cifarnet.pool1 {b}", n, 32, 32, q),
            ConvShape(f"cifarnet.conv2 {b}", n, 32, 16, 16, 64, 3, 3, padding=1, quick=q),
            *_pools(f"cifarnet.pool2 {b}", n, 64, 16, False),
            GemmShape(f"cifarnet.fc1 {b}", n, 128, 4096, linear=True, quick=q),
            GemmShape(f"cifarnet.fc2 {b}", n, 10, 128, linear=True),
        ]
    raise ValueError(f"small_cnn: unknown network {net!r}")


SMALL_CNNS = ("lenet5", "tutorial", "keras", "cifarnet")


def network(net: str, n: int) -> Network:
    return Network(net, n, small_cnn(net, n))


def conv_pool_blocks() -> list[tuple[ConvShape, bool]]:
    """The b64 conv layers of the small CNNs that a 2x2/2 max pool follows (after a ReLU),
    each once (LeNet-5's conv2 is also the tutorial's), with whether it is its net's first
    layer (whose input needs no gradient)."""
    blocks: dict[tuple, tuple[ConvShape, bool]] = {}
    for net in SMALL_CNNS:
        layers = small_cnn(net, 64)
        convs = [i for i, layer in enumerate(layers) if isinstance(layer, ConvShape)]
        for i in convs:
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, PoolShape) and nxt.op == "max_pool2d" and nxt.kernel == 2:
                blocks.setdefault(_key(layers[i]), (layers[i], i == convs[0]))
    return list(blocks.values())


# ---- ResNet-18, VGG, MobileNet-v2, dilated --------------------------------------------

def resnet18(n: int) -> list:
    """ResNet-18's distinct layer shapes at batch n (torchvision layout, 224×224 input)."""
    b = f"b{n}"
    q = n == 1
    layers: list = [
        ConvShape(f"resnet18.stem7x7/2 {b}", n, 3, 224, 224, 64, 7, 7, 2, 3, quick=q),
        PoolShape(f"resnet18.maxpool3x3/2p1 {b}", "max_pool2d", n, 64, 112, 112, 3, 2, 1,
                  quick=q),
    ]
    for i, (ch, hw) in enumerate(((64, 56), (128, 28), (256, 14), (512, 7))):
        layers.append(ConvShape(f"resnet18.conv3x3 {hw}x{hw}x{ch} {b}", n, ch, hw, hw, ch,
                                3, 3, 1, 1, quick=q and i in (0, 2)))
    for c_in, hw in ((64, 56), (128, 28), (256, 14)):
        layers.append(ConvShape(f"resnet18.down1x1/2 {hw}x{hw}x{c_in} {b}", n, c_in, hw, hw,
                                2 * c_in, 1, 1, 2, 0, quick=q and c_in == 128))
    return layers


def other_layers() -> list:
    """VGG-16 conv3, MobileNet-v2 depthwise 3×3 and a dilated 3×3."""
    return [
        ConvShape("vgg16.conv3 3x3 56x56x256 b1", 1, 256, 56, 56, 256, 3, 3, 1, 1),
        ConvShape("mobilenet_v2.dw3x3 112x112x32 b1", 1, 32, 112, 112, 32, 3, 3, 1, 1,
                  groups=32, quick=True),
        ConvShape("mobilenet_v2.dw3x3/2 56x56x144 b1", 1, 144, 56, 56, 144, 3, 3, 2, 1,
                  groups=144),
        ConvShape("mobilenet_v2.dw3x3 28x28x192 b8", 8, 192, 28, 28, 192, 3, 3, 1, 1,
                  groups=192),
        ConvShape("deeplab.dilated3x3 d2 28x28x256 b1", 1, 256, 28, 28, 256, 3, 3, 1, 2,
                  dilation=2, quick=True),
    ]


def gemm_squares() -> list[GemmShape]:
    return [GemmShape(f"sgemm {s}", s, s, s, quick=s in (256, 512, 1024))
            for s in (64, 128, 256, 512, 1024, 2048)]


def _key(layer) -> tuple:
    """What makes two layers the same benchmark: everything but the name and flags."""
    skip = {"name", "quick", "aliases"}
    return (type(layer).__name__,
            *(v for k, v in layer.__dict__.items() if k not in skip))


def all_layers() -> list:
    """Every benchmark layer, duplicates merged (the first name wins, the others become
    aliases; a merged layer is quick if any of its names is)."""
    layers = [*gemm_squares()]
    for n in (64, 1):
        for net in SMALL_CNNS:
            layers += small_cnn(net, n)
    for n in (1, 8):
        layers += resnet18(n)
    layers += other_layers()
    merged: dict[tuple, object] = {}
    for layer in layers:
        key = _key(layer)
        if key in merged:
            first = merged[key]
            merged[key] = type(first)(**{**first.__dict__,
                                         "quick": first.quick or layer.quick,
                                         "aliases": (*first.aliases, layer.name)})
        else:
            merged[key] = layer
    return list(merged.values())
