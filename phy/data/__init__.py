"""Data files of ``phy`` (channel-model tables for the test channel helpers)."""
