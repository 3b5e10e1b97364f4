"""Flower ClientApp(s) of semfed."""
