"""Seed 003's case study (task = text): wireless-powered devices send text through a semantic codec
(corpus, data, codec, training, evaluation, metrics), bid for the access point's energy with the
semantic score it buys them (energy, bidding) in a second-price or a learned auction (auction)."""
