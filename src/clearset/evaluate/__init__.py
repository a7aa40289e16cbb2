"""Evaluation: metrics over predictions and probes over stored features."""
