"""relaysec PHY: an 802.16m-numerology OFDM burst modem (bytes <-> complex baseband).

Public API::

    modem = phy.BurstModem("5MHz", "QPSK-1/2")
    iq = modem.modulate(payload, src=1, dst=2)     # complex64, RMS 0.25 of full scale
    for burst in modem.demodulate(rx_iq):          # list[phy.Burst]
        burst.payload, burst.crc_ok, burst.snr_db, burst.cfo_hz, burst.evm_db, burst.start

    zone = phy.ZoneModem("5MHz")                   # one burst per zone: A-MAP + allocations
    iq = zone.modulate([phy.Allocation(dst, payload, "16QAM-1/2"), ...], src=1,
                       grants=[phy.Grant(dst, start, length, "QPSK-1/2")], queue_report=n)
    for rx in zone.demodulate(rx_iq, me={my_stid}):  # list[phy.ZoneRx]
        rx.src, rx.queue_report, rx.grants, [b.payload for b in rx.allocations if b.crc_ok]

``phy.profiles()`` lists profile names, ``phy.mcs_table()`` the MCS ladder. See docs/phy.md.
``phy`` never imports ``stack``, ``hw`` or ``relaysec``.
"""

from phy.errors import (
    PayloadTooLongError,
    PhyError,
    PhyInputError,
    UnknownMcsError,
    UnknownProfileError,
)
from phy.fec import FEC, ConvCode
from phy.grid import ResourceGrid
from phy.modem import Burst, BurstModem, Mcs, get_mcs, mcs_table
from phy.numerology import Profile, get_profile, profiles
from phy.zone import BROADCAST, Allocation, Grant, ZoneModem, ZoneRx

__all__ = [
    "BROADCAST",
    "FEC",
    "Allocation",
    "Burst",
    "BurstModem",
    "ConvCode",
    "Grant",
    "Mcs",
    "PayloadTooLongError",
    "PhyError",
    "PhyInputError",
    "Profile",
    "ResourceGrid",
    "UnknownMcsError",
    "UnknownProfileError",
    "ZoneModem",
    "ZoneRx",
    "get_mcs",
    "get_profile",
    "mcs_table",
    "profiles",
]
