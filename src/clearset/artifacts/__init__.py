"""The file formats stages exchange, writer and reader in one place: training runs (runs.py), subsets
(subsets.py), distilled sets (distilled.py). A stage reads another stage's output through these, never
by importing that stage."""
