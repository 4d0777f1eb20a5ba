"""fastconv.optim against torch.optim: same start, same gradients, same trajectory.

Every trajectory test builds the same parameters (several shapes, float32 and float64) in
fastconv and torch, feeds both optimizers the SAME sequence of random gradients for
STEPS = 50 steps (torch with ``foreach=False``, the single-tensor algorithm ours follows)
and compares the parameters every COMPARE_EVERY steps and at the end.

Tolerance after k steps (``param_tolerance``):

* float64: |ours − torch| ≤ 1e-12 · S (S below): both sides round each operation to
  2⁻⁵³, so after 50 steps they agree to ~1e-15 · S; 1e-12 leaves room for FMA-vs-separate
  rounding differences without hiding a wrong rule (a wrong rule is off by ≳ lr·|g|).
* float32: |ours − torch| ≤ c · k · 2⁻²³ · S with c = conftest.FLOAT32_C (4) and
  S = max|θ| + max|Δθ| / (1 − μ) over torch's trajectory so far, μ the momentum (SGD) or
  β₁ (Adam), 0 without momentum. Why: the two sides evaluate the same operations, but
  torch's vectorised kernels fuse some (lerp, add with alpha via FMA) and ours do not, so
  the update Δθ of a step may differ by a few ulps of |Δθ| and then θ ← θ − Δθ may round to
  a neighbour: at most ~1 ulp of |θ| (2⁻²³·max|θ|) per step. Momentum buffers (and Adam's
  m) carry their own rounding differences forward with weight μ per step, a geometric sum
  bounded by 1/(1 − μ) times the per-step difference in |Δθ| units. Differences do not
  compound faster than linearly (the map θ ↦ θ − lr·g has unit gain; weight decay shrinks
  them), hence the factor k. Observed: at most 3 % of this bound (float64: 0.04 % of
  its bound), while a wrong rule (a missing bias correction, a damped first momentum
  buffer) moves θ by ~lr·|g| ≈ 1e-2 at a step, over 20× the float32 bound after 50 steps.

Also covered: param groups with different options, state_dict round trips (ours and a
torch state_dict converted to NumPy), zero_grad, skipped parameters, closures, that a
warmed-up step allocates nothing, every scheduler's lr (and OneCycleLR's momentum/betas)
sequence against torch's for 40 steps, and every validation rule with torch's exception
type and message.
"""

from __future__ import annotations

import copy
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from conftest import DTYPE_IDS, DTYPES, FLOAT32_C, FLOAT32_EPS, assert_close
from torch.optim.optimizer import required as torch_required

import fastconv as fc
from fastconv import optim
from fastconv.optim import lr_scheduler

STEPS = 50
COMPARE_EVERY = 5
# scalars, a vector, a matrix, a conv weight, and one past several SIMD widths
SHAPES = [(1,), (7,), (4, 5), (2, 3, 3, 3), (65, 33)]


# ---- helpers ------------------------------------------------------------------------------

def param_tolerance(dtype, steps: int, scale: float) -> float:
    """Absolute bound on |θ_ours − θ_torch| after `steps` steps (module docstring)."""
    if np.dtype(dtype) == np.float64:
        return 1e-12 * scale
    return FLOAT32_C * max(steps, 1) * FLOAT32_EPS * scale


def make_pair(rng, dtype, shapes=SHAPES):
    """The same random parameters as fastconv and torch leaf tensors."""
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [fc.tensor(a, requires_grad=True) for a in init]
    ref = [torch.tensor(a, requires_grad=True) for a in init]
    return ours, ref


def feed(ours, ref, grads) -> None:
    for p, g in zip(ours, grads):
        p.grad = fc.tensor(g)
    for p, g in zip(ref, grads):
        p.grad = torch.tensor(g)


def random_grads(rng, params):
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def tnp(t) -> np.ndarray:
    return t.detach().numpy()


