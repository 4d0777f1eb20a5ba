"""fastconv.models and ``fastconv train`` / ``fastconv eval`` on the real MNIST files.

The data comes from ``$FASTCONV_DATA`` (CI: ``shared/data``); every test that reads it is
skipped when the variable is unset, and fails (never skips) when it is set but wrong.

Floors, and why they are safe but still meaningful:

- 300 batches of 64 (19,200 images, a third of an epoch) with the default recipe
  (Adam 3e-3, cosine over those 300 steps, 1 thread): the mean loss of the last 50
  batches must be below half that of the first 50, and test accuracy must reach 95 %.
  Measured (seeds 0, 1, 2): first-50 mean loss 0.92 / 1.00 / 0.98, last-50 0.10 / 0.11 /
  0.12, test accuracy 96.7 / 96.95 / 97.1 %. The floor leaves ~2 points for rounding
  differences across CPUs and ISAs, and is far above chance (10 %): a loop that does not
  learn, or learns from mislabelled or garbled batches, cannot reach it.
- Everything else runs a few dozen batches, where only exact equalities are asserted
  (checkpoint round trips, resume = uninterrupted run, confusion rows = class counts).

The whole file takes about 15-20 s on 2 shared cores (1 training thread).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastconv as fc
from fastconv import cli, training
from fastconv.data import DataLoader
from fastconv.models import MODELS, CifarNet, KerasNet, LeNet5, TutorialNet, architecture


@pytest.fixture
def data_root():
    root = os.environ.get("FASTCONV_DATA")
    if not root:
        pytest.skip("FASTCONV_DATA is not set: no real MNIST data to train on")
    return root


@pytest.fixture(autouse=True)
def _restore_threads_and_quiet_bars(monkeypatch):
    """--threads sets the process-wide count: put it back. No progress bars in the logs."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    old = fc.get_num_threads()
    yield
    fc.set_num_threads(old)


def _train(argv, capsys=None):
    rc = cli.main(["train", "--model", "lenet5", "--dataset", "mnist", "--threads", "1",
                   *argv])
    out = capsys.readouterr() if capsys is not None else None
    return rc, out


@pytest.fixture(scope="module")
def mnist_test():
    root = os.environ.get("FASTCONV_DATA")
    if not root:
        pytest.skip("FASTCONV_DATA is not set")
    return training.load_dataset("mnist", train=False, root=root)


# ---- models ---------------------------------------------------------------------------------

# Parameter shapes as the sources publish them (PyTorch's LeNet-5 and CIFAR-10 tutorials,
# the Keras CNN tutorial, CifarNet as issue 4 / API.md define it).
PUBLISHED_SHAPES = {
    "lenet5": [("conv1.weight", (6, 1, 5, 5)), ("conv1.bias", (6,)),
               ("conv2.weight", (16, 6, 5, 5)), ("conv2.bias", (16,)),
               ("fc1.weight", (120, 400)), ("fc1.bias", (120,)), ("fc2.weight", (84, 120)),
               ("fc2.bias", (84,)), ("fc3.weight", (10, 84)), ("fc3.bias", (10,))],
    "tutorial": [("conv1.weight", (6, 3, 5, 5)), ("conv1.bias", (6,)),
                 ("conv2.weight", (16, 6, 5, 5)), ("conv2.bias", (16,)),
                 ("fc1.weight", (120, 400)), ("fc1.bias", (120,)), ("fc2.weight", (84, 120)),
                 ("fc2.bias", (84,)), ("fc3.weight", (10, 84)), ("fc3.bias", (10,))],
    "keras": [("0.weight", (32, 3, 3, 3)), ("0.bias", (32,)), ("3.weight", (64, 32, 3, 3)),
              ("3.bias", (64,)), ("6.weight", (64, 64, 3, 3)), ("6.bias", (64,)),
              ("9.weight", (64, 1024)), ("9.bias", (64,)), ("11.weight", (10, 64)),
              ("11.bias", (10,))],
    "cifarnet": [("0.weight", (32, 3, 3, 3)), ("0.bias", (32,)), ("3.weight", (64, 32, 3, 3)),
                 ("3.bias", (64,)), ("7.weight", (128, 4096)), ("7.bias", (128,)),
                 ("9.weight", (10, 128)), ("9.bias", (10,))],
}


