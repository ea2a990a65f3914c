"""mental_r1/engine.py: the engine's CPU binding (no engine is started)."""

import pytest

from mental_r1.engine import cpu_threads_bind, native_bf16


# ------------------------------------------------------------------------------------------ CPU binding
@pytest.mark.parametrize("cores, expected", [({0, 1}, "0-1"), ({0}, "0"), ({3, 0, 1, 2}, "0-3"),
                                             ({0, 2, 3, 5}, "0,2-3,5"), ({4, 5, 6, 9, 10}, "4-6,9-10")])
def test_the_engine_is_bound_to_every_core_this_process_may_use(cores, expected):
    assert cpu_threads_bind({}, cores) == expected
    assert cpu_threads_bind({"VLLM_CPU_OMP_THREADS_BIND": ""}, cores) == expected  # empty = unset


@pytest.mark.parametrize("value", ["nobind", "auto", "1", "0-3|4-7"])
def test_an_explicit_binding_wins(value):
    assert cpu_threads_bind({"VLLM_CPU_OMP_THREADS_BIND": value}, {0, 1}) is None


def test_build_engine_sets_the_binding_before_the_engine_is_created(monkeypatch):
    """The engine core process inherits os.environ when AsyncLLM spawns it: the value must be there by then."""
    import os

    from vllm.platforms import current_platform
    from vllm.v1.engine import async_llm

    from mental_r1.engine import build_engine

    seen = {}

    def fake_from_engine_args(args):
        seen["bind"] = os.environ.get("VLLM_CPU_OMP_THREADS_BIND")
        seen["dtype"] = args.dtype
        return "engine"

    monkeypatch.setattr(async_llm.AsyncLLM, "from_engine_args", staticmethod(fake_from_engine_args))
    monkeypatch.setattr(current_platform, "is_cpu", lambda: True)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    assert build_engine("m", max_model_len=64, kv_cache_gib=0.1, max_num_seqs=1) == "engine"
    assert seen["bind"] == "0-1"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ  # for that engine only: the process keeps its own
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # training/rollout.py's choice beside a trainer
    build_engine("m", max_model_len=64, kv_cache_gib=0.1, max_num_seqs=1)
    assert seen["bind"] == "nobind"
    assert seen["dtype"] == ("bfloat16" if native_bf16() else "float32")  # "auto": the machine's fast dtype
    build_engine("m", max_model_len=64, kv_cache_gib=0.1, max_num_seqs=1, dtype="bfloat16")
    assert seen["dtype"] == "bfloat16"


@pytest.mark.parametrize(("machine", "avx512_bf16", "amx", "cuda", "native"), [
    ("x86_64", False, False, False, False),  # AVX2-only EPYC/Xeon: bf16 is emulated, fp32 is the fast path
    ("x86_64", True, False, False, True),
    ("x86_64", False, True, False, True),
    ("AMD64", False, False, False, False),
    ("aarch64", False, False, False, True),  # as vLLM assumes for ARM
    ("x86_64", False, False, True, True),  # a GPU
])
def test_native_bf16(machine, avx512_bf16, amx, cuda, native):
    assert native_bf16(machine, avx512_bf16=avx512_bf16, amx=amx, cuda=cuda) is native


def test_compute_dtype_follows_the_machine_unless_asked(monkeypatch):
    from mental_r1 import engine

    monkeypatch.setattr(engine, "native_bf16", lambda: False)
    assert engine.compute_dtype() == engine.compute_dtype("auto") == "float32"
    assert engine.compute_dtype("bfloat16") == "bfloat16"
    monkeypatch.setattr(engine, "native_bf16", lambda: True)
    assert engine.compute_dtype() == "bfloat16" and engine.compute_dtype("float32") == "float32"

