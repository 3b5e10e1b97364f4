"""Flower ServerApp of semfed."""
