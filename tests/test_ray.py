"""Evaluations on a Ray cluster: a local cluster of several one-CPU nodes (ray.cluster_utils) runs
real discoveries and suites with the real evaluator; nodes are removed mid-step, candidates try to
kill their worker, evaluators die; bad addresses and impossible requests are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'kerneldisc[ray]')")

from ray.cluster_utils import Cluster  # noqa: E402

from kerneldisc.bench import load_suite, read_outcome, run_suite  # noqa: E402
from kerneldisc.config import make_config  # noqa: E402
from kerneldisc.errors import ConfigError  # noqa: E402
from kerneldisc.loop import run_discovery  # noqa: E402
from kerneldisc.ray_evaluators import EvaluatorActor, RayEvaluators, connect, disconnect  # noqa: E402
from kerneldisc.run_folder import read_jsonl  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = (REPO / "reference_kernels" / "vectoradd" / "submission.py").read_text()
TORCH_ADD = "def custom_kernel(data):\n    a, b = data\n    return a + b\n"
SLOWER_ADD = "def custom_kernel(data):\n    a, b = data\n    return (a * 1.0) + b\n"
CRASH = "def custom_kernel(data):\n    raise RuntimeError('boom')\n"
# Walks up its own ancestors to the Ray worker that hosts its evaluator and kills it.
KILLS_ITS_WORKER = """\
import os
import signal


def _ray_ancestors():
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"ray::" in fh.read():
                yield pid
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rsplit(")", 1)[1].split()[1])


def custom_kernel(data):
    for pid in _ray_ancestors():
        os.kill(pid, signal.SIGKILL)
    os.kill(os.getppid(), signal.SIGKILL)
    a, b = data
    return a + b
"""


def _sleeps(seconds: int, code: str = TORCH_ADD) -> str:
    """A correct candidate whose evaluation takes at least `seconds` (it sleeps when loaded)."""
    return f"import time\ntime.sleep({seconds})\n" + code


def _reply(code: str) -> str:
    return f"```python\n{code}```\n"


REPLIES = [_reply(TORCH_ADD), "no code here", _reply(CRASH), _reply(SLOWER_ADD)]


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _cluster(nodes: int) -> Cluster:
    """A head without CPUs (so nothing is placed on it) and `nodes` one-CPU worker nodes."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def cluster():
    os.environ["TRITON_INTERPRET"] = "1"  # inherited by the nodes' workers
    found = _cluster(2)
    yield found
    disconnect()
    found.shutdown()


def _config(tmp_path: Path, out: Path, replies: list[str], **kw):
    script = tmp_path / f"replies-{out.name}.yml"
    script.write_text(yaml.safe_dump(replies))
    values = dict(task="vectoradd", policy="scripted", script=str(script), steps=2, groups=2, group_size=4,
                  device="cpu", out=str(out), train=False, eval_timeout_s=90)  # fmt: skip
    values.update(kw)
    return make_config(values)


def _rows(run: Path) -> list[dict]:
    return read_jsonl(run / "history.jsonl")


def _key(row: dict) -> tuple:
    return (row["step"], row["group"], row["sample"])


