"""The AMS role: network entry (through an ARS or at the ABS), TEK refresh, handover, re-auth."""

from __future__ import annotations

from stack.roles.config import AmsConfig
from stack.roles.subscriber import SubscriberRole


class AmsRole(SubscriberRole):
    """Mobile station. All behaviour is the subscriber side (:mod:`stack.roles.subscriber`)."""

    def __init__(self, config: AmsConfig, rng: object = None) -> None:
        super().__init__(config, rng)
