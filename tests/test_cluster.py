"""A real multi-node Ray cluster on loopback: a head node and a worker node, each its own raylet with
one CPU (``ray.cluster_utils.Cluster``), and ``runner.run`` driving a sweep on it with ``address``.

The driver runs in this process; the module's fixtures shut Ray and the cluster down afterwards, so
the tests that follow start their own local Ray as usual.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import optuna
import pytest

from conftest import result_json, trials_json
import ray
from ray.cluster_utils import Cluster

from benchmark.search import runner, studies
from benchmark.data import Sizes
from benchmark.cli import main
from benchmark.errors import BenchError

TASK = "ee_gamma"
# a trial of many short epochs, without early stopping: long enough to be running when its node dies
SLOW_RESNET = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
batch_size: {type: fixed, value: 64}
width: {type: fixed, value: 4}
blocks: {type: fixed, value: 1}
patience: {type: fixed, value: 1000}
epochs: {type: fixed, value: 8}
"""


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "no Ray cluster reachable at 127.0.0.1:1 (Connection refused); start one with `ray start --head`"),
    ("ray://127.0.0.1:10001", "Ray Client (ray://) runs Tune's driver on the head node"),
    ("head-node", "expected auto or HOST:PORT"),
], ids=["refused", "ray-client", "no-port"])
def test_a_bad_address_is_one_line_and_exit_code_2(tmp_path, capsys, address, message):
    ray.shutdown()  # the runner connects only when this process is not connected yet
    t0 = time.perf_counter()
    code = main(["run", "--task", TASK, "--model", "naive_bayes", "--address", address,
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 30 and not list((tmp_path / "runs").glob("*"))  # no run directory left


@pytest.fixture(scope="module")
def cluster():
    ray.shutdown()  # a local Ray left by an earlier test of this process
    # a lost node is declared dead after ~3 missed 1 s health checks instead of Ray's default ~30 s
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_timeout_ms": 2000,
              "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                      "_system_config": health})
    # Cluster records its address for ray.init() without one: other processes on this machine must not join
    ray._common.utils.reset_ray_address()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture
def worker(cluster):
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield node
    if node in cluster.worker_nodes:
        cluster.remove_node(node)


def _spec(cluster, tmp_path, **kwargs) -> runner.RunSpec:
    return runner.RunSpec(tasks=(TASK,), source="synthetic", seed=0, address=cluster.address,
                          data_root=tmp_path / "data", runs_dir=tmp_path / "runs", **kwargs)


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.parametrize("resources", [{"cpus_per_trial": 2.0}, {"gpus_per_trial": 0.25}], ids=["cpus", "gpus"])
def test_a_trial_larger_than_every_node_is_refused(cluster, worker, tmp_path, resources):
    # two CPUs in the cluster but one per node, and no GPU: neither trial fits on any node
    with pytest.raises(BenchError, match="no node can run a trial with .*nodes: 1 CPUs / 0 GPUs, 1 CPUs / 0 GPUs"):
        runner.run(_spec(cluster, tmp_path, models=("naive_bayes",), trials=2, name="big", **resources))
    assert not (tmp_path / "runs" / "big").exists()


@pytest.mark.slow
@pytest.mark.cluster
def test_a_sweep_places_trials_on_every_node(cluster, worker, tmp_path):
    run_dir = runner.run(_spec(cluster, tmp_path, models=("naive_bayes",), trials=6, sizes=Sizes.total(1000), name="spread")).run_dir
    study_dir = run_dir / TASK / "naive_bayes"
    trials = trials_json(study_dir)
    assert len(trials) == 6 and all(t["status"] == "completed" and t["retries"] == 0 for t in trials)
    per_node = Counter(t["node_id"] for t in trials)
    print(f"\ntrials per node: head {per_node[cluster.head_node.node_id]}, worker {per_node[worker.node_id]}")
    assert set(per_node) == {cluster.head_node.node_id, worker.node_id}
    assert result_json(study_dir)["trials"] == {"completed": 6, "pruned": 0, "failed": 0}


@pytest.mark.slow
@pytest.mark.cluster
def test_a_lost_worker_node_costs_only_its_running_trials(cluster, worker, tmp_path):
    (tmp_path / "slow_resnet.yaml").write_text(SLOW_RESNET)
    spec = _spec(cluster, tmp_path, models=("resnet15",), trials=4, sizes=Sizes.total(400), max_epochs=8, scheduler="none",
                 name="lost", spaces={"resnet15": str(tmp_path / "slow_resnet.yaml")})
    study_dir = tmp_path / "runs" / "lost" / TASK / "resnet15"
    head, lost = cluster.head_node.node_id, worker.node_id
    killed: dict = {}

    def kill_the_worker_mid_trial():
        curves, deadline = study_dir / "trials.jsonl", time.time() + 600
        while time.time() < deadline:
            lines = curves.read_text().splitlines() if curves.is_file() else []
            records = [json.loads(line) for line in lines if line.endswith("}")]  # not a line being written
            on_worker = {r["trial_id"]: r["epoch"] for r in records if r.get("node_id") == lost}  # the latest epoch
            running = [(trial_id, epoch) for trial_id, epoch in on_worker.items() if epoch <= 2]
            finished = {r["trial_id"] for r in records if r.get("epoch") == 8}
            if running and finished & set(on_worker):  # the worker's second trial is at its first epochs
                killed.update(trial_id=running[0][0], epoch=running[0][1], finished=finished)
                cluster.remove_node(worker, allow_graceful=False)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_mid_trial, daemon=True)
    killer.start()
    run_dir = runner.run(spec).run_dir
    killer.join(timeout=60)
    assert killed, "the worker node never started a second trial"
    assert worker not in cluster.worker_nodes

    trials = {t["trial_id"]: t for t in trials_json(study_dir)}
    retried = {i: t["retries"] for i, t in trials.items() if t["retries"]}
    per_node = Counter("head" if t["node_id"] == head else "worker" for t in trials.values())
    print(f"\nkilled the worker at epoch {killed['epoch']} of trial {killed['trial_id']}, "
          f"{len(killed['finished'])} trials finished before; trials per node {dict(per_node)}; retried {retried}")
    # every requested trial completed once, with one full curve
    assert len(trials) == 4 and all(t["status"] == "completed" for t in trials.values())
    assert all([c["epoch"] for c in t["curve"]] == list(range(1, 9)) for t in trials.values())
    # the trial running on the worker (one CPU: one trial) started over on the head and finished there
    assert retried == {killed["trial_id"]: 1}
    assert trials[killed["trial_id"]]["node_id"] == head
    assert {c["node_id"] for c in trials[killed["trial_id"]]["curve"]} == {head}
    # what had finished before the kill, on either node, is kept as it was
    assert killed["finished"] <= {i for i, t in trials.items() if not t["retries"]}
    done_on_worker = {i for i, t in trials.items() if t["node_id"] == lost}
    assert done_on_worker and done_on_worker <= killed["finished"]  # kept, though their node is gone
    assert all({c["node_id"] for c in t["curve"]} == {t["node_id"]} for t in trials.values())
    lines = (study_dir / "trials.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["trial_id"] for line in lines if '"retry"' in line) == sorted(retried)
    # the run directory agrees with itself
    result = result_json(study_dir)
    assert result["trials"] == {"completed": 4, "pruned": 0, "failed": 0}
    assert result["best_trial"] in trials and (study_dir / "roc.npz").is_file()
    study = studies.load(study_dir)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert run_dir == tmp_path / "runs" / "lost"
