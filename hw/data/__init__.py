"""Data files of ``hw`` (channel-model tables); a package so the files ship as package data."""
