"""Triton kernels judged on the CPU are compiled for a real GPU target too (gpu_compile.py): the
interpreter accepts kernels Hopper's compiler refuses, and says nothing of registers or spills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import triton.language as tl

from kerneldisc.errors import ConfigError, TaskError
from kerneldisc.evaluate import EvalConfig, Verdict, evaluate
from kerneldisc.evaluate.gpu_compile import parse_target, ptxas_figures, specialisation
from kerneldisc.task import load_task

pytestmark = pytest.mark.slow

CANDIDATES = Path(__file__).parent / "candidates"
REPO = Path(__file__).parent.parent
CASES = {
    "gpu_dot_k8": "hmm_task",  # float16 tl.dot with K = 8
    "gpu_dot_k16": "hmm_task",  # the same with K = 16: compiles
    "gpu_shared_overflow": "mm_task",  # a 9-stage pipeline of float32 tiles: 256 KiB of shared memory
    "compile_hangs": "add_task",  # its module never finishes when imported with the interpreter off
    "compile_side_effects": "add_task",  # signals, a file, an exit while its kernels are compiled
}
MARK = Path("/tmp/kerneldisc-compile-mark")


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    MARK.unlink(missing_ok=True)

    def one(name: str) -> tuple[str, Verdict]:
        timeout = 60 if name == "compile_hangs" else 240
        cfg = EvalConfig(device="cpu", timeout_s=timeout, time_budget_s=0.1)
        return name, evaluate(load_task(CANDIDATES / CASES[name]), CANDIDATES / f"{name}.py", cfg)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, CASES))


def test_a_dot_the_interpreter_runs_but_hopper_refuses_is_a_compile_error(verdicts):
    v = verdicts["gpu_dot_k8"]
    assert v.status == "compile_error", v.message
    assert all(t.passed for t in v.tests)  # right answers under the interpreter
    assert "mm_kernel" in v.message and "sm_90" in v.message and "K >= 16" in v.message
    (entry,) = v.gpu_compile
    assert entry["ok"] is False and entry["target"] == "sm_90" and "K >= 16" in entry["error"]


def test_the_same_kernel_with_a_legal_tile_compiles_and_reports_registers(verdicts):
    v = verdicts["gpu_dot_k16"]
    assert v.status == "ok", v.message
    (entry,) = v.gpu_compile
    assert entry["ok"] is True and entry["kernel"] == "mm_kernel" and entry["error"] is None
    assert 0 < entry["registers"] <= 255 and entry["spill_stores"] == 0 and entry["shared_bytes"] > 0
    assert "sm_90 mm_kernel:" in v.summary() and "registers" in v.summary()


def test_a_pipeline_beyond_hoppers_shared_memory_is_a_compile_error(verdicts):
    v = verdicts["gpu_shared_overflow"]
    assert v.status == "compile_error", v.message
    assert "shared memory" in v.message and "232448" in v.message
    (entry,) = v.gpu_compile
    assert entry["shared_bytes"] > 232448 and entry["ok"] is False


def test_a_compile_that_never_ends_is_contained_as_a_timeout(verdicts):
    v = verdicts["compile_hangs"]
    assert v.status == "timeout"
    assert "after all 2 tests passed" in v.message and "compiled for sm_90" in v.message


def test_hostile_compile_time_code_ends_as_a_verdict_and_leaves_nothing(verdicts):
    v = verdicts["compile_side_effects"]
    # it may kill its own harness (its parent, of its own user): a crash; never the judge
    assert v.status in ("compile_error", "crash") and v.speedup is None and not v.correct, v.message
    assert all(t.passed for t in v.tests)
    if os.geteuid() == 0:  # it ran as a user of its own, whose files are removed afterwards
        assert not MARK.exists()


def test_unusual_honest_triton_kernels_are_compiled_or_left_unjudged_never_refused(tmp_path):
    """A kernel made by a factory, two kernels of one name, a module whose top level needs the
    interpreter (a device picked from TRITON_INTERPRET): each compiles, or is recorded as not
    compiled with the reason; none is a compile_error. A factory's kernel Hopper refuses is."""
    cfg = EvalConfig(device="cpu", timeout_s=240, time_budget_s=0.1)
    task = load_task(CANDIDATES / "hmm_task")
    header = "import os\nimport torch\nimport triton\nimport triton.language as tl\n\n"
    kernel = (
        (CANDIDATES / "gpu_dot_k16.py").read_text().split("@triton.jit", 1)[1].split("def custom_kernel")[0]
    )
    factory = (
        header
        + "def make(k):\n    @triton.jit"
        + kernel.replace("\n", "\n    ")
        + (
            "\n    return mm_kernel\n\n_KERNEL = make(16)\n\n"
            "def custom_kernel(data):\n    a, b = data\n    n = a.shape[0]\n    c = torch.empty_like(a)\n"
            "    _KERNEL[(n // 32, n // 32)](a, b, c, n, BLOCK=32, BLOCK_K=BK)\n    return c\n"
        )
    )
    clash = "@triton.jit\ndef mm_kernel(x_ptr):\n    pass\n\n"  # another kernel of the same name first
    needs_interpreter = 'DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"\n_ONE = torch.ones(1, device=DEVICE)\n'
    cases = {
        "factory": factory.replace("BLOCK_K=BK", "BLOCK_K=16"),
        "factory_k8": factory.replace("BLOCK_K=BK", "BLOCK_K=8"),
        "clash": header + clash + factory.replace("BLOCK_K=BK", "BLOCK_K=16").split(header, 1)[1],
        "needs_interpreter": header
        + needs_interpreter
        + factory.replace("BLOCK_K=BK", "BLOCK_K=16").split(header, 1)[1],
    }
    verdicts = {}
    for name, code in cases.items():
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        verdicts[name] = evaluate(task, path, cfg)
    for name in ("factory", "clash"):
        v = verdicts[name]
        assert v.status == "ok", (name, v.message)
        assert [e["ok"] for e in v.gpu_compile] == [True] and v.gpu_compile[0]["registers"] > 0, (
            name,
            v.gpu_compile,
        )
    refused = verdicts["factory_k8"]
    assert refused.status == "compile_error" and "K >= 16" in refused.message
    loose = verdicts["needs_interpreter"]
    assert loose.status == "ok", loose.message
    assert all(e["ok"] in (True, None) for e in loose.gpu_compile)