def test_discover_across_nodes_matches_the_run_without_ray(cluster, tmp_path):
    local = run_discovery(_config(tmp_path, tmp_path / "local", REPLIES), echo=lambda _: None)
    said: list[str] = []
    spread = run_discovery(
        _config(tmp_path, tmp_path / "ray", REPLIES, ray=cluster.address), echo=said.append
    )

    mine, theirs = _rows(local), _rows(spread)
    assert sorted(map(_key, mine)) == sorted(map(_key, theirs))
    assert len({_key(r) for r in theirs}) == len(theirs), "each rollout exactly once"
    by_key = {_key(r): r for r in mine}
    for row in theirs:
        twin = by_key[_key(row)]
        assert row["status"] == twin["status"] and row["code_hash"] == twin["code_hash"]
        if twin["reward"] == 0:
            assert row["reward"] == 0
        else:  # two timings of the same code, on the same machine's cores: within timing noise
            assert 1 / 3 < row["reward"] / twin["reward"] < 3, (row, twin)
    judged = [r["judged_by"] for r in theirs if r["status"] != "gated"]
    assert judged and all(j["group"].startswith("cpu@") and j["attempts"] == 1 for j in judged)
    assert len({j["node"] for j in judged}) == 2, "both nodes evaluated"
    assert all("judged_by" not in r for r in mine)

    archive = [json.loads((run / "archive.json").read_text())["states"] for run in (local, spread)]
    assert sorted((s["status"], s["code"]) for s in archive[0]) == sorted(
        (s["status"], s["code"]) for s in archive[1]
    )

    references = json.loads((spread / "references.json").read_text())
    assert list(references) == [judged[0]["group"]]
    steps = read_jsonl(spread / "steps.jsonl")
    assert all(s["evaluators_alive"] == 2 for s in steps if s["step"] > 0)
    assert any("2 evaluators (queue" in line for line in said)


def test_resume_keeps_each_groups_reference(cluster, tmp_path):
    cfg = _config(tmp_path, tmp_path / "run", REPLIES, steps=1, ray=cluster.address)
    run_discovery(cfg, echo=lambda _: None)
    before = json.loads((tmp_path / "run" / "references.json").read_text())
    said: list[str] = []
    run_discovery(make_config({**cfg.to_dict(), "steps": 2}), resume=tmp_path / "run", echo=said.append)
    assert not any("timing the reference" in line for line in said), said
    assert json.loads((tmp_path / "run" / "references.json").read_text()) == before
    assert sorted({r["step"] for r in _rows(tmp_path / "run")}) == [0, 1, 2]
    assert len({_key(r) for r in _rows(tmp_path / "run")}) == len(_rows(tmp_path / "run"))


def test_a_candidate_that_kills_its_worker_is_judged_and_the_run_goes_on(cluster, tmp_path):
    replies = [_reply(KILLS_ITS_WORKER), _reply(TORCH_ADD)]
    run = run_discovery(
        _config(tmp_path, tmp_path / "run", replies, steps=1, group_size=2, ray=cluster.address),
        echo=lambda _: None,
    )
    rows = [r for r in _rows(run) if r["step"] == 1]
    assert len(rows) == 4 and len({_key(r) for r in rows}) == 4
    killer = [r for r in rows if r["code_hash"] == rows[0]["code_hash"]]
    assert all(r["status"] not in ("ok", "gated") and r["reward"] == 0 for r in killer), killer
    assert all(r["status"] == "ok" for r in rows if r not in killer)
    steps = read_jsonl(run / "steps.jsonl")
    assert steps[-1]["evaluators_alive"] == 2


def test_a_bench_suite_runs_its_entries_across_nodes(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELDISC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "torch_add.py").write_text(TORCH_ADD)
    (tmp_path / "slower_add.py").write_text(SLOWER_ADD)
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES[:2]))
    suite_file = tmp_path / "suite.yml"
    suite_file.write_text(
        yaml.safe_dump(
            {
                "name": "ray-suite",
                "device": "cpu",
                "entries": [
                    {"name": "one", "task": "vectoradd", "eval": ["torch_add.py", "slower_add.py"]},
                    {"name": "two", "task": "vectoradd", "eval": ["@submission"]},
                    {
                        "name": "three",
                        "task": "vectoradd",
                        "discover": {
                            "policy": "scripted",
                            "script": str(script),
                            "train": False,
                            "steps": 1,
                            "groups": 1,
                            "group_size": 2,
                        },
                    },
                ],
            }
        )
    )
    result = run_suite(load_suite(suite_file), tmp_path / "out", ray=cluster.address, echo=lambda _: None)
    assert not result.failed, result.failed
    nodes = set()
    for name, expected in (("one", 2), ("two", 1)):
        outcome = read_outcome(tmp_path / "out", name)
        assert len(outcome["verdicts"]) == expected
        for record in outcome["verdicts"]:
            verdict = json.loads((tmp_path / "out" / "entries" / name / record["verdict_file"]).read_text())
            assert verdict["status"] == "ok" and verdict["speedup"] > 0
            nodes.add(verdict["judged_by"]["node"])
        assert (tmp_path / "out" / "entries" / name / "references.json").is_file()
    assert len(nodes) == 2, "entries' evaluations ran on both nodes"
    run = tmp_path / "out" / "entries" / "three" / "run"
    rows = [r for r in _rows(run) if r["step"] == 1]
    assert read_outcome(tmp_path / "out", "three")["status"] == "done" and len(rows) == 2
    assert all(r["judged_by"]["group"] for r in rows if r["status"] != "gated")
    assert json.loads((run / "summary.json").read_text())["device"] == "cpu"


