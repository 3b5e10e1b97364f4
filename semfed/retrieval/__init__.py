"""Seed 000's task: cross-modal retrieval through a federated graph adapter aligned to the shared SKB
(model in adapter/, local training, evaluation, labels, report), a sibling of semfed.jscc."""
