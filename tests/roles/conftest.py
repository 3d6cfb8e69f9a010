"""Every role test also checks the output queues' byte counts: at each ``backlog()`` and
``frames_to_send()`` call, each queue's ``MpduQueue.nbytes`` must equal its entries counted one
by one (``sealed_bytes``). A mutation of a queue that bypassed the count -- a new code path
assigning a plain list, or rewriting a queued payload in place -- fails here, in whichever
test exercises it."""

from __future__ import annotations

import pytest

from tests.roles.queue_check import checked_queues


@pytest.fixture(autouse=True)
def _queue_counts(monkeypatch):
    checked_queues(monkeypatch)