class _DiesOnCue(EvaluatorActor):
    """An evaluator whose process dies while judging code that holds DIE (the worker crash a
    hostile candidate would cause if it could reach its evaluator), or while timing the reference
    of a task whose files say REFERENCE_DIES."""

    def evaluate(self, bundle, code, cfg, reference):
        if "DIE" in code:
            os._exit(1)
        return super().evaluate(bundle, code, cfg, reference)

    def reference(self, bundle, cfg):
        if any(b"REFERENCE_DIES" in data for _, data in bundle.files):
            os._exit(1)
        return super().reference(bundle, cfg)


@pytest.fixture
def dying(cluster):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    disconnect()  # the shared evaluators hold both nodes' CPUs; these two take their place
    said: list[str] = []
    evaluators = RayEvaluators(cluster.address, "cpu", 2, said.append, actor=_DiesOnCue)
    yield evaluators, said
    evaluators.close()


def _wait_for(evaluators, count: int) -> None:
    deadline = time.monotonic() + 120  # replacements are placed as the nodes' CPUs free up
    while evaluators.alive() < count and time.monotonic() < deadline:
        time.sleep(0.5)


def test_an_evaluation_that_kills_its_worker_twice_is_a_crash(dying):
    from kerneldisc.evaluate import EvalConfig
    from kerneldisc.task import load_task

    evaluators, said = dying
    task, cfg, references = load_task("vectoradd"), EvalConfig(device="cpu", timeout_s=90), {}
    judged = evaluators.judge(task, TORCH_ADD + "# DIE\n", cfg, references)
    assert (
        judged.verdict.status == "crash" and "failed on 2 evaluators, each replaced" in judged.verdict.message
    )
    assert judged.verdict.judged_by["attempts"] == 2 and len(judged.verdict.judged_by["nodes_tried"]) == 2
    assert sum("lost" in line for line in said) == 2
    _wait_for(evaluators, 2)
    after = evaluators.judge(task, TORCH_ADD, cfg, references)
    assert after.verdict.status == "ok" and after.verdict.judged_by["attempts"] == 1


def test_evaluators_that_died_while_idle_are_not_the_next_candidates_fault(dying):
    from kerneldisc.evaluate import EvalConfig
    from kerneldisc.task import load_task

    evaluators, said = dying
    task, cfg, references = load_task("vectoradd"), EvalConfig(device="cpu", timeout_s=90), {}
    evaluators.reference(task, cfg, references)
    for slot in list(evaluators._alive.values()):  # both nodes' evaluators die between two steps
        ray.kill(slot.handle)
    judged = evaluators.judge(task, TORCH_ADD, cfg, references)
    assert judged.verdict.status == "ok", judged.verdict.message
    assert judged.verdict.judged_by["attempts"] == 1
    assert sum("found dead while idle" in line for line in said) == 2


