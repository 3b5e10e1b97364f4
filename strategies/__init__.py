"""Flower strategies of semfed (one file per strategy)."""
