"""``bench perf``: that it runs every comparison and writes its table and perf.md, not what it measures
(the numbers describe the machine; the published ones are in leaderboard/perf.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmark import perf
from benchmark.perf import procmem
from benchmark.cli import main
from benchmark.perf.report import Comparison, Report, format_markdown, format_terminal
from benchmark.perf.suite import hardware

TITLES = {
    "throughput_resnet15": ("1a. Training throughput: resnet15", ["samples_per_s", "val_auc", "suite loop",
                                                                  "per-sample DataLoader"]),
    "throughput_vit": ("1b. Training throughput: vit", ["samples_per_s", "val_auc", "vit_tiny_patch16_224"]),
    "memory_format": ("1c. Precision and memory format", ["fp32 NCHW", "fp32 channels-last", "bf16 NCHW",
                                                          "auto picks", "auto / fp32 NCHW"]),
    "precision_speed": ("1d. Training speed: auto vs fp32", ["resnet15 ee_gamma"]),
    "precision_fit": ("1e. bf16 vs fp32 through fit: resnet15", ["samples_per_s", "val_auc", "bf16", "fp32", "95 % CI"]),
    "runner": ("2. Runner cost", ["per_trial_ms", "first_to_last_s", "optuna study.optimize",
                                  "bench run, 1 at a time", "(default)", "Ray Tune + OptunaSearch script",
                                  "vs_script_best", "vs_plain_optuna"]),
    "search": ("3. Search efficiency", ["TPE + ASHA", "random, no early stopping", "simulated_s_to_reach",
                                        "epochs_to_reach", "went_on_past_rung", "seeds_reaching"]),
    "memory": ("4. Memory", ["trials_at_once", "anonymous_MiB", "shared_data_MiB", "memory_MiB",
                             "Ray Tune + OptunaSearch script"]),
    "blackbox": ("5. Blackbox answers", ["answer a recorded configuration", "TPE ask/tell alone", "time_us"]),
}


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 2 min on an idle 2-core machine; several times that on a loaded one
def test_bench_perf_quick_writes_the_table_and_perf_md(tmp_path):
    out = tmp_path / "board" / "perf.md"
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli", "perf", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=850, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    md = out.read_text()
    assert f"written: {out}" in proc.stdout
    assert "`bench perf --quick --out" in md and "## Hardware" in md and "CPU:" in md and "torch " in md
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    for title, words in TITLES.values():
        assert title in proc.stdout and title in md
        section = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
        assert all(w in section for w in words), (title, section)
        assert "**Target:**" in section and "**Verdict:**" in section
        summary_row = next(line for line in summary.splitlines() if title in line)
        assert summary_row.rstrip(" |").rsplit("|", 1)[1].strip() in ("met", "MISSED", "not judged")
    assert not list(tmp_path.glob("runs")) and not (tmp_path / "leaderboard").exists()  # everything in a temp dir


def test_bench_perf_refuses_bad_sizes_in_one_line(capsys, tmp_path):
    for argv in (["perf", "--trials", "1"], ["perf", "--seeds", "1"]):
        code = main([*argv, "--out", str(tmp_path / "perf.md")])
        err = capsys.readouterr().err
        assert code == 2 and "must be >= 2" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "perf.md").exists()


def test_markdown_and_table_carry_every_comparison_and_the_hardware():
    rows = ({"side": "a", "samples_per_s": 10.0}, {"side": "b", "samples_per_s": 5.0})
    comparisons = (Comparison("x", "1a. X", rows, "2.00x", "> 1x", True, "how it was measured"),
                   Comparison("y", "4. Y", (), "not measured", "<= 1.5x", None))
    report = Report("bench perf --quick", hardware(), comparisons, {"samples": 100}, "quick", 61.0, (1.0, 0.5, 0.2),
                    None)
    md, table = format_markdown(report), format_terminal(report)
    assert "| 1a. X | 2.00x | > 1x | met |" in md and "| 4. Y | not measured | <= 1.5x | not judged |" in md
    assert "| side | samples_per_s |" in md and "how it was measured" in md and "`bench perf --quick`" in md
    assert "1a. X" in table and "samples_per_s" in table and "not judged" in table
    assert "quick input sizes" in md


def test_asha_rungs_are_the_runners_and_the_trials_that_went_on_past_them():
    import json
    import tempfile
    from types import SimpleNamespace

    from benchmark import records
    from benchmark.search import runner
    from benchmark.search.tune import make_scheduler
    from benchmark.perf.search import passed
    from benchmark.tables.replay import Rungs
    from benchmark.strategies import ASHA, METRIC

    assert ASHA.rungs(9) == [1, 3] and ASHA.rungs(27) == [1, 3, 9] and ASHA.rungs(1) == []
    # the scheduler the runner builds stops trials exactly at those rungs. 9 trials report one epoch at a
    # time in turn; a trial goes on at a rung only if it is in the top third of the results there so far
    spec = runner.RunSpec(tasks=("t",), models=("m",), max_epochs=9)

    def stops(value):
        with tempfile.TemporaryDirectory() as tmp:
            scheduler = make_scheduler(spec.scheduler, records.TrialLog(tmp), has_fidelity=True, max_t=spec.max_epochs)
            trials = [SimpleNamespace(trial_id=f"t{i}") for i in range(9)]
            stopped_at, replayed = {}, Rungs(9)  # and bench replay's ASHA, told the same results in the same order
            for t in trials:
                scheduler.on_trial_add(None, t)
            for epoch in range(1, 10):
                for i, t in enumerate(trials):
                    if t.trial_id in stopped_at:
                        continue
                    ray_stops = scheduler.on_trial_result(
                        None, t, {"training_iteration": epoch, "epoch": epoch, METRIC: value(i, epoch)}) == "STOP"
                    assert replayed.stops(epoch, value(i, epoch)) == (ray_stops and epoch < 9), (t.trial_id, epoch)
                    if ray_stops:
                        stopped_at[t.trial_id] = epoch
            assert scheduler.pruned_ids() == {t for t, e in stopped_at.items() if e < 9}
            assert {r["epoch"] for r in map(json.loads, records.TrialLog(tmp).path.read_text().splitlines())} \
                <= set(ASHA.rungs(9))
            return [stopped_at[f"t{i}"] for i in range(9)]

    # each trial worse than all before it: the first goes on, every other one stops at rung 1
    assert stops(lambda i, epoch: 1.0 - 0.01 * i) == [9] + [1] * 8
    # each one the best so far at rung 1 (all go on), then worse than all before it at rung 3
    assert stops(lambda i, epoch: 0.5 + 0.01 * i if epoch < 3 else 0.9 - 0.01 * i) == [9] + [3] * 8
    # a mixed order, some going on and some stopping at both rungs: stops() asserts that bench replay's
    # Rungs decide as Ray's scheduler at every result
    stops(lambda i, epoch: (0.3, 0.9, 0.5, 0.7, 0.1, 0.8, 0.6, 0.2, 0.4)[i] + (0.1 * ((i * 7) % 3) if epoch >= 3 else 0))
    # stopped after 1, 1, 3 and 9 epochs: all 4 reached rung 1 and 2 went on; 2 reached rung 3 and 1 went on
    assert passed([1, 1, 3, 9], [1, 3]) == "1: 2/4, 3: 1/2"
    # a third of the trials go on past each rung: (1 + 2/3 + 6/9) / 9 of the epochs of a full search
    assert ASHA.limit_share(9) == pytest.approx((1 + 2 / 3 + 6 / 9) / 9)


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="trials"):
        perf.PerfSizes(trials=1)
    assert perf.QUICK.trials < perf.FULL.trials and perf.QUICK.seeds >= 2


@pytest.mark.skipif(not procmem.available(), reason="needs Linux /proc/<pid>/smaps_rollup")
def test_group_sampler_sees_a_child_processs_anonymous_memory():
    code = "import sys, time; b = bytearray(64 << 20); sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"
    with procmem.GroupSampler(lambda t: "bytearray(64" in t, interval=0.05) as sampler:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 10
            while sampler.peak.anonymous < 64 << 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait()
    assert sampler.peak.max_processes == 1 and sampler.peak.anonymous >= 64 << 20
    assert sampler.peak.rss >= sampler.peak.anonymous