def test_a_reference_that_kills_its_workers_is_the_tasks_error(dying, tmp_path):
    import shutil

    from kerneldisc.errors import TaskError
    from kerneldisc.evaluate import EvalConfig
    from kerneldisc.task import load_task

    evaluators, _ = dying
    folder = tmp_path / "vectoradd"
    shutil.copytree(REPO / "reference_kernels" / "vectoradd", folder)
    (folder / "reference.py").write_text((folder / "reference.py").read_text() + "\n# REFERENCE_DIES\n")
    with pytest.raises(TaskError, match="killed 3 evaluators"):
        evaluators.judge(load_task(folder), TORCH_ADD, EvalConfig(device="cpu", timeout_s=90), {})


class _RefusesOnOneNode(EvaluatorActor):
    """An evaluator that refuses every evaluation on one node (as a node whose GPU is gone does)."""

    bad_node = ""

    def evaluate(self, bundle, code, cfg, reference):
        import ray as ray_

        from kerneldisc.errors import ConfigError

        if ray_.get_runtime_context().get_node_id() == self.bad_node:
            raise ConfigError("torch sees no CUDA GPU on this node")
        return super().evaluate(bundle, code, cfg, reference)


def test_a_node_that_refuses_every_evaluation_neither_stops_the_run_nor_fails_a_candidate(cluster):
    from ray import cloudpickle

    from kerneldisc.evaluate import EvalConfig
    from kerneldisc.task import load_task

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    disconnect()
    _RefusesOnOneNode.bad_node = list(cluster.worker_nodes)[0].node_id
    said: list[str] = []
    evaluators = RayEvaluators(cluster.address, "cpu", 2, said.append, actor=_RefusesOnOneNode)
    try:
        task, cfg, references = load_task("vectoradd"), EvalConfig(device="cpu", timeout_s=90), {}
        for code in (TORCH_ADD, SLOWER_ADD, TORCH_ADD + "# again\n"):
            judged = evaluators.judge(task, code, cfg, references)
            assert judged.verdict.status == "ok", judged.verdict.message
            assert judged.verdict.judged_by["node"] != _RefusesOnOneNode.bad_node
            _wait_for(evaluators, 2)
    finally:
        evaluators.close()


def test_kernelbench_options_are_separate_tasks_on_the_nodes(cluster):
    from kerneldisc.task import load_task

    evaluators = connect(cluster.address, "cpu")
    path = REPO / "tests" / "fixtures" / "kernelbench" / "linear_relu.py"
    small, big = load_task(f"{path}?batch_size=8"), load_task(f"{path}?batch_size=16")
    assert evaluators.bundle(small)[0].digest != evaluators.bundle(big)[0].digest
    assert evaluators.bundle(small)[0].task.extra != evaluators.bundle(big)[0].task.extra


def test_task_files_on_a_node_are_restored_from_the_bundle(tmp_path):
    """A file of the node's cached copy rewritten (by a candidate judged there earlier) is written
    back from the driver's bytes the next time the task is unpacked; linked folders travel too."""
    import shutil

    from kerneldisc.ray_cluster import bundle_task, unpack_task
    from kerneldisc.task import load_task

    folder = tmp_path / "task" / "vectoradd"
    shutil.copytree(REPO / "reference_kernels" / "vectoradd", folder)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "table.txt").write_text("1 2 3\n")
    (folder / "data").symlink_to(tmp_path / "shared", target_is_directory=True)
    bundle = bundle_task(load_task(folder))
    assert "data/table.txt" in {name for name, _ in bundle.files}
    first = unpack_task(bundle, tmp_path / "cache")
    original = (first.path / "reference.py").read_text()
    (first.path / "reference.py").write_text("def ref_kernel(data):\n    return 0\n")
    again = unpack_task(bundle, tmp_path / "cache")
    assert (again.path / "reference.py").read_text() == original
    assert again.files_digest == first.files_digest and (again.path / "data" / "table.txt").is_file()


