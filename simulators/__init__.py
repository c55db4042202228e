"""Simulated and replayed streams with known ground truth."""
