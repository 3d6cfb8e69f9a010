"""The phases of a subscriber's entry (:class:`Phase`), shared by
:mod:`stack.roles.subscriber` and its handover mixin :mod:`stack.roles.subscriber_move` (here so
that both import them without a cycle; still importable from :mod:`stack.roles.subscriber`)."""

from __future__ import annotations

from enum import Enum


class Phase(str, Enum):
    """Where a subscriber (AMS, or an ARS towards the ABS) stands. A ``str`` enum: it compares
    equal to its value (``ams.phase == "operational"``)."""

    IDLE = "idle"
    RANGING = "ranging"                # initial RNG-REQ out, no RNG-RSP yet
    EAP = "eap"                        # EAP running (entry, or re-authentication with keys)
    KEY_AGREEMENT = "key_agreement"    # EAP succeeded (provisionally); MSG#1..#3
    OPERATIONAL = "operational"
    FAILED = "failed"                  # entry failed or the AK expired; attach() again


ENTERING = frozenset({Phase.RANGING, Phase.EAP, Phase.KEY_AGREEMENT})
"""The phases in which entry messages (EAP, Key_Agreement-MSG#1/#3) can belong to us."""
ANY_PHASE = frozenset(Phase)
