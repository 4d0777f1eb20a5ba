"""Where a model's training step spends its time: C++ kernels vs everything else.

Every function of the compiled core (``fastconv._core``: conv, pooling, GEMM) is wrapped
with a wall-clock timer; a training step (forward, cross-entropy, backward, SGD step) runs
repeatedly on one random batch, and the share of the step spent outside those kernels — the
Python layer, autograd bookkeeping and NumPy elementwise work — is reported. The timers
cost well under a microsecond per call, a few percent of the smallest kernel.

    python benchmarks/profile_train_step.py [--model lenet5] [--batch 64] [--steps 200]
                                            [--threads 1]
    python benchmarks/profile_train_step.py --cprofile     # the top Python functions too
    python benchmarks/profile_train_step.py --inference --batch 1   # no_grad forward only
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import pstats
import time

import numpy as np

import fastconv as fc
from fastconv import _core
from fastconv import functional as F
from fastconv.models import MODELS, get_model

KERNEL_TIME: collections.Counter = collections.Counter()
KERNEL_CALLS: collections.Counter = collections.Counter()


def _timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            KERNEL_TIME[name] += time.perf_counter() - t0
            KERNEL_CALLS[name] += 1

    return wrapper


def instrument_core() -> None:
    """Replace every kernel entry point of fastconv._core by a timed wrapper."""
    skip = {"backend_info", "compiled_isas", "supported_isas", "current_isa", "_set_isa",
            "set_num_threads", "get_num_threads", "conv2d_choose_algorithm"}
    for name in dir(_core):
        if name.startswith("__") or name in skip:
            continue
        setattr(_core, name, _timed(name, getattr(_core, name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(MODELS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inference", action="store_true",
                        help="time model(x) under no_grad instead of a training step")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()

    fc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    spec = MODELS[args.model]
    x = fc.tensor(rng.standard_normal((args.batch, *spec.input_shape), dtype=np.float32))
    y = fc.tensor(rng.integers(0, spec.num_classes, args.batch))
    model = get_model(args.model)
    opt = fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def inference():
        with fc.no_grad():
            model(x)

    if args.inference:
        model.eval()
    step = inference if args.inference else train_step

    for _ in range(10):
        step()
    plain = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        plain.append(time.perf_counter() - t0)

    instrument_core()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    total = time.perf_counter() - t0
    kernels = sum(KERNEL_TIME.values())
    what = "inference" if args.inference else "training step"
    print(f"{args.model} {what}, batch {args.batch}, {args.threads} thread(s), "
          f"isa {fc.backend_info()['isa']}")
    print(f"  step time (uninstrumented): median {np.median(plain) * 1e3:.3f} ms "
          f"(min {min(plain) * 1e3:.3f}, max {max(plain) * 1e3:.3f})")
    print(f"  in C++ kernels: {kernels / args.steps * 1e3:.3f} ms of "
          f"{total / args.steps * 1e3:.3f} ms per instrumented step")
    print(f"  outside the C++ kernels: {100 * (1 - kernels / total):.1f} %")
    for name, t in KERNEL_TIME.most_common():
        print(f"    {name:32s} {t / args.steps * 1e3:8.3f} ms/step  "
              f"{KERNEL_CALLS[name] // args.steps} call(s)")
    if args.cprofile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [step() for _ in range(args.steps)])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