def run_and_compare(rng, ours, ref, opt, topt, dtype, *, mu: float, steps: int = STEPS,
                    what: str = "") -> None:
    """Step both optimizers on the same gradients; compare θ every COMPARE_EVERY steps."""
    max_p = max(float(np.abs(tnp(p)).max()) for p in ref)
    max_d = 0.0
    for k in range(1, steps + 1):
        before = [tnp(p).copy() for p in ref]
        feed(ours, ref, random_grads(rng, ours))
        opt.step()
        topt.step()
        for p, b in zip(ref, before):
            max_p = max(max_p, float(np.abs(tnp(p)).max()))
            max_d = max(max_d, float(np.abs(tnp(p) - b).max()))
        if k % COMPARE_EVERY == 0 or k == steps:
            atol = param_tolerance(dtype, k, max_p + max_d / (1.0 - mu))
            for i, (a, b) in enumerate(zip(ours, ref)):
                assert a.dtype == np.dtype(dtype), f"{what}: param {i} dtype changed to {a.dtype}"
                assert_close(a.data, tnp(b), atol, what=f"{what} step {k} param {i} {a.shape}")


def torch_state_to_numpy(sd):
    """A torch optimizer state_dict with every tensor as a NumPy array (fastconv's form)."""
    def conv(v):
        if isinstance(v, torch.Tensor):
            return v.detach().numpy().copy()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {"state": conv(sd["state"]), "param_groups": copy.deepcopy(sd["param_groups"])}


def assert_same_error(ours_call, torch_call, *, message: str | None = None):
    """Both calls raise the same exception type with the same message (or `message`)."""
    with pytest.raises(Exception) as ref_info:  # noqa: PT011 - the type is compared below
        torch_call()
    with pytest.raises(ref_info.type) as our_info:
        ours_call()
    expected = str(ref_info.value) if message is None else message
    assert str(our_info.value) == expected
    return our_info


# ---- trajectories against torch -----------------------------------------------------------

