"""The README's cluster path, as a user runs it: a real head started by ``ray start --head`` with its
dashboard (a separate process tree, on loopback), a small ``bench run`` submitted with ``ray job submit``,
its run directory and board checked, the head stopped. Needs Ray's dashboard packages (the ``cluster``
extra, installed by ``make setup``)."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import tempfile
from pathlib import Path

import pytest

from conftest import result_json, trials_json

from benchmark.publish import leaderboard

pytest.importorskip("aiohttp", reason="ray job submit needs Ray's dashboard packages (the cluster extra)")
psutil = pytest.importorskip("psutil")
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = str(Path(sys.executable).parent / "ray")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _stop_head(temp_dir: str) -> None:
    """Stop this head's processes only (``ray stop`` would stop every Ray on the machine): the ones whose
    command line names its temporary directory, and their children."""
    mine = [p for p in psutil.process_iter(["cmdline"]) if temp_dir in " ".join(p.info["cmdline"] or ())]
    for p in mine:
        for child in p.children(recursive=True):
            child.kill()
        p.kill()
    psutil.wait_procs(mine, timeout=30)


def test_ray_job_submit_runs_bench_on_a_real_head(tmp_path, monkeypatch):
    gcs, dashboard, client = _free_ports(3)
    temp_dir = tempfile.mkdtemp(prefix="hb-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    # token authentication as the README sets it up: the same token for the head, the job and its driver
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    env = {**os.environ, "BENCH_DATA_DIR": str(tmp_path / "data")}
    start = subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                            "--dashboard-port", str(dashboard), "--ray-client-server-port", str(client),
                            "--num-cpus", "2", "--temp-dir", temp_dir, "--disable-usage-stats"],
                           env=env, capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        # the head's node, asked by a driver of its own (this process may hold a Ray of an earlier test)
        probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='127.0.0.1:%d', logging_level="
                                "'ERROR'); print(*[n['NodeID'] for n in ray.nodes() if n['Alive']])" % gcs],
                               env=env, capture_output=True, text=True, timeout=180)
        head = set(probe.stdout.split())
        assert probe.returncode == 0 and len(head) == 1, probe.stderr

        runs, board = tmp_path / "runs", tmp_path / "board"
        submit = [RAY, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}", "--",
                  sys.executable, "-m", "benchmark.cli", "run", "--task", "ee_gamma", "--model", "naive_bayes",
                  "--trials", "3", "--n-train", "1050", "--n-val", "225", "--n-test", "225", "--name", "job",
                  "--runs-dir", str(runs), "--leaderboard-dir", str(board)]
        stranger = subprocess.run(submit, env={**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)},
                                  capture_output=True, text=True, timeout=120)
        assert stranger.returncode != 0 and "token" in stranger.stdout + stranger.stderr  # a wrong token is turned away
        assert not runs.exists()
        deadline = time.monotonic() + 300  # the head's job agent may take minutes to start on a loaded machine
        while True:  # (seen: over 90 s beside another training run); Ray says to try again
            job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
            if "No available agent to submit job" not in job.stdout + job.stderr or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout + job.stderr
        study_dir = runs / "job" / "ee_gamma" / "naive_bayes"
        trials = trials_json(study_dir)
        assert len(trials) == 3 and all(t["status"] == "completed" for t in trials)
        assert {t["node_id"] for t in trials} <= head  # the job's driver joined the head; no private Ray
        assert result_json(study_dir)["trials"]["completed"] == 3
        assert [(r.task, r.model) for r in leaderboard.load(board)] == [("ee_gamma", "naive_bayes")]
    finally:
        _stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
