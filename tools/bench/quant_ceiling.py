#!/usr/bin/python3
"""How far can a 4-bit code with one scale and offset per block of 32 go? (issue 19, item 4)

Squared error of quantizing random rows, relative to q4_0's (mmspcl's q4_0: d = the value of
largest magnitude / -8, q = clamp(floor(x / d + 8.5), 0, 15)), for
  q4_k format, best codes   x^ = S (q - z), z an integer 0..15 (mmspcl q4_k): the best S over a
                            fine grid and every z, per block (an upper bound on what any search
                            in mmspcl_quantize_row can reach with this layout, before S is rounded
                            to d * 6-bit codes)
  half-step zero point      x^ = S (q - z / 2), z 0..31 (a layout with one more bit per zero point)
  free offset               x^ = S q + m, S and m any floats (least-squares refinement from many
                            starts: the best a per-block affine 4-bit code can do)
  free offset, blocks of 16 the same with twice the scales and offsets
  q5_k format, best codes   5 bits, integer z (mmspcl q5_k)
on U(-1, 1) values (tools/bench/make_weights.c's weights, the checkpoint the doc's cosines come
from) and on N(0, 1) values (tools/reference/roberta_ref.py's). Output: quant_ceiling.txt.
"""
import numpy as np


def q4_0(x):
    m = x[np.arange(len(x)), np.argmax(np.abs(x), axis=1)]
    d = m / -8.0
    q = np.clip(np.floor(x / d[:, None] + 8.5), 0, 15)
    return (q - 8) * d[:, None]


def int_zero(x, L=15, half=False):
    lo, hi = np.minimum(x.min(1), 0), np.maximum(x.max(1), 0)
    best = np.full(len(x), np.inf)
    zs = np.arange(2 * L + 2) / 2.0 if half else np.arange(L + 1)
    for f in np.linspace(0.70, 1.15, 91):
        s = (hi - lo) / L * f
        for z in zs:
            q = np.clip(np.floor(x / s[:, None] + z + 0.5), 0, L)
            best = np.minimum(best, (((q - z) * s[:, None] - x) ** 2).sum(1))
    return best.sum() / x.size


def free_offset(x, L=15):
    lo, hi = x.min(1), x.max(1)
    best = np.full(len(x), np.inf)
    for f in np.linspace(0.70, 1.15, 46):
        for off in np.linspace(-0.5, 0.5, 11):
            s = (hi - lo) / L * f
            m = lo + off * s
            for _ in range(20):   # codes for (s, m), then the least-squares (s, m) for the codes
                q = np.clip(np.round((x - m[:, None]) / s[:, None]), 0, L)
                qm, xm = q.mean(1), x.mean(1)
                var = ((q - qm[:, None]) ** 2).sum(1)
                cov = ((q - qm[:, None]) * (x - xm[:, None])).sum(1)
                s = np.where(var > 0, cov / np.maximum(var, 1e-30), s)
                m = xm - s * qm
            q = np.clip(np.round((x - m[:, None]) / s[:, None]), 0, L)
            best = np.minimum(best, ((q * s[:, None] + m[:, None] - x) ** 2).sum(1))
    return best.sum() / x.size


def main():
    rng = np.random.default_rng(19)
    lines = ["squared error / q4_0's, 4000 blocks of 32 (blocks of 16: the same values)", "",
             "| code | bits per value | U(-1, 1) | N(0, 1) |", "|---|---|---|---|"]
    data = {"u": rng.uniform(-1, 1, size=(4000, 32)), "n": rng.standard_normal(size=(4000, 32))}
    e0 = {k: ((q4_0(x) - x) ** 2).mean() for k, x in data.items()}
    rows = [("q4_0 (mmspcl)", "4.5", lambda x: e0_of(x)),
            ("q4_k format, best codes (integer z)", "4.375", lambda x: int_zero(x)),
            ("half-step zero point", "4.41", lambda x: int_zero(x, half=True)),
            ("free offset (any float S, m)", "-", lambda x: free_offset(x)),
            ("free offset, blocks of 16", "-", lambda x: free_offset(x.reshape(-1, 16))),
            ("q5_k format, best codes (integer z)", "5.41", lambda x: int_zero(x, L=31))]

    def e0_of(x):
        return ((q4_0(x) - x) ** 2).mean()
    for name, bits, f in rows:
        lines.append("| %s | %s | %.3f | %.3f |" % (name, bits, f(data["u"]) / e0["u"], f(data["n"]) / e0["n"]))
    text = "\n".join(lines)
    print(text)
    with open(__file__.replace(".py", ".txt"), "w") as fo:
        fo.write(text + "\n")


if __name__ == "__main__":
    main()
