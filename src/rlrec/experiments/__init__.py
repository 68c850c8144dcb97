"""The experiment layer on top of ``rlrec train``: seeds and grids as processes, reports over runs.

:mod:`.sweep` runs a training config over a grid of overrides × seeds; :mod:`.results` reads finished
runs, groups them by method and aggregates seeds under a declared protocol; :mod:`.report` writes
the table and the training-dynamics plots.
"""
