"""Backend introspection, ISA selection and the thread-count knob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastconv as fc
from fastconv import _core
from fastconv.bench import busy

INFO_KEYS = {
    "version", "compiled_isas", "supported_isas", "isa", "num_threads", "openmp", "compiler",
    "cuda_built", "cpu", "gemm_tile_mr_nr", "load_aware",
}


def test_backend_info_keys_and_consistency():
    info = fc.backend_info()
    assert set(info) >= INFO_KEYS, f"missing keys {INFO_KEYS - set(info)}"
    compiled, supported = list(info["compiled_isas"]), list(info["supported_isas"])
    assert "ref" in compiled
    assert "ref" in supported
    assert set(compiled) <= {"ref", "avx2", "avx512"}
    assert set(supported) <= set(compiled)
    assert info["isa"] in supported
    assert info["isa"] == _core.current_isa()
    assert compiled == list(_core.compiled_isas())
    assert supported == list(_core.supported_isas())
    assert info["version"] == fc.__version__
    assert info["num_threads"] == fc.get_num_threads() >= 1
    assert isinstance(info["openmp"], bool)
    assert info["load_aware"] is fc.thread_load()["load_aware"]
    assert isinstance(info["cuda_built"], bool)
    for dtype in ("float32", "float64"):
        mr, nr = info["gemm_tile_mr_nr"][dtype]
        assert mr >= 1
        assert nr >= 1


def test_backend_info_returns_a_copy():
    info = fc.backend_info()
    info["isa"] = "changed"
    assert fc.backend_info()["isa"] != "changed"


def test_default_isa_is_the_best_supported():
    """Without FASTCONV_ISA the import picks the last (widest) supported variant."""
    env = _env_with()
    env.pop("FASTCONV_ISA", None)
    out = _run_python("import fastconv; i = fastconv.backend_info(); "
                      "print(i['isa'], i['supported_isas'][-1])", env)
    assert out.returncode == 0, out.stderr
    chosen, best = out.stdout.split()
    assert chosen == best


def test_set_isa_switches_every_supported_variant(isa):
    info = fc.backend_info()
    assert info["isa"] == isa == _core.current_isa()
    assert isa in info["supported_isas"]


@pytest.mark.parametrize("name", ["bogus", "", "AVX2", "avx512 "])
def test_set_isa_rejects_unknown_names(name):
    before = _core.current_isa()
    with pytest.raises(ValueError, match="ISA"):
        _core._set_isa(name)
    assert _core.current_isa() == before


@pytest.fixture
def restore_threads():
    old = fc.get_num_threads()
    try:
        yield old
    finally:
        fc.set_num_threads(old)


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_num_threads_round_trip(n):
    fc.set_num_threads(n)
    assert fc.get_num_threads() == n
    assert fc.backend_info()["num_threads"] == n


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize(
    ("value", "exc"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError),
     (None, TypeError)],
    ids=["zero", "negative", "float", "str", "bool", "None"],
)
def test_set_num_threads_errors(value, exc):
    before = fc.get_num_threads()
    with pytest.raises(exc, match=r"\bn\b"):
        fc.set_num_threads(value)
    assert fc.get_num_threads() == before


def _run_python(code, env):
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )


def _env_with(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


@pytest.mark.parametrize("isa_name", _core.supported_isas())
def test_fastconv_isa_env_selects_variant(isa_name):
    out = _run_python("import fastconv; print(fastconv.backend_info()['isa'])",
                      _env_with(FASTCONV_ISA=isa_name))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == isa_name


def test_fastconv_isa_env_ref():
    out = _run_python("import fastconv; print(fastconv.backend_info()['isa'])",
                      _env_with(FASTCONV_ISA="ref"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ref"


@pytest.mark.parametrize("value", ["bogus", "AVX2"])
def test_fastconv_isa_env_unknown_fails_import(value):
    out = _run_python("import fastconv", _env_with(FASTCONV_ISA=value))
    assert out.returncode != 0, out.stdout
    assert "FASTCONV_ISA" in out.stderr, out.stderr
    assert value in out.stderr, out.stderr


# ---- load-aware threading ----------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_load_aware_threads_yield_a_busy_core():
    """A busy loop pinned to one of the two CPUs this process may use: kernels asking for 2
    threads get 1 once the load is measured (/proc/stat over ~0.1 s), and 2 again with
    load-awareness off. Run in a subprocess pinned to those two CPUs."""
    code = textwrap.dedent("""
        import json, os, subprocess, sys, time
        import numpy as np
        from fastconv import _core
        a, b = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, {a, b})
        _core.set_num_threads(2)
        x = np.ones((4, 4), np.float32)

        def settle(seconds):  # kernel calls sample the load
            t = time.perf_counter()
            while time.perf_counter() - t < seconds:
                _core.gemm(x, x)
                time.sleep(0.005)
            return _core.thread_load()

        spin = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(b)])
        try:
            busy = settle(0.6)
            _core.set_load_aware(False)
            off = _core.thread_load()
            _core.set_load_aware(True)
        finally:
            spin.kill()
            spin.wait()
        free = settle(0.6)
        for _ in range(4):  # other load on the host (a build, a test run) may pass
            if free["other_cpus"] < busy["other_cpus"] - 0.5:
                break
            free = settle(0.6)
        print(json.dumps({"busy": busy, "off": off, "free": free}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "FASTCONV_LOAD_AWARE"}
    r = subprocess.run([sys.executable, "-c", code, busy.SPIN], env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    held, off, free = got["busy"], got["off"], got["free"]
    assert held["cpus"] == 2
    assert held["other_cpus"] > 0.6, got
    assert held["threads"] == 1, got
    assert held["requested"] == 2, got
    assert held["capped_calls"] > 0, got
    assert off["threads"] == 2, got
    assert not off["load_aware"], got
    # The host may have other load, but the busy loop's core is back (within 3 s).
    assert free["other_cpus"] < held["other_cpus"] - 0.5, got


@pytest.mark.usefixtures("restore_threads")
def test_thread_load_reports_the_request():
    fc.set_num_threads(3)
    s = fc.thread_load()
    assert s["requested"] == 3
    assert 1 <= s["threads"] <= 3
    assert set(s) == {"load_aware", "requested", "threads", "free_cpus", "other_cpus", "cpus",
                      "capped_calls", "forked_single"}
    _core._set_thread_cap(1)
    try:
        assert fc.thread_load()["threads"] == 1
        assert fc.get_num_threads() == 3
    finally:
        _core._set_thread_cap(0)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        fc.set_load_aware(1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_runs_kernels_on_one_thread():
    """GNU OpenMP cannot restart its threads in a child forked after a parallel region: a
    2-thread call there never returned. Such a child runs kernels on one thread, with the
    bits of the requested count (the weight-gradient slices follow the request)."""
    code = textwrap.dedent("""
        import json, os
        import numpy as np
        from fastconv import _core
        _core.set_num_threads(2)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 3, 9, 9)).astype(np.float32)
        dy = rng.standard_normal((4, 8, 7, 7)).astype(np.float32)

        def dw():
            return _core.conv2d_backward_weight(dy, x, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1,
                                                "im2col")

        parent = dw()
        assert _core.thread_load()["threads"] == 2
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            got = dw()  # hung here before
            a = np.ones((256, 256), np.float32)
            _core.gemm(a, a)
            probe = _core.probe_fma_peak(2)  # an explicit team of 2: also 1 here
            s = _core.thread_load()
            os.write(w, json.dumps({"same": bool(np.array_equal(got, parent)),
                                    "threads": s["threads"], "requested": s["requested"],
                                    "forked_single": s["forked_single"],
                                    "probe_threads": probe["threads"]}).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.read(r, 65536).decode())
        print(json.dumps(_core.thread_load()["forked_single"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    child = json.loads(lines[-2])
    assert child == {"same": True, "threads": 1, "requested": 2, "forked_single": True,
                     "probe_threads": 1}
    assert json.loads(lines[-1]) is False  # the parent keeps its threads
