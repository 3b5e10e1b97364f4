"""Experiments: run as modules from the repository root, e.g. `.venv/bin/python -m experiments.sweep FILE`."""