def test_models_have_the_published_architectures_and_torch_forward():
    """Parameter names, order and shapes equal the published architectures, and the same
    source built with torch.nn gives our logits from the same weights (1e-5 of max)."""
    import torch

    classes = {"lenet5": LeNet5, "tutorial": TutorialNet, "keras": KerasNet,
               "cifarnet": CifarNet}
    assert set(MODELS) == set(PUBLISHED_SHAPES) == set(classes)
    rng = np.random.default_rng(0)
    for name, expected in PUBLISHED_SHAPES.items():
        ours = classes[name]()
        assert MODELS[name].cls is classes[name]
        assert [(k, tuple(p.shape)) for k, p in ours.named_parameters()] == expected, name
        torch.manual_seed(0)
        tmodel = architecture(name, torch.nn, torch.nn.functional)
        ours.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
        x = rng.standard_normal((4, *MODELS[name].input_shape)).astype(np.float32)
        ref = tmodel(torch.from_numpy(x)).detach().numpy()
        with fc.no_grad():
            got = ours(fc.tensor(x)).numpy()
        err = float(np.max(np.abs(got - ref)))
        assert err <= 1e-5 * float(np.max(np.abs(ref))), f"{name}: max |ours - torch| {err:.2e}"


def test_model_registry_datasets_and_docstrings():
    assert {k: s.dataset for k, s in MODELS.items()} == {
        "lenet5": "mnist", "tutorial": "cifar10", "keras": "cifar10", "cifarnet": "cifar10"}
    for spec in MODELS.values():
        assert "Source:" in (spec.cls.__doc__ or ""), spec.cls
        assert (spec.dataset, spec.input_shape[0]) in (("mnist", 1), ("cifar10", 3))


# ---- argument errors (no data needed) -------------------------------------------------------

def test_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--model", "resnet50", "--dataset", "mnist"])
    assert exc.value.code == 2
    assert "resnet50" in capsys.readouterr().err


