"""The studies' journal files (benchmark.search.studies): readable while written, cut back on resume, and the
sqlite study of an older run still read."""
from __future__ import annotations

import optuna
import pytest

from benchmark.search import studies


def _study(study_dir, name="t-logreg"):
    return optuna.create_study(study_name=name, storage=studies.storage(study_dir), direction="maximize",
                               load_if_exists=True)


def test_a_reader_sees_trials_as_they_are_told(tmp_path):
    writer = _study(tmp_path)
    for x in (0.1, 0.2):
        writer.tell(writer.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), x)
        assert len(studies.load(tmp_path).trials) == len(writer.trials)  # another process' view, at once
    assert studies.load(tmp_path).best_value == 0.2 and studies.load(tmp_path).study_name == "t-logreg"


def test_rewind_returns_the_study_to_a_checkpoint(tmp_path):
    study = _study(tmp_path)
    study.tell(study.ask(), 0.5)
    journal = studies.path(tmp_path)
    checkpoint = studies.size(journal)
    study.tell(study.ask(), 0.9)  # after the checkpoint: dropped by the rewind
    study.ask()
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 5, "worker')  # a line a kill cut
    studies.rewind(journal, checkpoint)
    again = _study(tmp_path)
    assert [t.value for t in again.trials] == [0.5]
    again.tell(again.ask(), 0.7)  # and it goes on
    assert [t.value for t in studies.load(tmp_path).trials] == [0.5, 0.7]
    studies.rewind(journal, None)  # no checkpoint size: left as it is
    assert len(studies.load(tmp_path).trials) == 2


def test_an_older_runs_sqlite_study_is_read(tmp_path):
    old = optuna.create_study(study_name="t-svm", storage=f"sqlite:///{tmp_path / studies.LEGACY}")
    old.tell(old.ask(), 1.0)
    assert studies.load(tmp_path).study_name == "t-svm"
    assert studies.load(tmp_path / "nothing") is None


def test_the_dashboard_opens_the_journal_by_path(tmp_path):
    dashboard = pytest.importorskip("optuna_dashboard._storage_url")
    study = _study(tmp_path)
    study.tell(study.ask(), 0.3)
    storage = dashboard.get_storage(str(tmp_path / studies.JOURNAL))  # what `optuna-dashboard FILE` does
    [summary] = optuna.get_all_study_summaries(storage)
    assert summary.study_name == "t-logreg" and summary.n_trials == 1