SGD_CONFIGS = {
    "plain": {"lr": 0.05},
    "momentum": {"lr": 0.05, "momentum": 0.9},
    "dampening": {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    "nesterov": {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    "weight_decay": {"lr": 0.05, "weight_decay": 0.1},
    "momentum_dampening_wd": {"lr": 0.05, "momentum": 0.8, "dampening": 0.5, "weight_decay": 0.05},
    "maximize": {"lr": 0.05, "momentum": 0.5, "maximize": True},
    "maximize_wd_nesterov": {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.1,
                             "nesterov": True, "maximize": True},
}

ADAM_CONFIGS = {
    "plain": {"lr": 0.01},
    "amsgrad": {"lr": 0.01, "amsgrad": True},
    "weight_decay": {"lr": 0.01, "weight_decay": 0.1},
    "amsgrad_weight_decay": {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    "maximize_weight_decay": {"lr": 0.01, "weight_decay": 0.1, "maximize": True},
    # β₁ ≤ 0.5 takes torch's other lerp branch, g − (g − m)(1 − w)
    "small_beta1_eps": {"lr": 0.01, "betas": (0.3, 0.9), "eps": 1e-3, "amsgrad": True},
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(SGD_CONFIGS))
def test_sgd_matches_torch(rng, name, dtype):
    kw = SGD_CONFIGS[name]
    ours, ref = make_pair(rng, dtype)
    opt = optim.SGD(ours, **kw)
    topt = torch.optim.SGD(ref, foreach=False, **kw)
    run_and_compare(rng, ours, ref, opt, topt, dtype, mu=kw.get("momentum", 0.0),
                    what=f"SGD[{name}]")
    if kw.get("momentum", 0):
        for p in ours:
            assert opt.state[p]["momentum_buffer"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", list(ADAM_CONFIGS))
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_adam_matches_torch(rng, cls, name, dtype):
    kw = ADAM_CONFIGS[name]
    ours, ref = make_pair(rng, dtype)
    opt = getattr(optim, cls)(ours, **kw)
    topt = getattr(torch.optim, cls)(ref, foreach=False, **kw)
    run_and_compare(rng, ours, ref, opt, topt, dtype, mu=kw.get("betas", (0.9, 0.999))[0],
                    what=f"{cls}[{name}]")
    for p, tp in zip(ours, ref):
        st, tst = opt.state[p], topt.state[tp]
        assert set(st) == set(tst)
        # 'step' as torch keeps it: a 0-d float32 tensor, whatever the parameter dtype
        assert st["step"].shape == ()
        assert st["step"].dtype == np.float32
        assert float(st["step"]) == float(tst["step"]) == STEPS
        for key in set(st) - {"step"}:
            assert st[key].dtype == np.dtype(dtype), key


def test_adamw_default_weight_decay_and_adam_decoupled_flag(rng):
    """AdamW defaults to λ = 1e-2; Adam(decoupled_weight_decay=True) is AdamW (torch 2.13)."""
    ours, ref = make_pair(rng, np.float64, [(3, 4)])
    opt = optim.AdamW(ours)
    assert opt.defaults["weight_decay"] == torch.optim.AdamW(ref).defaults["weight_decay"] == 1e-2
    a, _ = make_pair(np.random.default_rng(1), np.float64, [(3, 4)])
    b, _ = make_pair(np.random.default_rng(1), np.float64, [(3, 4)])
    oa = optim.AdamW(a, lr=0.1, weight_decay=0.5)
    ob = optim.Adam(b, lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        a[0].grad, b[0].grad = fc.tensor(g), fc.tensor(g)
        oa.step()
        ob.step()
    np.testing.assert_array_equal(a[0].data, b[0].data)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_param_groups_with_different_options(rng, dtype):
    ours, ref = make_pair(rng, dtype)

    def groups(ps):
        return [{"params": ps[:2], "lr": 0.1, "momentum": 0.5},
                {"params": ps[2:4], "nesterov": True},
                {"params": ps[4:], "lr": 0.001, "weight_decay": 0.1, "dampening": 0.2}]

    opt = optim.SGD(groups(ours), lr=0.02, momentum=0.9)
    topt = torch.optim.SGD(groups(ref), lr=0.02, momentum=0.9, foreach=False)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        for key in g:
            if key != "params":
                assert g[key] == tg[key], key
    run_and_compare(rng, ours, ref, opt, topt, dtype, mu=0.9, steps=20, what="SGD groups")

    ours, ref = make_pair(rng, dtype)
    opt = optim.Adam([{"params": ours[:3], "lr": 0.05, "betas": (0.8, 0.99)},
                      {"params": ours[3:], "amsgrad": True}], lr=0.01)
    topt = torch.optim.Adam([{"params": ref[:3], "lr": 0.05, "betas": (0.8, 0.99)},
                             {"params": ref[3:], "amsgrad": True}], lr=0.01, foreach=False)
    run_and_compare(rng, ours, ref, opt, topt, dtype, mu=0.9, steps=20, what="Adam groups")


def test_add_param_group_and_named_params(rng):
    ours, ref = make_pair(rng, np.float64)
    opt = optim.SGD(ours[:2], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(ref[:2], lr=0.1, momentum=0.9, foreach=False)
    opt.add_param_group({"params": ours[2:], "lr": 0.01})
    topt.add_param_group({"params": ref[2:], "lr": 0.01})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["momentum"] == 0.9
    run_and_compare(rng, ours, ref, opt, topt, np.float64, mu=0.9, steps=10, what="added group")

    named = optim.SGD([("w", ours[0]), ("b", ours[1])], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    assert named.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]


def test_parameters_without_grad_are_skipped(rng):
    """A frozen parameter (requires_grad False, grad None) is neither updated nor given state."""
    ours, ref = make_pair(rng, np.float32, [(3, 3), (4,)])
    frozen = fc.tensor(rng.standard_normal(5).astype(np.float32))
    tfrozen = torch.tensor(frozen.data.copy())
    before = frozen.data.copy()
    for cls, kw in ((optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
                    (optim.Adam, {"lr": 0.1, "weight_decay": 0.1}),
                    (optim.AdamW, {"lr": 0.1})):
        opt = cls([*ours, frozen], **kw)
        topt = getattr(torch.optim, cls.__name__)([*ref, tfrozen], foreach=False, **kw)
        run_and_compare(rng, ours, ref, opt, topt, np.float32, mu=0.9, steps=5, what=cls.__name__)
        np.testing.assert_array_equal(frozen.data, before)
        assert frozen not in opt.state
        assert len(opt.state_dict()["state"]) == len(topt.state_dict()["state"]) == 2


def test_zero_grad(rng):
    ours, ref = make_pair(rng, np.float64, [(2, 3), (4,), (5,)])
    opt = optim.SGD(ours, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(ref, lr=0.1, momentum=0.9, foreach=False)
    feed(ours[:2], ref[:2], random_grads(rng, ours[:2]))  # ours[2] has no grad
    opt.zero_grad()
    assert all(p.grad is None for p in ours)

    grads = random_grads(rng, ours[:2])
    feed(ours[:2], ref[:2], grads)
    opt.step()
    topt.step()
    kept = [p.grad for p in ours]
    opt.zero_grad(set_to_none=False)
    topt.zero_grad(set_to_none=False)
    assert ours[2].grad is None  # never had one: stays None, as torch
    for p, g in zip(ours[:2], kept[:2]):
        assert p.grad is g  # the same tensor, zeroed in place
        assert not p.grad.requires_grad
        np.testing.assert_array_equal(p.grad.data, np.zeros_like(p.data))
    # a zero gradient is still a step: momentum keeps moving the parameter
    before = ours[0].data.copy()
    opt.step()
    topt.step()
    assert not np.array_equal(ours[0].data, before)
    for p, tp in zip(ours, ref):
        assert_close(p.data, tnp(tp), 1e-12, what="after zero_grad(False) step")


def test_step_closure(rng):
    ours, ref = make_pair(rng, np.float64, [(4,)])
    opt = optim.SGD(ours, lr=0.1)
    topt = torch.optim.SGD(ref, lr=0.1, foreach=False)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (ours[0] * ours[0]).sum()
        loss.backward()
        calls.append(loss.item())
        return loss

    def tclosure():
        topt.zero_grad()
        loss = (ref[0] * ref[0]).sum()
        loss.backward()
        return loss

    with fc.no_grad():  # the closure still records its graph, as torch's step does
        loss = opt.step(closure)
    tloss = topt.step(tclosure)
    assert calls == [pytest.approx(tloss.item(), rel=1e-12)]
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    assert_close(ours[0].data, tnp(ref[0]), 1e-12, what="closure step")
    assert optim.Adam(ours).step() is None


@pytest.mark.parametrize(("cls", "kw"), [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "maximize": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1, "nesterov": True}),
    ("Adam", {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True, "maximize": True}),
    ("AdamW", {"lr": 0.1}),
], ids=["sgd_wd_max", "sgd_damp", "sgd_nesterov", "adam_all", "adamw"])
def test_warm_step_allocates_nothing(rng, cls, kw):
    """After the first steps (state and scratch created), a step allocates no arrays."""
    params = [fc.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
              for s in [(256, 1024), (1024,), (64, 3, 5, 5)]]  # ≈ 1.1 MB of float32
    for p in params:
        p.grad = fc.tensor(rng.standard_normal(p.shape).astype(np.float32))
    opt = getattr(optim, cls)(params, **kw)
    opt.step()
    opt.step()
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024, f"{cls} step allocated {peak} bytes at peak"


# ---- state_dict ---------------------------------------------------------------------------

STATE_CASES = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("cls", "kw"), STATE_CASES, ids=[c for c, _ in STATE_CASES])
def test_state_dict_round_trip(rng, cls, kw, dtype):
    """Save after 10 steps, load into a fresh optimizer, 10 more: equal to 20 uninterrupted."""
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(20)]
    Opt = getattr(optim, cls)

    def params():
        return [fc.tensor(a, requires_grad=True) for a in init]

    def steps(opt, ps, gs):
        for g in gs:
            for p, gi in zip(ps, g):
                p.grad = fc.tensor(gi)
            opt.step()

    full = params()
    steps(Opt([{"params": full[:2]}, {"params": full[2:], "lr": kw["lr"] / 2}], **kw), full, grads)

    first = params()
    opt = Opt([{"params": first[:2]}, {"params": first[2:], "lr": kw["lr"] / 2}], **kw)
    steps(opt, first, grads[:10])
    saved = opt.state_dict()
    snapshot = copy.deepcopy(saved)
    at_10 = [p.data.copy() for p in first]
    steps(opt, first, grads[10:12])  # later steps must not change a saved state_dict
    for i, st in saved["state"].items():
        for key, v in st.items():
            np.testing.assert_array_equal(v, snapshot["state"][i][key])

    assert sorted(saved["state"]) == list(range(len(SHAPES)))
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2, 3, 4]]
    for st in saved["state"].values():
        assert all(isinstance(v, np.ndarray) for v in st.values())

    resumed = [fc.tensor(a, requires_grad=True) for a in at_10]
    fresh = Opt([{"params": resumed[:2]}, {"params": resumed[2:]}], lr=123.0)
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.param_groups] == [kw["lr"], kw["lr"] / 2]
    assert all(g["params"][0] is p for g, p in zip(fresh.param_groups, [resumed[0], resumed[2]]))
    steps(fresh, resumed, grads[10:])
    for a, b in zip(resumed, full):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize(("cls", "kw"), STATE_CASES, ids=[c for c, _ in STATE_CASES])
def test_state_dict_matches_torch_and_loads_torch_state(rng, cls, kw):
    """Same layout as torch's state_dict; a torch state_dict (as NumPy) loads and continues."""
    dtype = np.float64
    ours, ref = make_pair(rng, dtype)
    opt = getattr(optim, cls)(ours, **kw)
    topt = getattr(torch.optim, cls)(ref, foreach=False, **kw)
    run_and_compare(rng, ours, ref, opt, topt, dtype, mu=0.9, steps=10, what=cls)
    sd, tsd = opt.state_dict(), torch_state_to_numpy(topt.state_dict())
    assert sd["state"].keys() == tsd["state"].keys()
    for i in sd["state"]:
        assert sd["state"][i].keys() == tsd["state"][i].keys()
        for key, v in sd["state"][i].items():
            assert v.dtype == tsd["state"][i][key].dtype, key
            assert_close(v, tsd["state"][i][key], 1e-12 * (1 + np.abs(v).max()), what=key)
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert {k: v for k, v in tg.items() if k in g} == g  # torch adds foreach/fused/...

    # torch's state (as NumPy) into a fresh fastconv optimizer over torch's parameters
    mirror = [fc.tensor(tnp(p)) for p in ref]
    for p in mirror:
        p.requires_grad_(True)
    loaded = getattr(optim, cls)(mirror, lr=1.0)
    loaded.load_state_dict(tsd)
    assert loaded.param_groups[0]["lr"] == kw["lr"]
    run_and_compare(rng, mirror, ref, loaded, topt, dtype, mu=0.9, steps=10, what=f"{cls} loaded")


def test_load_state_dict_casts_to_param_dtype(rng):
    """Moments follow the parameter's dtype on load; 'step' keeps its own (torch's rule)."""
    p64 = [fc.tensor(rng.standard_normal(3), requires_grad=True)]
    opt = optim.Adam(p64)
    p64[0].grad = fc.tensor(rng.standard_normal(3))
    opt.step()
    p32 = [fc.tensor(np.zeros(3, np.float32), requires_grad=True)]
    opt32 = optim.Adam(p32)
    opt32.load_state_dict(opt.state_dict())
    st = opt32.state[p32[0]]
    assert st["exp_avg"].dtype == st["exp_avg_sq"].dtype == np.float32
    assert st["step"].dtype == np.float32
    assert float(st["step"]) == 1.0
    opt64 = optim.Adam([fc.tensor(np.zeros(3), requires_grad=True)])
    opt64.load_state_dict(opt.state_dict())
    st64 = next(iter(opt64.state.values()))
    assert st64["exp_avg"].dtype == np.float64
    assert st64["step"].dtype == np.float32
    # a Python number as 'step' (older checkpoints) becomes the 0-d array
    sd = opt.state_dict()
    sd["state"][0]["step"] = 7
    opt32.load_state_dict(sd)
    assert isinstance(opt32.state[p32[0]]["step"], np.ndarray)
    assert float(opt32.state[p32[0]]["step"]) == 7.0


# ---- schedulers ---------------------------------------------------------------------------

SCHEDULERS = {
    "step": ("StepLR", {"step_size": 7, "gamma": 0.5}),
    "multistep": ("MultiStepLR", {"milestones": [5, 12, 12, 30], "gamma": 0.3}),
    "exponential": ("ExponentialLR", {"gamma": 0.9}),
    "lambda": ("LambdaLR", {"lr_lambda": lambda e: 0.95**e + (e % 3) / 10}),
    "lambda_per_group": ("LambdaLR", {"lr_lambda": [lambda e: 1 / (e + 1), lambda e: 0.9**e]}),
    "cosine": ("CosineAnnealingLR", {"T_max": 35}),
    "cosine_restarts_eta_min": ("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
    "onecycle": ("OneCycleLR", {"max_lr": [0.1, 0.3], "total_steps": 40}),
    "onecycle_linear_3phase": ("OneCycleLR", {"max_lr": 0.2, "epochs": 4, "steps_per_epoch": 10,
                                              "anneal_strategy": "linear", "three_phase": True,
                                              "pct_start": 0.25}),
    "onecycle_no_momentum": ("OneCycleLR", {"max_lr": 0.1, "total_steps": 40,
                                            "cycle_momentum": False}),
}
SCHEDULER_EPOCHS = 39  # OneCycleLR's 40 steps: the constructor's initial step plus 39


def _two_group_optimizers(kind: str):
    a, b = fc.tensor(np.ones(3), requires_grad=True), fc.tensor(np.ones(2), requires_grad=True)
    ta, tb = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    if kind == "sgd":
        return (optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1, momentum=0.9),
                torch.optim.SGD([{"params": [ta]}, {"params": [tb], "lr": 0.05}], lr=0.1,
                                momentum=0.9))
    return (optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1),
            torch.optim.Adam([{"params": [ta]}, {"params": [tb], "lr": 0.05}], lr=0.1))