def test_a_candidate_that_waits_for_all_its_children_is_not_held_by_the_compiler(tmp_path):
    """The compiling helper is forked only for candidates that use Triton, so plain PyTorch code
    that reaps every child it made finishes as before."""
    code = (
        "import os\nimport torch\n\n"
        "if os.fork() == 0:\n    os._exit(0)\n"
        "while True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        break\n\n"
        "def custom_kernel(data):\n    a, b = data\n    return a + b\n"
    )
    path = tmp_path / "reaps_all.py"
    path.write_text(code)
    v = evaluate(load_task(CANDIDATES / "add_task"), path, EvalConfig(device="cpu", timeout_s=60))
    assert v.status == "ok", v.message


def test_targets_come_from_the_config_and_the_task_and_can_be_turned_off(tmp_path):
    task = tmp_path / "hmm"
    task.mkdir()
    for name in ("reference.py", "task.yml"):
        (task / name).write_text((CANDIDATES / "hmm_task" / name).read_text())
    with open(task / "task.yml", "a") as f:
        f.write("gpu_compile_targets: [sm_100]\n")
    loaded = load_task(task)
    assert loaded.gpu_compile_targets == ["sm_100"]
    cfg = EvalConfig(device="cpu", timeout_s=240, time_budget_s=0.1)
    v = evaluate(loaded, CANDIDATES / "gpu_dot_k16.py", cfg)
    assert v.status == "ok", v.message
    assert sorted(e["target"] for e in v.gpu_compile) == ["sm_100", "sm_90"]
    off = evaluate(loaded, CANDIDATES / "gpu_dot_k16.py", EvalConfig(device="cpu", gpu_compile_targets=()))
    assert off.status == "ok" and off.gpu_compile == []


