"""Plain, obviously-correct twins of the numba kernels in ``phy.kernels`` (stumpy-style).

Slow (pure Python loops); used only by the tests on small random inputs.
"""

from __future__ import annotations

import numpy as np

G1, G2 = 0o171, 0o133


def prbs(seed: np.ndarray, a: int, n: int) -> np.ndarray:
    """Shift-register form: register holds the last m bits; new = reg[-a] xor reg[-m]."""
    reg = [int(b) for b in seed]
    m = len(reg)
    out = []
    for _ in range(n):
        new = reg[-a] ^ reg[-m]
        out.append(new)
        reg = [*reg[1:], new]
    return np.array(out, dtype=np.uint8)


def _parity(v: int) -> int:
    return bin(v).count("1") & 1


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """K=7 (171,133) encoder, zero start, 6-bit zero tail, output X0 Y0 X1 Y1 ..."""
    reg = 0  # bit 6 = newest input (D^0) ... bit 0 = D^6
    out = []
    for b in [*(int(x) for x in bits), 0, 0, 0, 0, 0, 0]:
        reg = (reg >> 1) | (b << 6)
        out += [_parity(reg & G1), _parity(reg & G2)]
    return np.array(out, dtype=np.uint8)


def viterbi(llr: np.ndarray) -> np.ndarray:
    """Textbook soft Viterbi over all 64 states x 2 inputs, zero start and end state.

    Branch metric: correlation sum((1 - 2c) * llr). Ties keep the predecessor with the lower
    state number (the same rule as the kernel) so the outputs match bit for bit."""
    n = len(llr) // 2
    neg = -1e30
    pm = [0.0] + [neg] * 63
    back = []
    for t in range(n):
        lx, ly = float(llr[2 * t]), float(llr[2 * t + 1])
        new = [neg] * 64
        choice = [0] * 64
        for s in range(64):
            if pm[s] <= neg / 2:
                continue
            for u in (0, 1):
                reg = (u << 6) | s
                x, y = _parity(reg & G1), _parity(reg & G2)
                m = pm[s] + (1 - 2 * x) * lx + (1 - 2 * y) * ly
                ns = reg >> 1
                if m > new[ns] or (m == new[ns] and s < choice[ns]):
                    new[ns], choice[ns] = m, s
        back.append(choice)
        pm = new
    out = []
    s = 0
    for t in range(n - 1, -1, -1):
        out.append(s >> 5)
        s = back[t][s]
    return np.array(out[::-1], dtype=np.uint8)