def _hyper(opt):
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in opt.param_groups]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_sequence_matches_torch(name, kind):
    """lr (and momentum / β₁ for OneCycleLR) after each step equal torch's, bit for bit."""
    cls, kw = SCHEDULERS[name]
    opt, topt = _two_group_optimizers(kind)
    sched = getattr(lr_scheduler, cls)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, cls)(topt, **kw)
    assert sched.get_last_lr() == tsched.get_last_lr()
    assert _hyper(opt) == _hyper(topt)
    for epoch in range(1, SCHEDULER_EPOCHS + 1):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.last_epoch == tsched.last_epoch == epoch
        assert sched.get_last_lr() == tsched.get_last_lr(), f"epoch {epoch}"
        assert _hyper(opt) == _hyper(topt), f"epoch {epoch}"
    assert sched.base_lrs == tsched.base_lrs


def test_cosine_closed_form_and_step_epoch():
    """step(epoch) (deprecated) jumps with the closed form and warns, as torch."""
    opt, topt = _two_group_optimizers("sgd")
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=20, eta_min=0.01)
    opt.step()
    topt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(13)
    with pytest.warns(UserWarning, match="epoch parameter"):
        tsched.step(13)
    assert sched.get_last_lr() == tsched.get_last_lr()
    closed = [0.01 + (b - 0.01) * (1 + np.cos(np.pi * 13 / 20)) / 2 for b in (0.1, 0.05)]
    np.testing.assert_allclose(sched.get_last_lr(), closed, rtol=1e-14)