def test_kernels_run_under_the_interpreter_when_the_caller_never_set_it():
    """The fork server may load Triton without TRITON_INTERPRET (a user running `kerneldisc eval`
    by hand): Triton's own @jit library functions (tl.zeros) must still run in the harness."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-m", "kerneldisc", "eval", str(CANDIDATES / "hmm_task"),
         str(CANDIDATES / "gpu_dot_k16.py"), "--json", "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "ok", verdict["message"]


def test_bad_targets_are_named():
    assert parse_target("sm_90") == 90 and parse_target("sm_100a") == 100
    with pytest.raises(ConfigError, match="sm_NN"):
        EvalConfig(gpu_compile_targets=("hopper",))


def test_a_bad_task_target_is_a_task_error(tmp_path):
    task = tmp_path / "t"
    task.mkdir()
    (task / "reference.py").write_text((CANDIDATES / "hmm_task" / "reference.py").read_text())
    (task / "task.yml").write_text(
        (CANDIDATES / "hmm_task" / "task.yml").read_text() + "gpu_compile_targets: [h100]\n"
    )
    with pytest.raises(TaskError, match="gpu_compile_targets"):
        load_task(task)


def test_a_launch_is_specialised_as_triton_would_type_it():
    def kernel(a_ptr, out_ptr, n, scale, flag, BLOCK: tl.constexpr, ACT=None):  # noqa: N803
        pass

    a = torch.zeros(4, dtype=torch.bfloat16)
    spec = specialisation(kernel, (a, a.float(), 1 << 40, 0.5, True), {"BLOCK": 128, "num_warps": 8})
    assert spec["signature"] == {"a_ptr": "*bf16", "out_ptr": "*fp32", "n": "i64", "scale": "fp32",
                                 "flag": "i1", "BLOCK": "constexpr", "ACT": "constexpr"}  # fmt: skip
    assert spec["constexprs"] == {"BLOCK": 128, "ACT": None} and spec["options"] == {"num_warps": 8}


def test_ptxas_figures_are_read_from_its_log():
    log = (
        "ptxas info    : Function properties for k\n"
        "    4968 bytes stack frame, 8420 bytes spill stores, 8292 bytes spill loads\n"
        "ptxas info    : Used 32 registers, used 0 barriers, 4968 bytes cumulative stack size\n"
    )
    assert ptxas_figures(log) == {
        "registers": 32,
        "stack_bytes": 4968,
        "spill_stores": 8420,
        "spill_loads": 8292,
    }
    assert ptxas_figures("") == {
        "registers": None,
        "stack_bytes": None,
        "spill_stores": None,
        "spill_loads": None,
    }


def test_a_reference_written_in_triton_still_runs_under_the_interpreter(tmp_path):
    """The fork server loads Triton to compile; a CPU judge whose reference is a Triton kernel
    (calling Triton's own @jit library, tl.zeros) switches it to the interpreter."""
    folder = tmp_path / "triton_reference"
    folder.mkdir()
    (folder / "task.yml").write_text((CANDIDATES / "add_task" / "task.yml").read_text())
    (folder / "reference.py").write_text(
        "import torch\nimport triton\nimport triton.language as tl\n\n\n"
        "def generate_input(size, seed):\n    gen = torch.Generator().manual_seed(seed)\n"
        "    return torch.randn(size, generator=gen), torch.randn(size, generator=gen)\n\n\n"
        "@triton.jit\ndef _add(a, b, out, n, BLOCK: tl.constexpr):\n"
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)\n    m = offs < n\n"
        "    acc = tl.zeros((BLOCK,), dtype=tl.float32)\n"
        "    tl.store(out + offs, acc + tl.load(a + offs, mask=m) + tl.load(b + offs, mask=m), mask=m)\n\n\n"
        "def ref_kernel(data):\n    a, b = data\n    out = torch.empty_like(a)\n"
        "    _add[(triton.cdiv(a.numel(), 1024),)](a, b, out, a.numel(), BLOCK=1024)\n    return out\n"
    )
    v = evaluate(load_task(folder), CANDIDATES / "add_torch.py", EvalConfig(device="cpu", timeout_s=120))
    assert v.status == "ok", v.message


def test_a_compilation_is_cached_by_kernel_text_specialisation_and_target(tmp_path, monkeypatch):
    """The judge keeps successful compilations (kerneldisc's cache folder): the same kernel and
    specialisation, evaluated again (here as a different file), is not compiled again."""
    monkeypatch.setenv("KERNELDISC_CACHE", str(tmp_path / "cache"))
    task = load_task(CANDIDATES / "hmm_task")
    cfg = EvalConfig(device="cpu", timeout_s=240, time_budget_s=0.1)
    first = evaluate(task, CANDIDATES / "gpu_dot_k16.py", cfg)
    assert first.status == "ok" and first.gpu_compile[0]["ok"] is True
    (entry,) = (tmp_path / "cache" / "gpu-compile").glob("*.json")
    cached = json.loads(entry.read_text())
    entry.write_text(json.dumps({**cached, "registers": 7}))  # what the cache says, seen below
    again = tmp_path / "again.py"
    again.write_text((CANDIDATES / "gpu_dot_k16.py").read_text() + "\n# the same kernel in another file\n")
    second = evaluate(task, again, cfg)
    assert second.status == "ok" and second.gpu_compile[0]["registers"] == 7
    refused = evaluate(task, CANDIDATES / "gpu_dot_k8.py", cfg)  # refusals are never cached
    assert (
        refused.status == "compile_error"
        and len(list((tmp_path / "cache" / "gpu-compile").glob("*.json"))) == 1
    )
