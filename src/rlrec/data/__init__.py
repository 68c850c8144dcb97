"""Data layer: raw logs → canonical event table → prepared dataset directory → transitions."""
