"""Faults on purpose in the simulated trial ([[faults]], relaysec.faults) with ARQ on: lost
bursts on every link, an outage of the relay link, a restart of the serving ARS -- the cell
recovers by itself and nothing is lost, corrupted or duplicated."""

from __future__ import annotations

import pytest

from relaysec.config import load_config
from relaysec.config_schema import ConfigError
from relaysec.trial import run_trial

from .helpers import fast_config


def _clean(report):
    b = report["bytes"]
    assert report["ok"], report["reason"]
    assert b["delivered"] == b["sent"] > 0 and b["lost"] == 0
    assert b["corrupted"] == 0 and b["duplicates"] == 0
    assert report["security"]["nonces"]["reused"] == 0


@pytest.mark.parametrize("mode", ["distributed", "centralized"])
def test_burst_loss_on_every_link_loses_nothing(mode):
    cfg = fast_config(("security.mode", mode),
                      ("faults", [{"kind": "burst_loss", "link": "*", "p": 0.2}]))
    report, _ = run_trial(cfg)
    _clean(report)
    (f,) = report["faults"]
    assert f["dropped_bursts"] > 0.1 * f["bursts_seen"]
    arq = report["arq"]
    assert arq["retransmissions"] > 0 and arq["retransmitted_share"] > 0.05   # the cost


def test_without_arq_the_same_loss_loses_packets():
    cfg = fast_config(("arq.enabled", False), ("traffic.min_delivery", 0.0),
                      ("faults", [{"kind": "burst_loss", "link": "AMS<->ARS-1", "p": 0.3}]))
    report, _ = run_trial(cfg)
    assert report["bytes"]["lost"] > 0 and report["arq"] is None


def test_relay_link_outage_shorter_than_the_block_lifetime_loses_nothing():
    cfg = fast_config(("faults", [{"kind": "outage", "link": "ABS<->ARS-1", "at_s": 0.16,
                                   "for_s": 0.2}]))
    report, _ = run_trial(cfg)
    _clean(report)
    (f,) = report["faults"]
    assert f["dropped_bursts"] == f["bursts_seen"] > 10      # nothing crossed for 200 ms
    assert f["recovery_s"] is not None and f["recovery_s"] < 1.0


def test_restart_of_the_serving_ars_mid_traffic_recovers_by_itself():
    cfg = fast_config(("faults", [{"kind": "restart", "station": "ARS-1", "at_s": 0.17}]))
    report, _ = run_trial(cfg)
    _clean(report)
    (f,) = report["faults"]
    assert f["fired_at_s"] == pytest.approx(0.17, abs=0.01)
    assert f["recovery_s"] is not None and f["recovery_s"] < 1.0
    # the ABS saw the relay come back with new keys; the AMS re-entered there (count + 1)
    events = "\n".join(report["events"])
    assert "PeerLost peer=0xa0000000011 procedure=relay_restarted" in events or \
        "relay_restarted" in events


@pytest.mark.parametrize("faults, message", [
    ([{"kind": "outage", "link": "ABS->NOPE", "at_s": 0.1, "for_s": 0.1}], "not a station"),
    ([{"kind": "burst_loss", "link": "*", "p": 1.5}], "faults[0].p"),
    ([{"kind": "restart", "station": "ABS", "at_s": 0.1}], "faults[0].station"),
    ([{"kind": "flood", "link": "*"}], "faults[0].kind"),
    ([{"kind": "outage", "link": "*", "at_s": 0.1}], "faults[0].for_s is missing"),
    ([{"kind": "burst_loss", "link": "*", "p": 0.1, "extra": 1}], "faults[0].extra"),
])
def test_bad_faults_are_refused_before_the_run(faults, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(overrides=[("faults", faults)])