def demap_maxlog(z: np.ndarray, w: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Exact max-log over the full 2-D constellation: for each bit,
    w * (min_{x: b=1} |z-x|^2 - min_{x: b=0} |z-x|^2); label MSB = first bit."""
    bps = int(np.log2(points.size))
    out = np.empty(z.size * bps)
    for i, zi in enumerate(z):
        d = np.abs(zi - points) ** 2
        for b in range(bps):
            has1 = [(lab >> (bps - 1 - b)) & 1 for lab in range(points.size)]
            d1 = min(d[j] for j in range(points.size) if has1[j])
            d0 = min(d[j] for j in range(points.size) if not has1[j])
            out[i * bps + b] = w[i] * (d1 - d0)
    return out


def sc_blocks(r: np.ndarray, lag: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Block sums of conj(r[m]) r[m+lag] and |r[m]|^2 with plain numpy slicing per block."""
    nbp = (r.size - lag) // block if r.size > lag else 0
    nbe = r.size // block
    p = np.array([np.sum(np.conj(r[i * block:(i + 1) * block].astype(np.complex128))
                         * r[i * block + lag:(i + 1) * block + lag]) for i in range(nbp)])
    e = np.array([np.sum(np.abs(r[i * block:(i + 1) * block].astype(np.complex128)) ** 2)
                  for i in range(nbe)])
    return p.astype(np.complex128).reshape(-1), e.reshape(-1)


def equalize(Y: np.ndarray, H: np.ndarray, dpos: np.ndarray, cpe: np.ndarray, slope: np.ndarray,
             fidx: np.ndarray, inv_sigma2: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised numpy: z = Y exp(-j(cpe + slope k)) / H on the data positions; w = |H|^2/s2."""
    rows = np.arange(Y.shape[0])[:, None]
    ph = cpe[:, None] + slope[:, None] * fidx[dpos]
    h = H[dpos].astype(np.complex128)
    z = Y[rows, dpos] * np.exp(-1j * ph) / h
    return z.ravel(), (np.abs(h) ** 2 * inv_sigma2).ravel()


def gather_windows(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                   w_step: float) -> np.ndarray:
    """Fancy-index the windows and multiply by exp(-j w_step n) with absolute sample index n."""
    idx = s0 + np.arange(n_sym)[:, None] * stride + np.arange(nfft)[None, :]
    return r[idx] * np.exp(-1j * w_step * idx)


def gather_windows_ramp(r: np.ndarray, s0: int, n_sym: int, stride: int, nfft: int,
                        w_step: float, dw: np.ndarray) -> np.ndarray:
    """gather_windows times exp(-j dw_l (n - (nfft - 1) / 2)) per window."""
    n = np.arange(nfft)[None, :] - 0.5 * (nfft - 1)
    return gather_windows(r, s0, n_sym, stride, nfft, w_step) * np.exp(-1j * dw[:, None] * n)


def cp_corr(r: np.ndarray, first: int, n_sym: int, stride: int, nfft: int, a: int,
            b: int) -> np.ndarray:
    """np.vdot of each symbol's CP slice with the slice NFFT later."""
    return np.array([np.vdot(r[p + a: p + b].astype(np.complex128), r[p + a + nfft: p + b + nfft])
                     for p in first + stride * np.arange(n_sym)])



def smooth_channel(H: np.ndarray, freq_index: np.ndarray, width: int = 7) -> np.ndarray:
    """Remove the mean phase slope, 'same' moving average with edge normalisation, restore."""
    adj = np.diff(freq_index) == 1
    prod = H[1:].astype(np.complex128) * np.conj(H[:-1])
    slope = float(np.angle(np.sum(prod[adj])))
    ramp = np.exp(1j * slope * freq_index.astype(np.float64))
    Hr = H * np.conj(ramp)
    ker = np.ones(width)
    num = np.convolve(Hr, ker, mode="same")
    den = np.convolve(np.ones(H.size), ker, mode="same")
    return num / den * ramp


def track_phase(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                pil_val: np.ndarray, freq_index: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """Vectorised numpy statement of the pilot phase model (see phy.track_kernels.track_phase)."""
    rows = np.arange(Y.shape[0])[:, None]
    Zp = Y[rows, pil_pos].astype(np.complex128) * np.conj(H[pil_pos]) * pil_val
    k = freq_index[pil_pos].astype(np.float64)
    s = np.sum(Zp[:, 1:] * np.conj(Zp[:, :-1]), axis=1)
    b = np.angle(s) / np.mean(np.diff(k, axis=1), axis=1)
    wgt = np.abs(s)
    x = ls.astype(np.float64) + 1.0
    den = float(np.sum(wgt * x * x))
    c = float(np.sum(wgt * b * x) / den) if den > 0 else 0.0
    bl = c * x
    a = np.angle(np.sum(Zp * np.exp(-1j * bl[:, None] * k), axis=1))
    return a, bl, c


def track_phase_wls(Y: np.ndarray, H: np.ndarray, ls: np.ndarray, pil_pos: np.ndarray,
                    pil_val: np.ndarray, freq_index: np.ndarray, sigma2: float, c_var: float
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """The recursive weighted least-squares drift of phy.track_kernels.track_phase_wls, one symbol
    at a time in numpy: residual phases against the model so far, weights 2|H|^2 p^2/sigma2."""
    k_all = freq_index.astype(np.float64)
    num, den, c = 0.0, 1.0 / c_var, 0.0
    zs = []
    for l in range(Y.shape[0]):
        pos = pil_pos[l]
        z = Y[l, pos].astype(np.complex128) * np.conj(H[pos]) * pil_val[l]
        zs.append(z)
        k = k_all[pos]
        x = float(ls[l]) + 1.0
        zr = z * np.exp(-1j * c * x * k)
        a = np.angle(np.sum(zr))
        w = 2.0 * np.abs(H[pos].astype(np.complex128)) ** 2 * pil_val[l].astype(np.float64) ** 2 \
            / sigma2
        dk = k - np.sum(w * k) / np.sum(w)
        psi = np.angle(zr * np.exp(-1j * a))
        num += float(np.sum(w * x * dk * (psi + c * x * dk)))
        den += float(np.sum(w * x * x * dk * dk))
        c = num / den
    bl = c * (ls.astype(np.float64) + 1.0)
    cpe = np.array([np.angle(np.sum(z * np.exp(-1j * b * k_all[pil_pos[l]])))
                    for l, (z, b) in enumerate(zip(zs, bl, strict=True))])
    return cpe, bl, c


def shrink_project(U: np.ndarray, v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """U^T diag(g) U v with numpy matrix products."""
    return U.T @ (g * (U @ v))


def pdp_window(h: np.ndarray, lo: int, hi: int, rel: float, floor: float) -> tuple[int, int]:
    """Boolean mask over the gathered profile, first and last True (argmax if none)."""
    d = np.arange(lo, hi + 1)
    p = np.abs(h[np.mod(d, h.size)].astype(np.complex128)) ** 2
    sig = d[p > max(p.max() * rel, floor)]
    if sig.size == 0:
        sig = d[[int(np.argmax(p))]]
    return int(sig[0]), int(sig[-1])


def lmmse_band(U: np.ndarray, H: np.ndarray, pos: np.ndarray, holes: np.ndarray, g: np.ndarray,
               k0: float, dphi: float) -> np.ndarray:
    """Scatter, fill holes, rotate by the ramp, matrix products, rotate back, gather."""
    m = U.shape[1]
    v = np.zeros(m, np.complex128)
    v[pos] = H
    for i in holes:
        v[i] = 0.5 * (v[max(i - 1, 0)] + v[min(i + 1, m - 1)])
    ramp = np.exp(-1j * dphi * (k0 + np.arange(m)))
    return (ramp * shrink_project(U, v * np.conj(ramp), g))[pos].astype(np.complex64)


def fir_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """np.convolve in full, then the centred slice of the input's length."""
    c = h.size // 2
    return np.convolve(x, h)[c: c + x.size]


def tx_burst(bodies: np.ndarray, cp: int, up: np.ndarray, down: np.ndarray, h: np.ndarray,
             scale: float, limit: bool) -> np.ndarray:
    """CP by concatenation, ramps and overlap-add by slicing, np.convolve, then scale/limit."""
    b = np.asarray(bodies, np.complex128)
    y = np.concatenate([b[:, b.shape[1] - cp:], b], axis=1)
    w = up.size
    if w:
        tail = y[:-1, cp: cp + w] * up[::-1]
        y[:, :w] *= up
        y[1:, :w] += tail
    x = y.ravel()
    if down.size:
        x[x.size - down.size:] *= down
    x = fir_same(x, np.asarray(h, np.float64)) * scale
    if limit:
        mag = np.abs(x)
        x[mag > 1] /= mag[mag > 1]
    return x.astype(np.complex64)


def diff_corr(Yfull: np.ndarray, bins: np.ndarray, c: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Gather all shifted bin sets at once and correlate adjacent pairs (numpy)."""
    Yg = Yfull[np.mod(bins[None, :] + shifts[:, None], Yfull.size)].astype(np.complex128)
    return np.abs(np.sum(Yg[:, :-1] * np.conj(Yg[:, 1:]) * c[None, :], axis=1))


def sc_metric(r: np.ndarray, lag: int, block: int) -> np.ndarray:
    """Cumulative sums over the naive block sums; M = |P|^2/(E1 E2) with the silence floor."""
    p, e = sc_blocks(r, lag, block)
    nb = lag // block
    n_i = min(p.size - nb + 1, e.size - 2 * nb + 1)
    if n_i <= 0:
        return np.zeros(0)
    cp = np.concatenate([[0], np.cumsum(p)])
    ce = np.concatenate([[0.0], np.cumsum(e)])
    P = cp[nb:nb + n_i] - cp[:n_i]
    den = (ce[nb:nb + n_i] - ce[:n_i]) * (ce[2 * nb:2 * nb + n_i] - ce[nb:nb + n_i])
    floor = 1e-30 + 1e-12 * float(np.max(den))
    return np.where(den > floor, np.abs(P) ** 2 / np.maximum(den, floor), 0.0)


def sc_plateaus(M: np.ndarray, threshold: float, block: int, ng: int) -> list[int]:
    """Runs above the threshold by edge differences, each run's plateau by numpy (the rule
    :func:`phy.sync.detect` applied with numpy calls)."""
    above = threshold < M
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    out = []
    for s, t in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        seg = M[s:t]
        top = np.flatnonzero(seg >= 0.8 * seg.max())
        out.append(round((s + (top[0] + top[-1]) / 2.0) * block - ng / 2))
    return out
