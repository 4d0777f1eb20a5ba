"""fastconv.serialization.save / load: .npz round trips with no pickle either way."""

from __future__ import annotations

import io
import json
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

import fastconv as fc
from fastconv import nn
from fastconv.serialization import META_KEY, load, save


def _model():
    return nn.Sequential(OrderedDict([
        ("features", nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())),
        ("classifier", nn.Linear(4, 3)),
    ]))


def test_model_state_dict_round_trip(tmp_path):
    m = _model()
    m.features[1].num_batches_tracked.data[...] = 5
    m.features[1].running_var.data[...] = 2.5
    sd = m.state_dict()
    path = tmp_path / "model.npz"
    save(sd, path)
    loaded = load(path)
    assert isinstance(loaded, OrderedDict)
    assert list(loaded) == list(sd)
    for key, value in sd.items():
        assert isinstance(loaded[key], np.ndarray)
        assert loaded[key].dtype == value.dtype, key
        assert loaded[key].shape == value.shape, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert loaded["features.1.num_batches_tracked"].dtype == np.int64
    assert loaded["features.1.num_batches_tracked"].shape == ()
    m2 = _model()
    assert m2.load_state_dict(loaded) == ([], [])
    for key, value in m2.state_dict().items():
        np.testing.assert_array_equal(value, sd[key], err_msg=key)


def test_file_is_plain_npz_readable_without_pickle(tmp_path):
    sd = _model().state_dict()
    path = tmp_path / "ckpt.pt"  # no .npz suffix is appended (np.savez would)
    save(sd, path)
    assert path.exists()
    assert not (tmp_path / "ckpt.pt.npz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {*sd, META_KEY}
        for key, value in sd.items():
            np.testing.assert_array_equal(npz[key], value)
        meta = json.loads(str(npz[META_KEY][()]))
        assert meta["format"] == "fastconv"
        assert meta["version"] == 1
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(f"{k}.npy" for k in (*sd, META_KEY))


def test_torch_state_dict_converted_to_numpy_round_trips(tmp_path):
    ref = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    save(sd, tmp_path / "t.npz")
    loaded = load(tmp_path / "t.npz")
    assert type(loaded) is dict
    assert list(loaded) == list(sd)
    ours = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    ours.load_state_dict(loaded)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.items()})


def test_nested_dict_round_trip(tmp_path):
    """An optimizer-like state: int keys, lists of dicts, tuples, scalars and None."""
    opt = {
        "state": {0: {"step": 3, "momentum_buffer": np.arange(6, dtype=np.float32).reshape(2, 3)},
                  1: {"step": 3, "exp_avg": fc.tensor([1.0, 2.0], dtype=np.float64),
                      "max_exp_avg_sq": None}},
        "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1],
                          "amsgrad": False, "foreach": None, "name": "conv", "mixed": [1, 2.5],
                          "empty": [], "flags": [True, False]}],
        "np_scalar": np.float32(0.5),
        "big": 2**62,
        "nan": float("nan"),
    }
    save(opt, tmp_path / "opt.npz")
    r = load(tmp_path / "opt.npz")
    assert list(r) == list(opt)
    assert list(r["state"]) == [0, 1]
    np.testing.assert_array_equal(r["state"][0]["momentum_buffer"],
                                  opt["state"][0]["momentum_buffer"])
    assert r["state"][0]["momentum_buffer"].dtype == np.float32
    assert r["state"][0]["step"] == 3
    assert type(r["state"][0]["step"]) is int
    assert isinstance(r["state"][1]["exp_avg"], np.ndarray)
    assert r["state"][1]["exp_avg"].dtype == np.float64
    np.testing.assert_array_equal(r["state"][1]["exp_avg"], [1.0, 2.0])
    assert r["state"][1]["max_exp_avg_sq"] is None
    group = r["param_groups"][0]
    assert isinstance(r["param_groups"], list)
    assert group == {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1],
                     "amsgrad": False, "foreach": None, "name": "conv", "mixed": [1, 2.5],
                     "empty": [], "flags": [True, False]}
    assert type(group["mixed"][0]) is int
    assert type(group["betas"]) is tuple
    assert type(group["amsgrad"]) is bool
    assert type(group["lr"]) is float
    assert r["np_scalar"] == np.float32(0.5)
    assert type(r["np_scalar"]) is np.float32
    assert r["big"] == 2**62
    assert np.isnan(r["nan"])
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as npz:
        assert "state/0/momentum_buffer" in npz.files
        assert "param_groups/0/params" in npz.files


def test_tensors_and_parameters_are_saved_as_arrays(tmp_path):
    m = nn.Linear(2, 2)
    save(m.state_dict(keep_vars=True), tmp_path / "kv.npz")  # Parameters require grad
    r = load(tmp_path / "kv.npz")
    assert isinstance(r["weight"], np.ndarray)
    np.testing.assert_array_equal(r["weight"], m.weight.data)


def test_file_objects_and_plain_npz(tmp_path):
    buf = io.BytesIO()
    save({"a": np.ones(2)}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(load(buf)["a"], np.ones(2))
    np.savez(tmp_path / "plain.npz", w=np.zeros((2, 2)), b=np.arange(3))
    plain = load(tmp_path / "plain.npz")
    assert set(plain) == {"w", "b"}
    assert plain["b"].dtype == np.arange(3).dtype
    # keys that would clash with np.savez's own keyword arguments
    save({"file": np.ones(1), "allow_pickle": np.zeros(1)}, tmp_path / "kw.npz")
    assert set(load(tmp_path / "kw.npz")) == {"file", "allow_pickle"}
    save({"x": np.ones(1)}, str(tmp_path / "s.npz"))
    assert list(load(str(tmp_path / "s.npz"))) == ["x"]


def test_unsupported_values_raise_type_error_naming_the_key(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(TypeError, match=r"\['layer'\]\['w'\]"):
        save({"layer": {"w": object()}}, path)
    with pytest.raises(TypeError, match=r"object.*\['obj'\]"):
        save({"obj": np.array([1, "a", None], dtype=object)}, path)
    with pytest.raises(TypeError, match=r"set.*\['s'\]"):
        save({"s": {1, 2}}, path)
    with pytest.raises(TypeError, match="keys must be str or int"):
        save({(1, 2): np.ones(1)}, path)
    with pytest.raises(TypeError, match="does not fit in int64"):
        save({"huge": 2**70}, path)
    with pytest.raises(TypeError, match="expected a Mapping"):
        save([np.ones(1)], path)
    with pytest.raises(ValueError, match="collides"):
        save({"a/b": np.ones(1), "a": {"b": np.zeros(1)}}, path)
    with pytest.raises(ValueError, match="collides"):
        save({META_KEY: np.ones(1)}, path)
    assert not path.exists()


def test_load_refuses_pickles_and_single_arrays(tmp_path):
    np.savez(tmp_path / "pickled.npz", o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load(tmp_path / "pickled.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"single \.npy array"):
        load(tmp_path / "one.npy")
