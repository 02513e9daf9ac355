"""The shared table helpers of the CLI, the leaderboard, bench report and bench perf."""
from benchmark.text import aligned, markdown


def test_aligned_pads_columns_and_rules_the_header():
    assert aligned([("model", "AUC"), ("svm", 0.69)]) == "model  AUC\n-----  ----\nsvm    0.69"
    assert aligned([("a", "b"), ("long", 1)], rule=False) == "a     b\nlong  1"


def test_markdown_escapes_pipes_in_cells():
    assert markdown([("k", "v"), ("a|b", 2)]) == "| k | v |\n|---|---|\n| a\\|b | 2 |"
