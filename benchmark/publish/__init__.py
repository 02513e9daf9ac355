"""Publishing: what is made from finished run directories, read through :mod:`benchmark.records` only:
the board (``leaderboard``: CSV, Markdown, ROC and reconstruction figures), a run's HPO report
(``report``) and the figures' common style (``plots``)."""
