#!/usr/bin/python3
"""The random streams of mmspcl_train.h, re-stated in Python (imported, not run), so that a
reference can write down which queue entries a seeded C run draws and which dropout masks it
applies, and compute the same step with PyTorch:

- Rng: xoshiro256** seeded through splitmix64 (mmspcl_rng_seed, _u64, _int: unbiased by
  rejection above the largest multiple of n).
- Queues: the per-class queues of mmspcl_spcl (mmspcl_spcl_reset / _push / _prototypes):
  a queue starts as [class mean]; a push appends and, when the queue holds pool_size + 1
  entries, drops entry r = rng_int(len) (the last one moves into its place); a prototype is the
  mean of K distinct entries drawn by a partial Fisher-Yates shuffle of 0..len-1 (rng_int(len - j)
  for j = 0..K-1), or the class mean while the queue holds fewer than K. Classes in order.
  This is a drawing procedure with the distribution of the original's (caskcsg/SPCL
  spcl_loss.py: random.shuffle then keep the last pool_size; torch.randperm(len)[:K]).
- dropout_mask: mmspcl_roberta_train_dropout, the hash of (key, site, index).
"""
import struct

M64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def _splitmix_next(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


class Rng:
    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x, v = _splitmix_next(x)
            self.s.append(v)

    def u64(self):
        s = self.s
        res = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return res

    def int(self, n):
        if n <= 1:
            return 0
        lim = M64 - M64 % n
        while True:
            x = self.u64()
            if x < lim:
                return x % n


class Queues:
    """entries[c]: list of detached vectors (torch tensors), as mmspcl_spcl's pool rows."""

    def __init__(self, centers, pool_size, K, seed):
        self.centers = [c.clone() for c in centers]
        self.pool_size, self.K = pool_size, K
        self.rng = Rng(seed)
        self.reset(self.centers)

    def reset(self, centers):
        self.centers = [c.clone() for c in centers]
        self.entries = [[c.clone()] for c in self.centers]

    def push(self, reps, labels):
        """Returns the drops as (class, position) pairs, in order."""
        drops = []
        for i in range(len(labels)):
            c = int(labels[i])
            if c < 0 or c >= len(self.entries):
                continue
            q = self.entries[c]
            q.append(reps[i].detach().clone())
            if len(q) > self.pool_size:
                r = self.rng.int(len(q))
                last = len(q) - 1
                if r != last:
                    q[r] = q[last]
                q.pop()
                drops.append((c, r))
        return drops

    def prototypes(self):
        """Returns (protos list, selections): selections[c] is the list of K queue positions
        drawn, or None when the class mean was used."""
        import torch
        protos, sel = [], []
        for c, q in enumerate(self.entries):
            if len(q) < self.K:
                protos.append(self.centers[c].clone())
                sel.append(None)
                continue
            idx = list(range(len(q)))
            acc = torch.zeros_like(q[0])
            for j in range(self.K):
                r = j + self.rng.int(len(q) - j)
                idx[j], idx[r] = idx[r], idx[j]
                acc = acc + q[idx[j]]
            protos.append(acc / self.K)
            sel.append(idx[:self.K])
        return protos, sel


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def f32(x):
    """x rounded to float32, as a Python float"""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def dropout_mask(key, site, index, p):
    """0 or 1/(1-p) (computed in float32, as the C code), 1 when p <= 0; p is a float32 value."""
    if not p > 0.0:
        return 1.0
    h = _mix((key ^ _mix(((site << 48) + index + 0x9E3779B97F4A7C15) & M64)) & M64)
    u = (h >> 11) * (1.0 / 9007199254740992.0)
    return 0.0 if u < p else f32(1.0 / f32(1.0 - p))