def test_a_run_begun_without_ray_keeps_its_reference_when_resumed_on_a_cluster(cluster, tmp_path):
    import socket

    cfg = _config(tmp_path, tmp_path / "run", REPLIES, steps=1)
    run_discovery(cfg, echo=lambda _: None)
    before = (tmp_path / "run" / "reference.json").read_text()
    said: list[str] = []
    run_discovery(make_config({**cfg.to_dict(), "steps": 2, "ray": cluster.address}), resume=tmp_path / "run",
                  echo=said.append)  # fmt: skip
    assert (tmp_path / "run" / "reference.json").read_text() == before
    assert not any("timing the reference" in line for line in said), said
    references = json.loads((tmp_path / "run" / "references.json").read_text())
    assert list(references) == [f"cpu@{socket.gethostname()}"]
    assert all("judged_by" in r for r in _rows(tmp_path / "run") if r["step"] == 2 and r["status"] != "gated")


def test_bad_addresses_and_impossible_requests_are_one_line_errors(cluster, tmp_path):
    with pytest.raises(ConfigError, match="no GPU"):
        connect(cluster.address, "cuda")
    env = dict(os.environ, TRITON_INTERPRET="1")
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES))
    config = tmp_path / "cfg.yml"
    config.write_text(yaml.safe_dump({"policy": "scripted", "script": str(script), "train": False}))
    for args, message in (
        (["--ray", "127.0.0.1:1"], "nothing answers there"),
        (["--ray", "not an address"], "not an address"),
        (["--ray", cluster.address, "--eval-workers", "5"], "5 evaluators asked for, the cluster has 2 CPU"),
    ):
        out = tmp_path / "never"
        done = subprocess.run(
            [sys.executable, "-m", "kerneldisc", "discover", "vectoradd", "--config", str(config), "--out", str(out), *args],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.stderr
        assert not out.exists()


def test_more_gpu_evaluators_than_the_cluster_has_gpus_is_one_line(tmp_path):
    """A cluster whose one node declares a GPU (Ray takes the count as given): asking for two GPU
    evaluators is refused before the run folder exists."""
    found = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    found.add_node(num_cpus=1, num_gpus=1)
    found.wait_for_nodes()
    try:
        script = tmp_path / "replies.yml"
        script.write_text(yaml.safe_dump(REPLIES))
        config = tmp_path / "cfg.yml"
        config.write_text(yaml.safe_dump({"policy": "scripted", "script": str(script), "train": False}))
        out = tmp_path / "never"
        done = subprocess.run(
            [sys.executable, "-m", "kerneldisc", "discover", "vectoradd", "--config", str(config), "--out", str(out),
             "--ray", found.address, "--eval-workers", "2"],
            capture_output=True, text=True, timeout=120, env=dict(os.environ, TRITON_INTERPRET="1"),
        )  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "2 GPU evaluators asked for, the cluster has 1 GPU(s)" in lines[0] and not out.exists()
    finally:
        found.shutdown()


def test_a_bench_with_an_unreachable_cluster_writes_nothing(tmp_path):
    suite = tmp_path / "suite.yml"
    suite.write_text(
        yaml.safe_dump({"name": "s", "entries": [{"task": "vectoradd", "eval": ["@submission"]}]})
    )
    done = subprocess.run(
        [sys.executable, "-m", "kerneldisc", "bench", str(suite), "--out", str(tmp_path / "out"), "--ray", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, TRITON_INTERPRET="1"),
    )  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "nothing answers there" in done.stderr and not (tmp_path / "out").exists()


def test_a_driver_killed_mid_run_resumes_on_the_cluster_without_loss(cluster, tmp_path):
    """kill -9 of the driver (its evaluators die with it) after step 1; the resumed run has every
    rollout of every step exactly once, judged on the cluster."""
    from kerneldisc.loop import config_for_resume

    disconnect()  # the killed driver and the resumed run need the nodes' CPUs for their evaluators
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump([_reply(TORCH_ADD), _reply(_sleeps(3, SLOWER_ADD))]))
    config = tmp_path / "cfg.yml"
    config.write_text(yaml.safe_dump({"policy": "scripted", "script": str(script), "train": False, "steps": 3,
                                      "groups": 1, "group_size": 2, "ray": cluster.address}))  # fmt: skip
    run = tmp_path / "run"
    driver = subprocess.Popen(
        [sys.executable, "-m", "kerneldisc", "discover", "vectoradd", "--config", str(config), "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TRITON_INTERPRET="1"),
    )  # fmt: skip
    try:
        latest = run / "checkpoints" / "LATEST"
        deadline = time.monotonic() + 400
        while (
            not (latest.is_file() and latest.read_text().strip() == "step-000001")
            and time.monotonic() < deadline
        ):
            assert driver.poll() is None, "the driver ended before its first step"
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    assert latest.read_text().strip() in ("step-000001", "step-000002")  # killed before the run ended
    run_discovery(config_for_resume(run, {}), resume=run, echo=lambda _: None)
    rows = _rows(run)
    assert sorted({r["step"] for r in rows}) == [0, 1, 2, 3]
    assert len({_key(r) for r in rows}) == len(rows), "each rollout exactly once"
    assert all(len([r for r in rows if r["step"] == step]) == 2 for step in (1, 2, 3))
    assert all(r["judged_by"]["attempts"] == 1 for r in rows)


def test_without_ray_nothing_imports_it(tmp_path):
    code = (
        "import sys\nfrom kerneldisc.cli import main\n"
        "rc = main(['discover', 'vectoradd', '--config', sys.argv[1], '--out', sys.argv[2], '--steps', '1'])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\nprint('ray absent', rc)\n"
    )
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES[:2]))
    config = tmp_path / "cfg.yml"
    config.write_text(
        yaml.safe_dump(
            {"policy": "scripted", "script": str(script), "train": False, "group_size": 2, "groups": 1}
        )
    )
    done = subprocess.run([sys.executable, "-c", code, str(config), str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, TRITON_INTERPRET="1"))  # fmt: skip
    assert done.returncode == 0 and "ray absent 0" in done.stdout, done.stdout + done.stderr


