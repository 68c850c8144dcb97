"""rlrec: reinforcement-learning recommender systems, from raw logs to a served top-k list."""

__version__ = "0.1.0"
