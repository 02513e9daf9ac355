"""Searching: ``bench run``'s wing. A :class:`RunSpec` (``spec``) is checked without Ray (``validate``), then
each (task, model) search runs under Ray Tune (``session``, ``tune``) and its best configuration is tested
(``final``); ``runner`` puts them in order and writes the records (:mod:`benchmark.records`)."""
