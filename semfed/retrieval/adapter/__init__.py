"""The federated graph-based multimodal adapter (seed 000, section V-B)."""