@pytest.mark.parametrize("name", ["step", "cosine", "onecycle", "lambda"])
def test_scheduler_state_dict_round_trip(name):
    """Checkpoint optimizer + scheduler at step 10, restore into fresh ones, continue."""
    cls, kw = SCHEDULERS[name]
    opt, _ = _two_group_optimizers("adam")
    sched = getattr(lr_scheduler, cls)(opt, **kw)
    for _ in range(10):
        opt.step()
        sched.step()
    opt_sd, sched_sd = opt.state_dict(), copy.deepcopy(sched.state_dict())
    assert "optimizer" not in sched_sd
    assert sched_sd["last_epoch"] == 10

    opt2, _ = _two_group_optimizers("adam")
    sched2 = getattr(lr_scheduler, cls)(opt2, **kw)  # torch's order: scheduler, then loads
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    for _ in range(20):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert _hyper(opt2) == _hyper(opt)


def test_scheduler_warnings_as_torch():
    opt, topt = _two_group_optimizers("sgd")
    sched = lr_scheduler.StepLR(opt, step_size=2)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        tsched.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()
    opt2, _ = _two_group_optimizers("sgd")
    sched2 = lr_scheduler.ExponentialLR(opt2, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt2.step()
        sched2.step()  # the right order: silent
    assert sched2.get_last_lr() == [0.05, 0.025]


def test_scheduler_resume_with_last_epoch():
    """last_epoch ≥ 0 needs 'initial_lr' in the groups (KeyError), then resumes as torch."""
    opt, topt = _two_group_optimizers("sgd")
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.ExponentialLR(opt, gamma=0.5, last_epoch=3)
    with pytest.raises(KeyError, match="initial_lr"):
        torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.5, last_epoch=3)
    for o in (opt, topt):
        for g in o.param_groups:
            g["initial_lr"] = 1.0
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5, last_epoch=3)
    tsched = torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.5, last_epoch=3)
    assert sched.get_last_lr() == tsched.get_last_lr() == [0.1, 0.05]  # not advanced
    assert sched.last_epoch == tsched.last_epoch == 4


