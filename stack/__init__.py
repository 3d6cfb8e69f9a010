"""relaysec security sublayer: 802.16m PKMv3 key hierarchy, MPDU and control-message protection,
PKMv3 messages and the ABS/ARS/AMS roles. Pure code: no I/O, no clocks, no threads."""