def test_model_dataset_mismatch_is_a_clear_error(capsys):
    rc = cli.main(["train", "--model", "lenet5", "--dataset", "cifar10"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "lenet5" in err
    assert "mnist" in err
    assert "cifar10" in err
    rc = cli.main(["eval", "--model", "cifarnet", "--dataset", "mnist", "--checkpoint", "x.npz"])
    assert rc == 2
    assert "cifarnet" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "words"), [
    (["--device", "cuda"], ["cuda", "CUDA"]),
    (["--momentum", "0.9"], ["--momentum", "sgd"]),
    (["--epochs", "0"], ["--epochs"]),
    (["--batch-size", "-1"], ["--batch-size"]),
    (["--lr", "0"], ["--lr"]),
])
def test_bad_settings_are_clear_errors(capsys, argv, words):
    rc = cli.main(["train", "--model", "lenet5", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    for w in words:
        assert w in err


def test_missing_data_names_the_folder(tmp_path, capsys):
    rc = cli.main(["train", "--model", "lenet5", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(tmp_path) in err
    assert "mnist" in err


def test_wrong_or_missing_checkpoints_are_clear_errors(tmp_path, capsys):
    other = tmp_path / "cifarnet.npz"
    fc.save(CifarNet().state_dict(), other)
    rc = cli.main(["eval", "--model", "lenet5", "--checkpoint", str(other)])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(other) in err
    assert "LeNet5" in err
    rc = cli.main(["eval", "--model", "lenet5", "--checkpoint", str(tmp_path / "none.npz")])
    assert rc == 1
    assert "none.npz" in capsys.readouterr().err
    # --resume needs the training state written beside the model by --save
    rc = cli.main(["train", "--resume", str(other)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "cifarnet.optim.npz" in err


def test_model_is_required_without_resume(capsys):
    rc = cli.main(["train"])
    assert rc == 2
    assert "--model" in capsys.readouterr().err


def test_no_argument_and_info_still_work(capsys):
    assert cli.main(["info"]) == 0
    assert "isa" in capsys.readouterr().out


# ---- training on the real data --------------------------------------------------------------

def test_cli_smoke_loss_falls_and_accuracy_beats_floor(data_root, tmp_path, capsys):
    """300 batches, 1 epoch, 1 thread: loss falls and test accuracy >= 95 % (floors: module
    doc). Per-batch losses come from the training state written beside the checkpoint."""
    ckpt = tmp_path / "smoke.npz"
    rc, out = _train(["--epochs", "1", "--limit-batches", "300", "--seed", "0",
                      "--data", data_root, "--save", str(ckpt)], capsys)
    assert rc == 0, out.err
    assert "test acc" in out.out
    assert "summary" in out.out
    assert "images/s" in out.out
    state = training.load_training_state(ckpt)
    (epoch,) = state["history"]
    losses = np.asarray(epoch["batch_losses"])
    assert len(losses) == 300
    assert epoch["batches"] == 300
    assert epoch["images"] == 300 * 64
    first, last = losses[:50].mean(), losses[-50:].mean()
    assert last < 0.5 * first, f"loss did not fall: first 50 {first:.3f}, last 50 {last:.3f}"
    assert epoch["test_accuracy"] >= 0.95, epoch
    printed = re.search(r"test accuracy\s+([\d.]+) %", out.out)
    assert printed
    assert abs(float(printed.group(1)) - 100 * epoch["test_accuracy"]) < 0.01


def test_checkpoint_restores_identical_accuracy_and_eval_prints_confusion(
        data_root, tmp_path, capsys, mnist_test):
    ckpt = tmp_path / "lenet.npz"
    rc, _ = _train(["--limit-batches", "40", "--data", data_root, "--save", str(ckpt)], capsys)
    assert rc == 0
    trained = training.load_training_state(ckpt)["history"][-1]["test_accuracy"]

    model = LeNet5()
    model.load_state_dict(fc.load(ckpt))  # the checkpoint is a plain state_dict
    loader = DataLoader(mnist_test, batch_size=500, transform=training.build_transform(
        "mnist", (1, 32, 32), augment=False))
    result = training.evaluate(model, loader, classes=mnist_test.classes)
    assert result.accuracy == trained
    assert model.training  # evaluate restores train mode

    rc = cli.main(["eval", "--model", "lenet5", "--dataset", "mnist", "--checkpoint", str(ckpt),
                   "--data", data_root, "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"test accuracy {100 * trained:.2f} %" in out
    rows = [line for line in out.splitlines() if re.match(r"\d - \w+\s+\d", line)]
    assert len(rows) == 10
    counts = np.bincount(mnist_test.targets, minlength=10)
    for i, line in enumerate(rows):
        assert line.startswith(mnist_test.classes[i])
        cells = [int(v) for v in line[len(mnist_test.classes[i]):].split()[:11]]
        assert sum(cells[:10]) == cells[10] == counts[i]
    assert sum(int(r.split()[3 + i]) for i, r in enumerate(rows)) == round(trained * 10000)


def test_resume_continues_epoch_counter_and_optimizer_state(data_root, tmp_path, capsys):
    ckpt = tmp_path / "run.npz"
    common = ["--limit-batches", "15", "--data", data_root, "--schedule", "none"]
    assert _train(["--epochs", "1", "--save", str(ckpt), *common], capsys)[0] == 0
    state = training.load_training_state(ckpt)
    assert (state["epoch"], state["batch"]) == (1, 0)
    assert float(state["optimizer"]["state"][0]["step"]) == 15

    rc, out = _train(["--epochs", "2", "--resume", str(ckpt), "--save", str(ckpt), *common],
                     capsys)
    assert rc == 0, out.err
    assert "resumed" in out.out
    assert "epoch 2/2" in out.out
    assert "epoch 1/2" not in out.out
    state = training.load_training_state(ckpt)
    assert state["epoch"] == 2
    assert float(state["optimizer"]["state"][0]["step"]) == 30
    assert [e["epoch"] for e in state["history"]] == [1, 2]

    # a resume may not change what the optimizer state depends on
    rc, out = _train(["--epochs", "3", "--resume", str(ckpt), "--lr", "0.1"], capsys)
    assert rc == 2
    assert "--lr" in out.err


def test_interrupt_then_resume_equals_uninterrupted_run(data_root, tmp_path, monkeypatch):
    """Ctrl-C in epoch 2 (simulated inside the loop): the checkpoint is written, and resuming
    from it ends with exactly the weights and metrics of a run never interrupted."""
    base = {"model": "lenet5", "epochs": 2, "limit_batches": 12, "threads": 1,
            "data": data_root, "progress": False}
    quiet = {"log": lambda _: None}
    full = training.train(training.TrainConfig(save=str(tmp_path / "full.npz"), **base), **quiet)

    real_step, calls = training.train_step, []

    def interrupted_step(*args):
        calls.append(1)
        if len(calls) == 17:  # batch 5 of epoch 2
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", interrupted_step)
    ckpt = tmp_path / "cut.npz"
    with pytest.raises(training.TrainingInterrupted) as exc:
        training.train(training.TrainConfig(save=str(ckpt), **base), **quiet)
    assert (exc.value.checkpoint, exc.value.epoch, exc.value.batch) == (str(ckpt), 1, 4)
    assert ckpt.exists()
    assert Path(training.training_state_path(ckpt)).exists()
    monkeypatch.setattr(training, "train_step", real_step)

    resumed = training.train(training.TrainConfig(resume=str(ckpt), save=str(ckpt),
                                                  threads=1, data=data_root, progress=False),
                             **quiet)
    a, b = fc.load(tmp_path / "full.npz"), fc.load(ckpt)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [e.test_accuracy for e in resumed.epochs] == [e.test_accuracy for e in full.epochs]
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in full.epochs]


def test_cli_interrupt_saves_default_checkpoint_and_exits_130(data_root, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.chdir(tmp_path)
    real_step, calls = training.train_step, []

    def interrupted_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", interrupted_step)
    rc, out = _train(["--limit-batches", "10", "--data", data_root], capsys)
    assert rc == 130
    assert "interrupted" in out.err
    assert training.DEFAULT_INTERRUPT_CHECKPOINT in out.err
    saved = fc.load(tmp_path / training.DEFAULT_INTERRUPT_CHECKPOINT)
    LeNet5().load_state_dict(saved)
    state = training.load_training_state(tmp_path / training.DEFAULT_INTERRUPT_CHECKPOINT)
    assert (state["epoch"], state["batch"]) == (0, 2)


def test_real_sigint_finishes_the_batch_then_checkpoints(data_root, tmp_path):
    """A real Ctrl-C (SIGINT) to ``python -m fastconv train``: exit code 130, and a
    consistent checkpoint (whole batches only: optimizer steps == batches recorded)."""
    ckpt = tmp_path / "sig.npz"
    env = {**os.environ, "FASTCONV_DATA": data_root, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
           # the fastconv this test imported (installed in CI, the source tree in development)
           "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-m", "fastconv", "train", "--model", "lenet5", "--threads", "1",
         "--epochs", "3", "--save", str(ckpt)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # the context closes the pipes on every path
        try:
            line = proc.stdout.readline()  # printed once the data is loaded, before batch 1
            assert line.startswith("train lenet5"), line + proc.stderr.read()
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert str(ckpt) in err
    state = training.load_training_state(ckpt)
    steps = float(state["optimizer"]["state"][0]["step"])
    assert steps == state["epoch"] * 938 + state["batch"] > 0
    assert state["scheduler"]["last_epoch"] == steps
    LeNet5().load_state_dict(fc.load(ckpt))


def test_seed_makes_runs_reproducible(data_root):
    cfg = training.TrainConfig(model="lenet5", limit_batches=8, threads=1, data=data_root,
                               progress=False, seed=7)
    r1 = training.train(cfg, log=lambda _: None)
    r2 = training.train(cfg, log=lambda _: None)
    assert r1.epochs[0].batch_losses == r2.epochs[0].batch_losses
    r3 = training.train(training.TrainConfig(**{**cfg.__dict__, "seed": 8}), log=lambda _: None)
    assert r3.epochs[0].batch_losses != r1.epochs[0].batch_losses


def test_recipes_resolve_as_documented():
    cfg = training.resolve_config(training.TrainConfig(model="lenet5"))
    assert (cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["schedule"]) == \
        ("adam", 3e-3, 64, "cosine")
    cfg = training.resolve_config(training.TrainConfig(model="lenet5", recipe="tutorial"))
    assert (cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["schedule"]) == \
        ("adam", 1e-3, 64, "none")
    cfg = training.resolve_config(training.TrainConfig(model="cifarnet"))
    assert (cfg["dataset"], cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["schedule"]) \
        == ("cifar10", "adam", 1e-3, 64, "onecycle")
    cfg = training.resolve_config(training.TrainConfig(model="cifarnet", recipe="tutorial"))
    assert (cfg["dataset"], cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["schedule"]) \
        == ("cifar10", "adam", 1e-3, 64, "none")
    cfg = training.resolve_config(training.TrainConfig(model="lenet5", optimizer="sgd"))
    assert (cfg["lr"], cfg["momentum"]) == (0.05, 0.9)
    assert training.DATASETS["mnist"].mean == (0.1307,)
    assert training.training_state_path("a/ckpt.npz") == "a/ckpt.optim.npz"
