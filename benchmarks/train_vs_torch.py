"""Train the same model with the same recipe in fastconv and in PyTorch, side by side.

Both libraries start from the same initial weights (torch's, loaded into fastconv), see the
same batches in the same order (one fastconv DataLoader feeds both, augmentation included),
use the same optimizer, learning-rate schedule and thread count, and alternate step by step
so that machine noise hits both alike. Printed per epoch: each library's test accuracy and
training time, and the time ratio torch / fastconv.

    python benchmarks/train_vs_torch.py --model lenet5 --epochs 1 [--threads 1]
    python benchmarks/train_vs_torch.py --model cifarnet --epochs 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as TF

import fastconv as fc
from fastconv import functional as F
from fastconv import models, training
from fastconv.data import DataLoader


def accuracy(predict, loader) -> float:
    correct = total = 0
    for x, y in loader:
        correct += int((predict(x).argmax(axis=1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(models.MODELS))
    parser.add_argument("--recipe", default="default", choices=["default", "tutorial"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-batches", type=int, default=None)
    parser.add_argument("--data", default=None, help="root holding mnist/ and cifar10/")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()

    spec = models.MODELS[args.model]
    recipe = training.RECIPES[(args.model, args.recipe)]
    fc.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    fc.manual_seed(args.seed)

    tmodel = models.architecture(args.model, torch.nn, TF)
    fmodel = models.get_model(args.model)
    fmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})

    train_set = training.load_dataset(spec.dataset, train=True, root=args.data)
    test_set = training.load_dataset(spec.dataset, train=False, root=args.data)
    train_tf = training.build_transform(spec.dataset, spec.input_shape, recipe.augment)
    test_tf = training.build_transform(spec.dataset, spec.input_shape, False)
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, drop_last=False,
                        seed=args.seed, transform=train_tf)
    test_loader = DataLoader(test_set, batch_size=1000, transform=test_tf)
    steps_per_epoch = min(len(loader), args.limit_batches or len(loader))
    total = steps_per_epoch * args.epochs
    # The training loop's own optimizer and scheduler factories, for both libraries.
    cfg = {"optimizer": recipe.optimizer, "lr": recipe.lr, "momentum": recipe.momentum or 0.0,
           "weight_decay": recipe.weight_decay}
    topt = training.make_optimizer(tmodel, cfg, torch.optim)
    fopt = training.make_optimizer(fmodel, cfg, fc.optim)
    tsched = training.make_scheduler(topt, recipe.schedule, total, torch.optim)
    fsched = training.make_scheduler(fopt, recipe.schedule, total, fc.optim)

    def train_step(model, opt, sched, cross_entropy, x, y):  # the same code for both libraries
        opt.zero_grad()
        cross_entropy(model(x), y).backward()
        opt.step()
        if sched:
            sched.step()

    def t_predict(x):
        with torch.no_grad():
            return tmodel(torch.from_numpy(x)).numpy()

    def f_predict(x):
        with fc.no_grad():
            return fmodel(fc.tensor(x)).numpy()

    print(f"{args.model} on {spec.dataset}: {recipe.describe()}; {args.threads} thread(s), "
          f"torch {torch.__version__}, fastconv isa {fc.backend_info()['isa']}")
    print(f"{'epoch':>5s} {'torch acc %':>11s} {'fastconv acc %':>14s} {'torch s':>8s} "
          f"{'fastconv s':>10s} {'torch/fastconv':>14s}")
    rows = []
    for epoch in range(args.epochs):
        t_time = f_time = 0.0
        tmodel.train()
        fmodel.train()
        for step, (x, y) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            t0 = time.perf_counter()
            train_step(tmodel, topt, tsched, TF.cross_entropy, torch.from_numpy(x), torch.from_numpy(y))
            t1 = time.perf_counter()
            train_step(fmodel, fopt, fsched, F.cross_entropy, fc.tensor(x), fc.tensor(y))
            t2 = time.perf_counter()
            t_time += t1 - t0
            f_time += t2 - t1
        tmodel.eval()
        fmodel.eval()
        t_acc, f_acc = accuracy(t_predict, test_loader), accuracy(f_predict, test_loader)
        rows.append({"epoch": epoch + 1, "torch_accuracy": t_acc, "fastconv_accuracy": f_acc,
                     "torch_seconds": t_time, "fastconv_seconds": f_time,
                     "ratio": t_time / f_time})
        print(f"{epoch + 1:5d} {t_acc:11.2f} {f_acc:14.2f} {t_time:8.1f} {f_time:10.1f} "
              f"{t_time / f_time:13.2f}x")
    gap = rows[-1]["fastconv_accuracy"] - rows[-1]["torch_accuracy"]
    print(f"final accuracy gap (fastconv - torch): {gap:+.2f} points; "
          f"time per epoch torch {np.mean([r['torch_seconds'] for r in rows]):.1f} s, "
          f"fastconv {np.mean([r['fastconv_seconds'] for r in rows]):.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "recipe": recipe.describe(),
                       "threads": args.threads, "epochs": rows}, f, indent=2)


if __name__ == "__main__":
    main()
