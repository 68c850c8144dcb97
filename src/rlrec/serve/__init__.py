"""Serving: top-k recommendations from a trained run."""
