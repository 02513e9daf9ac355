"""optuna-dashboard, as a real client, follows a search while it runs: it opens the study's journal by
path (as the README says) and its HTTP API answers with more trials as they arrive."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_runner import bench

from benchmark.search import studies

pytest.importorskip("optuna_dashboard")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_optuna_dashboard_follows_a_running_search(tmp_path):
    # enough trials that the search outlasts a few of the dashboard's 2 s trial cache (60 naive Bayes trials
    # took under 3 s on a fast machine: the dashboard saw 0, then all 60)
    n_trials = 200
    run = bench(["run", "--task", "ee_gamma", "--model", "naive_bayes", "--trials", str(n_trials), "--concurrency", "1",
                 "--n-train", "1050", "--n-val", "225", "--n-test", "225", "--name", "live"], tmp_path)
    journal = tmp_path / "runs" / "live" / "ee_gamma" / "naive_bayes" / studies.JOURNAL
    dashboard = None
    try:
        _wait_for(lambda: True if journal.is_file() and journal.stat().st_size else None, 300, "the journal")
        port = _free_port()
        exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
        dashboard = subprocess.Popen([exe, str(journal), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def study_id():
            try:
                found = _get(port, "/api/studies")["study_summaries"]
            except OSError:  # not listening yet
                return None
            return found[0]["study_id"] if found else None

        sid = _wait_for(study_id, 60, "the dashboard's study list")
        counts = []  # finished trials as the dashboard reports them, while the search still runs
        while run.poll() is None and len(set(counts)) < 3:
            trials = _get(port, f"/api/studies/{sid}")["trials"]
            counts.append(sum(t["state"] == "Complete" for t in trials))
            time.sleep(0.5)
        print(f"\nfinished trials, as optuna-dashboard's /api/studies/{sid} answered while the search ran: {counts}")
        assert len(set(counts)) >= 3 and counts == sorted(counts), counts  # rising, seen live
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, out
        study = _get(port, "/api/studies")["study_summaries"][0]
        assert study["study_name"] == "ee_gamma-naive_bayes"
        # the dashboard caches a study's trials for a couple of seconds: the last ones appear within them
        done = lambda: n_trials if sum(t["state"] == "Complete" for t in _get(port, f"/api/studies/{sid}")["trials"]) \
            == n_trials else None
        assert _wait_for(done, 30, f"all {n_trials} trials on the dashboard") == n_trials
    finally:
        if run.poll() is None:
            run.kill()
        if dashboard is not None:
            dashboard.terminate()
            dashboard.wait(timeout=30)