# ---- validation ---------------------------------------------------------------------------

def _one(kind: str):
    return ([fc.tensor(np.zeros(2), requires_grad=True)] if kind == "fc"
            else [torch.zeros(2, dtype=torch.float64, requires_grad=True)])


OPTIMIZER_ERRORS = [
    ("SGD", {"lr": -0.1}),
    ("SGD", {"lr": 0.1, "momentum": -0.5}),
    ("SGD", {"lr": 0.1, "weight_decay": -1e-4}),
    ("SGD", {"lr": 0.1, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}),
    ("Adam", {"lr": -1e-3}),
    ("Adam", {"eps": -1e-8}),
    ("Adam", {"betas": (-0.1, 0.999)}),
    ("Adam", {"betas": (1.0, 0.999)}),
    ("Adam", {"betas": (0.9, 1.0)}),
    ("Adam", {"betas": (0.9, -0.5)}),
    ("Adam", {"betas": (0, 0.999)}),
    ("Adam", {"weight_decay": -0.1}),
    ("AdamW", {"lr": -1e-3}),
    ("AdamW", {"eps": -1.0}),
    ("AdamW", {"betas": (0.9, 1.5)}),
    ("AdamW", {"weight_decay": -0.01}),
]


@pytest.mark.parametrize(("cls", "kw"), OPTIMIZER_ERRORS,
                         ids=[f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for c, kw in OPTIMIZER_ERRORS])
