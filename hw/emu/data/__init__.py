"""Data files of the Pluto emulator (a real Pluto context capture); see ``SOURCES.md``.

A package only so that the files ship with wheels (``package-data`` globs ``*.xml``).
"""
