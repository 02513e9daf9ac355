"""Recorded tables: tabular HPO on what the searches recorded. ``tabular`` exports run directories as one
table per task and data (and loads it back), ``replay`` runs an optimiser against a table instead of
training, ``compare`` ranks every optimiser over many seeds (``leaderboard/optimizers.md``) and ``page``
writes the tables' page. Imports go one way: tabular <- replay <- compare, page."""