def test_optimizer_option_errors(cls, kw):
    info = assert_same_error(lambda: getattr(optim, cls)(_one("fc"), **kw),
                             lambda: getattr(torch.optim, cls)(_one("torch"), **kw))
    assert info.type is ValueError


def test_params_argument_errors():
    p = fc.tensor(np.zeros(2), requires_grad=True)
    tp = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"should be an iterable of Tensors or dicts, but got "
                                        r"fastconv\.tensor\.Tensor"):
        optim.SGD(p, lr=0.1)
    assert_same_error(lambda: optim.SGD([], lr=0.1), lambda: torch.optim.SGD([], lr=0.1))
    assert_same_error(lambda: optim.SGD([{"params": {p}}], lr=0.1),
                      lambda: torch.optim.SGD([{"params": {tp}}], lr=0.1))
    assert_same_error(lambda: optim.Adam([p, np.zeros(2)]),
                      lambda: torch.optim.Adam([tp, np.zeros(2)]))
    assert_same_error(lambda: optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1),
                      lambda: torch.optim.SGD([{"params": [tp]}, {"params": [tp]}], lr=0.1))
    assert_same_error(lambda: optim.SGD([p], lr=0.1).add_param_group([p]),
                      lambda: torch.optim.SGD([tp], lr=0.1).add_param_group([tp]))
    assert_same_error(lambda: optim.SGD([("w", p), fc.tensor(np.ones(1))], lr=0.1),
                      lambda: torch.optim.SGD([("w", tp), torch.ones(1)], lr=0.1))
    assert_same_error(lambda: optim.SGD([p * 2], lr=0.1),
                      lambda: torch.optim.SGD([tp * 2], lr=0.1))
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([p, p], lr=0.1)


