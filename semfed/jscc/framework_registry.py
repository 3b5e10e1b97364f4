"""The registry of D-JSCC training frameworks (config key jscc-framework): FRAMEWORKS, name -> Framework.

Its keys are the one list of framework names: semfed.config accepts them, server/jscc.py builds the
named framework's strategy, semfed.jscc.forgetting compares them. An entry says what its framework
does in properties that callers read instead of comparing names, and names its Flower strategy as
a "module:Class" string: semfed never imports Flower (strategies/, server/ and clients/ are the only
Flower code), so server/jscc.py loads that class with importlib. A new framework is a strategy in
strategies/ (a JSCCFedAvg whose assign() says which clients train in which role) and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    """One D-JSCC training framework.

    strategy: "module:Class" of its strategy (a strategies.jscc_fedavg.JSCCFedAvg subclass), which
        server/jscc.py builds as Class(nodes, **options), adding stage1_rounds= and anchor= if two_stage.
    two_stage: seed 001's anchor scheme: rounds 1..jscc-stage1-rounds train the encoder with the
        anchor client's symmetric decoder (stage 1), later rounds every decoder against the frozen encoder.
    users_in_turn: the encoder trains with one user at a time, never with several at once, so a later
        user can make it forget an earlier one (the frameworks semfed.jscc.forgetting compares).
    """

    strategy: str
    two_stage: bool
    users_in_turn: bool


FRAMEWORKS: dict[str, Framework] = {
    "anchor": Framework("strategies.jscc_anchor:AnchorFedAvg", two_stage=True, users_in_turn=True),
    "iterative": Framework("strategies.jscc_iterative:IterativeFedAvg", two_stage=False, users_in_turn=True),
    "simultaneous": Framework("strategies.jscc_simultaneous:SimultaneousFedAvg", two_stage=False,
                              users_in_turn=False),
}
