"""One fuzz harness per decoder, and one stateful role harness (registry: ``tests.fuzz._core``)."""