def test_required_option():
    class Custom(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": optim.optimizer.required})

    class TorchCustom(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": torch_required})

    assert_same_error(lambda: Custom(_one("fc")), lambda: TorchCustom(_one("torch")))
    assert Custom([{"params": _one("fc"), "lr": 0.5}]).param_groups[0]["lr"] == 0.5
    with pytest.raises(NotImplementedError):
        Custom([{"params": _one("fc"), "lr": 0.5}]).step()
    # and no momentum or betas: OneCycleLR cannot cycle momentum
    assert_same_error(
        lambda: lr_scheduler.OneCycleLR(Custom([{"params": _one("fc"), "lr": 0.5}]), 1.0, 10),
        lambda: torch.optim.lr_scheduler.OneCycleLR(
            TorchCustom([{"params": _one("torch"), "lr": 0.5}]), 1.0, 10))


def test_load_state_dict_errors():
    ps = [fc.tensor(np.zeros(2), requires_grad=True) for _ in range(3)]
    tps = [torch.zeros(2, requires_grad=True) for _ in range(3)]
    sd = optim.SGD([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.1).state_dict()
    tsd = torch.optim.SGD([{"params": tps[:1]}, {"params": tps[1:]}], lr=0.1).state_dict()
    assert_same_error(lambda: optim.SGD(ps, lr=0.1).load_state_dict(sd),
                      lambda: torch.optim.SGD(tps, lr=0.1).load_state_dict(tsd))
    assert_same_error(
        lambda: optim.SGD([{"params": ps[:2]}, {"params": ps[2:]}], lr=0.1).load_state_dict(sd),
        lambda: torch.optim.SGD([{"params": tps[:2]}, {"params": tps[2:]}],
                                lr=0.1).load_state_dict(tsd))


SCHEDULER_ERRORS = [
    ("OneCycleLR", {"max_lr": 0.1}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 0}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 2.5}),
    ("OneCycleLR", {"max_lr": 0.1, "epochs": 0, "steps_per_epoch": 3}),
    ("OneCycleLR", {"max_lr": 0.1, "epochs": 2, "steps_per_epoch": -1}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "pct_start": 1.5}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "pct_start": 0}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "anneal_strategy": "exp"}),
    ("OneCycleLR", {"max_lr": [0.1, 0.2, 0.3], "total_steps": 10}),
    ("OneCycleLR", {"max_lr": 0.1, "total_steps": 10, "max_momentum": [0.9]}),
    ("LambdaLR", {"lr_lambda": [lambda _: 1.0]}),
]


@pytest.mark.parametrize(("cls", "kw"), SCHEDULER_ERRORS,
                         ids=[f"{c}-{i}" for i, (c, _) in enumerate(SCHEDULER_ERRORS)])
def test_scheduler_option_errors(cls, kw):
    assert_same_error(
        lambda: getattr(lr_scheduler, cls)(_two_group_optimizers("sgd")[0], **kw),
        lambda: getattr(torch.optim.lr_scheduler, cls)(_two_group_optimizers("sgd")[1], **kw))


def test_scheduler_needs_an_optimizer_and_onecycle_stops():
    for cls in ("StepLR", "OneCycleLR"):
        assert_same_error(lambda c=cls: getattr(lr_scheduler, c)([], 3),
                          lambda c=cls: getattr(torch.optim.lr_scheduler, c)([], 3))
    opt, topt = _two_group_optimizers("sgd")
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=3)
    for _ in range(3):
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    assert_same_error(sched.step, tsched.step)