def test_a_node_removed_mid_step_loses_nothing(tmp_path):
    """Its own cluster: one of two evaluators' nodes goes away while both judge slow candidates."""
    disconnect()  # leave the module's cluster; this process joins one Ray cluster at a time
    found = _cluster(2)
    try:
        replies = [_reply(_sleeps(20)), _reply(_sleeps(21))]
        cfg = _config(tmp_path, tmp_path / "run", replies, steps=1, groups=1, group_size=2, ray=found.address)
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["run"] = run_discovery(cfg, echo=lambda _: None)
            except BaseException as exc:  # the assertion below reports it
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        candidates = tmp_path / "run" / "candidates"
        # The step's candidates are written by the gate just before they are sent out; each
        # takes at least 20 s to judge, so the node goes away while both are being judged.
        deadline = time.monotonic() + 300
        while (
            not candidates.is_dir() or len(list(candidates.iterdir())) < 3
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        victim = list(found.worker_nodes)[0]
        found.remove_node(victim, allow_graceful=False)
        thread.join(timeout=600)
        assert not thread.is_alive() and "error" not in outcome, outcome
        rows = [r for r in _rows(tmp_path / "run") if r["step"] == 1]
        assert len(rows) == 2 and len({_key(r) for r in rows}) == 2
        assert all(r["status"] == "ok" for r in rows), rows
        attempts = sorted(r["judged_by"]["attempts"] for r in rows)
        assert attempts == [1, 2], "the evaluation on the removed node ran again elsewhere"
        assert len({r["judged_by"]["node"] for r in rows}) == 1, "both judged by the node that is left"
    finally:
        disconnect()
        found.shutdown()
