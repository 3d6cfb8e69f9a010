"""Compiled per-MPDU loops of the burst data path (used by :mod:`stack.mac`).

A burst holds from one to a few hundred MPDUs. Walking them in Python costs ~1–3 µs per MPDU, and
replacing the walk by a dozen numpy operations costs ~1–2 µs per *operation*, which is more than
sealing a short burst. These kernels do every per-MPDU step of :func:`stack.mac.build_burst` and
:func:`stack.mac.open_burst` -- checks, header layout, PN assignment, nonces, AGMH parsing,
classification, compaction -- in one compiled pass each; the Python around them works per SA
and per (SA, EKS) group, never per MPDU. Plain scalar code: it compiles for any CPU.

Loaded on the first burst (it imports numba), not with :mod:`stack.mac`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# MPDU layout (digest §4.1/§4.2); mirrored from stack.mpdu so this module stays import-light
AGMH_LEN = 2
EKS_PN_LEN = 3
PROTECTED_OVERHEAD = 13
NONCE_LEN = 13

# build_burst check results
TX_OK = 0
TX_BAD_FID = 1
TX_TOO_LONG = 2

# open_burst: what happened to each MPDU (kind), in the order of stack.mac.RX_REASONS
RX_PLAIN = 0  # accepted unprotected
RX_CAND = 1  # protected, passed the header checks; the replay/ICV checks decide
RX_EH = 2  # unsupported_eh
RX_UNKNOWN_SA = 3  # unknown_sa
RX_SHORT = 4  # short_mpdu
RX_REJECTED = 5  # rejected later (unknown EKS, replay, ICV): counted by the caller
RX_ACCEPTED = 6  # protected, ICV verified and PN recorded

# open_burst: how the burst ended
TAIL_CLEAN = 0
TAIL_SHORT = 1  # short_mpdu: fewer than 2 bytes left
TAIL_BAD_LENGTH = 2  # bad_length: a Length below 2 or past the end


@njit(cache=True, nogil=True)
def tx_check(fids, lengths, sa_idx, n_sa, max_protected, max_plain):  # pragma: no cover - numba
    """Validate the MPDUs of a burst and count the protected ones per SA.

    Returns ``(code, i, counts)``: ``TX_OK`` and -1, or the first bad MPDU and why.
    """
    counts = np.zeros(n_sa, dtype=np.int64)
    for i in range(fids.shape[0]):
        f = fids[i]
        if f < 0 or f > 15:
            return TX_BAD_FID, i, counts
        s = sa_idx[i]
        if lengths[i] > (max_plain if s < 0 else max_protected):
            return TX_TOO_LONG, i, counts
        if s >= 0:
            counts[s] += 1
    return TX_OK, -1, counts


@njit(cache=True, nogil=True)
def tx_layout(buf, fids, lengths, sa_idx, run_first_of_sa, run_pn, run_count, run_eks, run_slot,
              stid_dir, n_prot):  # pragma: no cover - numba
    """Write every AGMH (and EKS/PN) into ``buf`` and lay out the seal batch.

    ``buf`` already holds the payloads with room for headers and ICVs (one join). The PN runs of
    SA s are ``run_*[run_first_of_sa[s]:]``, in the order its MPDUs take them. Returns
    ``(nonces, key_index, offsets, lengths)`` of the protected MPDUs, in burst order.
    """
    nonces = np.zeros((n_prot, NONCE_LEN), dtype=np.uint8)
    kidx = np.empty(n_prot, dtype=np.int64)
    offs = np.empty(n_prot, dtype=np.int64)
    lens = np.empty(n_prot, dtype=np.int64)
    n_sa = run_first_of_sa.shape[0]
    cur_run = run_first_of_sa.copy()
    used = np.zeros(n_sa, dtype=np.int64)
    pos = 0
    k = 0
    for i in range(fids.shape[0]):
        s = sa_idx[i]
        ln = lengths[i]
        if s < 0:
            word = (fids[i] << 12) | (ln + AGMH_LEN)
            buf[pos] = word >> 8
            buf[pos + 1] = word & 0xFF
            pos += ln + AGMH_LEN
            continue
        r = cur_run[s]
        if used[s] == run_count[r]:
            r += 1
            cur_run[s] = r
            used[s] = 0
        pn = run_pn[r] + used[s]
        used[s] += 1
        word = (fids[i] << 12) | (ln + PROTECTED_OVERHEAD)
        ekspn = (run_eks[r] << 22) | pn
        b0, b1 = word >> 8, word & 0xFF
        e0, e1, e2 = (ekspn >> 16) & 0xFF, (ekspn >> 8) & 0xFF, ekspn & 0xFF
        buf[pos] = b0
        buf[pos + 1] = b1
        buf[pos + 2] = e0
        buf[pos + 3] = e1
        buf[pos + 4] = e2
        # nonce (digest §4.2) = AGMH(2) | STID<<4|DIR (2) | EKS/PN(3) | 0x00 * 6
        nonces[k, 0] = b0
        nonces[k, 1] = b1
        nonces[k, 2] = stid_dir >> 8
        nonces[k, 3] = stid_dir & 0xFF
        nonces[k, 4] = e0
        nonces[k, 5] = e1
        nonces[k, 6] = e2
        kidx[k] = run_slot[r]
        offs[k] = pos + AGMH_LEN + EKS_PN_LEN
        lens[k] = ln
        k += 1
        pos += ln + PROTECTED_OVERHEAD
    return nonces, kidx, offs, lens


@njit(cache=True, nogil=True)
def rx_scan(buf):  # pragma: no cover - numba
    """Follow the AGMH Length chain: ``(starts, tail, fid_mask)``.

    ``starts``: offset of each complete MPDU; ``tail``: ``TAIL_*`` (a zero AGMH followed by zeros
    only is padding: clean); ``fid_mask``: bit f set when some MPDU without EH has FID f (the
    caller looks those SAs up).
    """
    total = buf.shape[0]
    starts = np.empty(total // AGMH_LEN + 1, dtype=np.int64)
    n = 0
    pos = 0
    mask = 0
    tail = TAIL_CLEAN
    while pos < total:
        if total - pos < AGMH_LEN:
            tail = TAIL_SHORT
            break
        word = (np.int64(buf[pos]) << 8) | buf[pos + 1]
        length = word & 0x7FF
        if length < AGMH_LEN or pos + length > total:
            if word == 0:
                padding = True
                for j in range(pos, total):
                    if buf[j] != 0:
                        padding = False
                        break
                if padding:
                    break
            tail = TAIL_BAD_LENGTH
            break
        if not (word >> 11) & 1:
            mask |= 1 << (word >> 12)
        starts[n] = pos
        n += 1
        pos += length
    return starts[:n], tail, mask


@njit(cache=True, nogil=True)
def rx_classify(buf, starts, sa_of_fid, plain_ok, stid_dir):  # pragma: no cover - numba
    """Classify every MPDU and lay out the open batch of the protected candidates.

    Returns ``(kind, tab, groups, kind_count, batch, nonces)`` (few arrays: each returned array
    costs a boxing step). Per MPDU: ``kind`` (``RX_*``) and the rows of ``tab``: FID, Length,
    PN and group key ``g = sa * 4 + EKS`` (-1 unless a candidate); ``kind_count`` counts the
    kinds. The rows of ``batch`` are ``order``, offsets, lengths of the open batch: ``order``
    lists the candidates group by group (burst order inside a group), and each row ``(g, a, b)``
    of ``groups`` says that ``order[a:b]`` is group g; ``nonces`` follow ``order``.
    """
    n = starts.shape[0]
    n_groups = sa_of_fid.shape[0] * 4
    kind = np.empty(n, dtype=np.int8)
    tab = np.full((4, n), -1, dtype=np.int64)
    fid, length, pn, gkey = tab[0], tab[1], tab[2], tab[3]
    group_start = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(n):
        p = starts[i]
        word = (np.int64(buf[p]) << 8) | buf[p + 1]
        f = word >> 12
        fid[i] = f
        length[i] = word & 0x7FF
        if (word >> 11) & 1:
            kind[i] = RX_EH
            continue
        s = sa_of_fid[f]
        if s < 0:
            kind[i] = RX_PLAIN if plain_ok[f] else RX_UNKNOWN_SA
            continue
        if length[i] < PROTECTED_OVERHEAD:
            kind[i] = RX_SHORT
            continue
        ep = (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 8) | buf[p + 4]
        kind[i] = RX_CAND
        pn[i] = ep & 0x3FFFFF
        g = s * 4 + (ep >> 22)
        gkey[i] = g
        group_start[g + 1] += 1
    n_nonempty = 0
    for g in range(n_groups):
        if group_start[g + 1]:
            n_nonempty += 1
        group_start[g + 1] += group_start[g]
    groups = np.empty((n_nonempty, 3), dtype=np.int64)
    j = 0
    for g in range(n_groups):
        if group_start[g + 1] > group_start[g]:
            groups[j, 0] = g
            groups[j, 1] = group_start[g]
            groups[j, 2] = group_start[g + 1]
            j += 1
    kind_count = np.zeros(RX_ACCEPTED + 1, dtype=np.int64)
    for i in range(n):
        kind_count[kind[i]] += 1
    m = group_start[n_groups]
    batch = np.empty((3, m), dtype=np.int64)
    order, offs, lens = batch[0], batch[1], batch[2]
    nonces = np.zeros((m, NONCE_LEN), dtype=np.uint8)
    fill = group_start[:n_groups].copy()
    for i in range(n):
        g = gkey[i]
        if g < 0:
            continue
        k = fill[g]
        fill[g] += 1
        p = starts[i]
        order[k] = i
        nonces[k, 0] = buf[p]
        nonces[k, 1] = buf[p + 1]
        nonces[k, 2] = stid_dir >> 8
        nonces[k, 3] = stid_dir & 0xFF
        nonces[k, 4] = buf[p + 2]
        nonces[k, 5] = buf[p + 3]
        nonces[k, 6] = buf[p + 4]
        offs[k] = p + AGMH_LEN + EKS_PN_LEN
        lens[k] = length[i] - PROTECTED_OVERHEAD
    return kind, tab, groups, kind_count, batch, nonces


@njit(cache=True, nogil=True)
def rx_result(kind, starts, tab, said_of_sa):  # pragma: no cover - numba
    """Columns of the accepted MPDUs (``RX_PLAIN``, ``RX_ACCEPTED``), in burst order, as the
    rows of one array: FID, payload offset, payload length, protected (0/1), EKS, PN, SAID
    (-1 where unprotected)."""
    fid, length, pn, gkey = tab[0], tab[1], tab[2], tab[3]
    n = 0
    for i in range(kind.shape[0]):
        if kind[i] == RX_PLAIN or kind[i] == RX_ACCEPTED:
            n += 1
    out = np.full((7, n), -1, dtype=np.int64)
    k = 0
    for i in range(kind.shape[0]):
        if kind[i] == RX_PLAIN:
            out[0, k] = fid[i]
            out[1, k] = starts[i] + AGMH_LEN
            out[2, k] = length[i] - AGMH_LEN
            out[3, k] = 0
            k += 1
        elif kind[i] == RX_ACCEPTED:
            out[0, k] = fid[i]
            out[1, k] = starts[i] + AGMH_LEN + EKS_PN_LEN
            out[2, k] = length[i] - PROTECTED_OVERHEAD
            out[3, k] = 1
            out[4, k] = gkey[i] % 4
            out[5, k] = pn[i]
            out[6, k] = said_of_sa[gkey[i] // 4]
            k += 1
    return out


@njit(cache=True, nogil=True)
def window_pass(pns, highest, bitmap, size, mask, record):  # pragma: no cover - numba
    """Replay-window check (``record`` False: against the state as given) or record (True: in
    order, each PN against the state the previous ones left) of ``pns`` for a window of
    ``size`` <= 64 PNs: bit i of ``bitmap`` = PN ``highest - i`` seen; ``mask`` = ``size`` ones.

    Returns ``(codes, highest, bitmap)``; codes as :data:`stack.sa.REPLAY_REASONS` (0 accept,
    1 ``pn_window``, 2 ``pn_replay``) or 3 for a PN outside 0..2^22-1 (nothing recorded then).
    """
    n = pns.shape[0]
    codes = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if pns[i] < 0 or pns[i] > 0x3FFFFF:
            codes[:] = 3
            return codes, highest, bitmap
    one = np.uint64(1)
    for i in range(n):
        pn = pns[i]
        if pn > highest:
            if record:
                shift = pn - highest
                bitmap = one if shift >= 64 else (bitmap << np.uint64(shift) | one) & mask
                highest = pn
            continue
        back = highest - pn
        if back >= size:
            codes[i] = 1
        elif (bitmap >> np.uint64(back)) & one:
            codes[i] = 2
        elif record:
            bitmap = bitmap | (one << np.uint64(back))
    return codes, highest, bitmap


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel here on a tiny burst."""
    buf = np.zeros(32, dtype=np.uint8)
    z = np.zeros(1, dtype=np.int64)
    tx_check(z, z, z, 1, 2034, 2045)
    tx_layout(buf, z, z, z, z, z + 1, z + 1, z, z, 0, 1)
    starts, _, _ = rx_scan(buf)
    sa_of_fid = np.full(16, -1, dtype=np.int64)
    kind, tab, *_ = rx_classify(buf, starts, sa_of_fid, np.zeros(16, dtype=np.bool_), 0)
    rx_result(kind, starts, tab, np.zeros(16, dtype=np.int64))
    for record in (False, True):
        window_pass(z, 0, np.uint64(1), 64, np.uint64(2**64 - 1), record)
