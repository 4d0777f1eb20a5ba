"""Command line: ``fastconv`` / ``python -m fastconv``.

- ``fastconv train --model lenet5 --dataset mnist [--epochs E ...]``: train a model of
  :mod:`fastconv.models` on MNIST/CIFAR-10 (:func:`fastconv.training.train`).
- ``fastconv eval --model lenet5 --dataset mnist --checkpoint CKPT``: test accuracy and
  confusion matrix of a saved model (:func:`fastconv.training.evaluate_checkpoint`).
- ``fastconv info``: backend_info() in readable form.
- ``fastconv bench [--quick] [--filter RE] [--threads N[,N]] [--json FILE] [--plot PNG]``:
  kernel and whole-model benchmarks, fastconv against NumPy (GEMM, Linear) and PyTorch
  (conv, pooling, models) in the same run (:mod:`fastconv.bench.command`); with
  ``--busy-core``, each side at N threads against itself at 1 while a busy loop holds a
  core (:mod:`fastconv.bench.busy`).
- ``fastconv check [--json FILE] [--filter S]``: every public op and model, forward and
  backward, float32 and float64, against PyTorch in float64 (:mod:`fastconv.bench.check`).
- no sub-command: ``info`` followed by ``bench --quick``.
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

import fastconv as fc
from fastconv.bench.check import add_check_arguments, run_check_cli
from fastconv.bench.command import add_bench_arguments, run_bench_cli


def _print_info() -> None:
    info = fc.backend_info()
    print(f"fastconv {info['version']}  (numpy {np.__version__}, python {platform.python_version()})")
    print(f"  cpu:            {info['cpu'] or platform.processor()}")
    print(f"  isa:            {info['isa']}  (compiled: {', '.join(info['compiled_isas'])}; "
          f"supported here: {', '.join(info['supported_isas'])})")
    tiles = info["gemm_tile_mr_nr"]
    print(f"  gemm tile MRxNR: float32 {tiles['float32'][0]}x{tiles['float32'][1]}, "
          f"float64 {tiles['float64'][0]}x{tiles['float64'][1]}")
    print(f"  gemm small-M:   M <= {info['gemm_small_m_max']} runs the unpacked kernel")
    print(f"  threads:        {info['num_threads']}  (OpenMP: {info['openmp']}; load-aware: "
          f"{info['load_aware']}, FASTCONV_LOAD_AWARE=0 turns it off)")
    print(f"  malloc tuned:   {info['malloc_tuned']}  (FASTCONV_MALLOC_TUNING=0 turns it off)")
    print(f"  compiler:       {info['compiler']}")
    print(f"  cuda built:     {info['cuda_built']}")


def _train(args) -> int:
    from fastconv import training
    from fastconv.data import DatasetError

    config = training.TrainConfig(
        model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, augment=True if args.augment else None,
        schedule=args.schedule, recipe=args.recipe, seed=args.seed, threads=args.threads,
        limit_batches=args.limit_batches, save=args.save, resume=args.resume, data=args.data,
        download=args.download, device=args.device)
    try:
        result = training.train(config)
    except training.TrainingInterrupted as stop:
        print(f"\ninterrupted after {stop.epoch} epoch(s) + {stop.batch} batch(es); checkpoint "
              f"saved to {stop.checkpoint} (+ {training.training_state_path(stop.checkpoint)}); "
              f"continue with --resume {stop.checkpoint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before the first batch: nothing to save
        print("\ninterrupted before training started; nothing saved", file=sys.stderr)
        return 130
    except training.ConfigError as e:
        print(f"fastconv train: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, training.CheckpointError, DatasetError) as e:
        print(f"fastconv train: error: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _eval(args) -> int:
    from fastconv import training
    from fastconv.data import DatasetError

    try:
        result = training.evaluate_checkpoint(
            args.model, args.checkpoint, dataset=args.dataset, data=args.data,
            download=args.download, threads=args.threads, batch_size=args.batch_size)
    except training.ConfigError as e:
        print(f"fastconv eval: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, training.CheckpointError, DatasetError) as e:
        print(f"fastconv eval: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.model} {args.checkpoint}: test accuracy {100 * result.accuracy:.2f} % "
          f"({int(result.confusion.trace())}/{result.images}), mean loss {result.loss:.4f}, "
          f"{result.seconds:.1f} s")
    print(training.format_confusion(result))
    return 0


def _add_train_parser(sub) -> None:
    from fastconv.models import MODELS
    from fastconv.training import DATASETS, OPTIMIZERS, SCHEDULES

    p = sub.add_parser(
        "train", help="train a model on MNIST/CIFAR-10",
        description="Train a fastconv.models network on the real MNIST or CIFAR-10 data. "
                    "Unset options come from the recipe (or, with --resume, the checkpoint).")
    p.add_argument("--model", choices=list(MODELS), help="network (required unless --resume)")
    p.add_argument("--dataset", choices=list(DATASETS), help="default: the model's dataset")
    p.add_argument("--epochs", type=int, help="total epochs of the run (default 1)")
    p.add_argument("--batch-size", type=int, help="training batch size (recipe: 64)")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help="override the recipe's")
    p.add_argument("--lr", type=float, help="(peak) learning rate")
    p.add_argument("--momentum", type=float, help="SGD momentum (default 0.9 with --optimizer sgd)")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay (default 0)")
    p.add_argument("--augment", action="store_true",
                   help="random crops (pad 4 CIFAR-10 / 2 MNIST) and, on CIFAR-10, flips")
    p.add_argument("--schedule", choices=list(SCHEDULES), help="per-step lr schedule")
    p.add_argument("--recipe", choices=["default", "tutorial"],
                   help="default: measured best; tutorial: the source tutorial's own")
    p.add_argument("--seed", type=int, help="weights, shuffling and augmentation (default 0)")
    p.add_argument("--threads", type=int, help="fc.set_num_threads (default: all cores)")
    p.add_argument("--limit-batches", type=int, metavar="N", help="at most N batches per epoch")
    p.add_argument("--save", metavar="CKPT", help="write the model here after each epoch "
                   "(optimizer state beside it as *.optim.npz)")
    p.add_argument("--resume", metavar="CKPT",
                   help="continue the run saved in CKPT up to --epochs (its settings are "
                        "kept; add --save CKPT to go on saving)")
    p.add_argument("--data", metavar="ROOT",
                   help="folder with mnist/ and cifar10/ (default $FASTCONV_DATA, "
                        "else ~/.cache/fastconv)")
    p.add_argument("--download", action="store_true", help="fetch missing dataset files")
    p.add_argument("--device", default="cpu", help="cpu (cuda needs a CUDA build)")


def _add_eval_parser(sub) -> None:
    from fastconv.models import MODELS
    from fastconv.training import DATASETS, EVAL_BATCH_SIZE

    p = sub.add_parser("eval", help="test accuracy and confusion matrix of a checkpoint")
    p.add_argument("--model", required=True, choices=list(MODELS))
    p.add_argument("--dataset", choices=list(DATASETS), help="default: the model's dataset")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="model state_dict written by fastconv train --save (or fc.save)")
    p.add_argument("--data", metavar="ROOT", help="as for train")
    p.add_argument("--download", action="store_true", help="fetch missing dataset files")
    p.add_argument("--threads", type=int, help="fc.set_num_threads")
    p.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="print backend_info()")
    add_bench_arguments(sub.add_parser(
        "bench", help="kernel and model benchmarks against numpy/torch, alternated in one run"))
    add_check_arguments(sub.add_parser(
        "check", help="parity of every op and model with PyTorch in float64"))
    _add_train_parser(sub)
    _add_eval_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "info":
        _print_info()
        return 0
    if args.command == "bench":
        return run_bench_cli(args)
    if args.command == "check":
        return run_check_cli(args)
    _print_info()
    print()
    return run_bench_cli(parser.parse_args(["bench", "--quick"]))


if __name__ == "__main__":
    sys.exit(main())
