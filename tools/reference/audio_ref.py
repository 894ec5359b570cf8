#!/usr/bin/python3
"""Audio references for tests/test_audio.c: small WAV files, and what torchaudio and Praat make of them.

1. WAV files (tests/data/audio/NAME.wav), written byte by byte here (write_wav) so that every
   format the C reader takes is present: unsigned 8-bit, 16/24/32-bit integer, 32/64-bit float,
   WAVE_FORMAT_EXTENSIBLE (24-bit mono, 32-bit 3-channel), mono / stereo / 3 channels, rates
   8000 .. 48000, an odd-sized chunk with its pad byte before the data. The speech is espeak-ng's
   (Debian espeak-ng), converted with sox to the rate wanted; tones, sweeps and noise are made
   here (numpy, fixed seed). Manifest: audio.txt, one line per file:
       NAME RATE CHANNELS FORMAT BITS FRAMES
2. torchaudio (Debian python3-torchaudio 0.13): the channels are averaged (the C reader's mono
   mix), scaled by 32768 (the int16 units Kaldi works in) and given to
       torchaudio.compliance.kaldi.fbank(x, sample_frequency=RATE, dither=0.0, num_mel_bins=80)
       torchaudio.compliance.kaldi.mfcc(x, sample_frequency=RATE, dither=0.0, use_energy=True)
   (other options at their defaults). Outputs NAME.fbank.f32 [frames][80], NAME.mfcc.f32
   [frames][13], little-endian float32. The samples are read with torchaudio.load (libsox), not
   with our reader.
3. Praat (Debian praat 6.3): tools/reference/audio_praat.praat writes NAME.praat.txt: F0 of
   "To Pitch (ac): 0.01, 75, 15, no, 0.03, 0.45, 0.01, 0.35, 0.14, 600" on the sound converted to
   mono, one frame a line (0: unvoiced), after a header line "# frames N t1 T".
4. Fuzz seeds (tests/fuzz/corpus/wav/, --seeds DIR): a few hundred bytes each, one a format.
Run: tools/reference/audio_ref.py [--out DIR] [--seeds DIR]   (re-running reproduces the committed bytes)
"""
import argparse
import os
import struct
import subprocess
import tempfile

import numpy as np
import torch
import torchaudio

GUID_TAIL = bytes([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71])


def chunk(cid, payload):
    b = cid + struct.pack("<I", len(payload)) + payload
    return b + (b"\0" if len(payload) & 1 else b"")


def write_wav(path, x, rate, kind, extensible=False, extra=()):
    """x: [channels][n] floats in [-1, 1). kind: u8 s16 s24 s32 f32 f64."""
    x = np.asarray(x, dtype=np.float64)
    ch, n = x.shape
    bits = {"u8": 8, "s16": 16, "s24": 24, "s32": 32, "f32": 32, "f64": 64}[kind]
    inter = x.T.reshape(-1)
    if kind == "u8":
        data = np.clip(np.round(inter * 128) + 128, 0, 255).astype(np.uint8).tobytes()
    elif kind in ("s16", "s32"):
        s = 2.0 ** (bits - 1)
        data = np.clip(np.round(inter * s), -s, s - 1).astype("<i2" if bits == 16 else "<i4").tobytes()
    elif kind == "s24":
        v = np.clip(np.round(inter * 8388608.0), -8388608, 8388607).astype("<i4")
        data = b"".join(int(t).to_bytes(3, "little", signed=True) for t in v)
    else:
        data = inter.astype("<f4" if bits == 32 else "<f8").tobytes()
    tag = 3 if kind[0] == "f" else 1
    block = ch * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, ch, rate, rate * block, block, bits, 22, bits, 0) + struct.pack("<H", tag) + GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, ch, rate, rate * block, block, bits)
    body = b"WAVE" + chunk(b"fmt ", fmt) + b"".join(chunk(c, p) for c, p in extra) + chunk(b"data", data)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return kind, bits, n


def espeak(text, voice, rate, seconds):
    with tempfile.TemporaryDirectory() as d:
        raw, conv = os.path.join(d, "e.wav"), os.path.join(d, "c.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", raw, text], check=True)
        subprocess.run(["sox", raw, "-r", str(rate), "-b", "16", conv], check=True)
        w, sr = torchaudio.load(conv)
    assert sr == rate
    x = w[0].double().numpy()[: int(seconds * rate)]
    return x


def tone(rate, seconds, f, amp, rng, noise=1e-3, phase=0.0):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * f * t + phase) + noise * rng.standard_normal(t.size)


def make_wavs(out):
    rng = np.random.default_rng(16)
    files = []
    x = espeak("The quick brown fox jumps over the lazy dog.", "en", 16000, 2.0)
    files.append(("speech_m_16k", 16000, 1) + write_wav(f"{out}/speech_m_16k.wav", [x], 16000, "s16",
                 extra=[(b"LIST", b"INFOISFT\x05\0\0\0mmsp\0"), (b"fact", struct.pack("<I", x.size))]))
    x = espeak("Are you coming to the party tonight?", "en+f3", 22050, 1.6)
    files.append(("speech_f_22k", 22050, 1) + write_wav(f"{out}/speech_f_22k.wav", [x], 22050, "s16"))
    x = espeak("Nine bright shiny lanterns.", "en+m3", 8000, 1.5)
    files.append(("speech_8k_u8", 8000, 1) + write_wav(f"{out}/speech_8k_u8.wav", [x], 8000, "u8"))
    x = espeak("What a lovely morning.", "en", 44100, 0.5)
    d = int(0.002 * 44100)
    r = 0.5 * np.concatenate([np.zeros(d), x[:-d]]) + 2e-3 * rng.standard_normal(x.size)
    files.append(("speech_44k_stereo", 44100, 2) + write_wav(f"{out}/speech_44k_stereo.wav", [x, r], 44100, "s16"))
    x = tone(48000, 0.5, 220.0, 0.5, rng)
    files.append(("tone_220_48k_s24", 48000, 1) + write_wav(f"{out}/tone_220_48k_s24.wav", [x], 48000, "s24", extensible=True))
    a, b = tone(16000, 0.6, 150.0, 0.3, rng), tone(16000, 0.6, 150.0, 0.2, rng)
    files.append(("tone_150_16k_f32_stereo", 16000, 2) + write_wav(f"{out}/tone_150_16k_f32_stereo.wav", [a, b], 16000, "f32"))
    t = np.arange(int(0.8 * 16000)) / 16000
    f0, f1 = 100.0, 400.0
    ph = 2 * np.pi * f0 * 0.8 / np.log(f1 / f0) * ((f1 / f0) ** (t / 0.8) - 1)
    x = 0.4 * np.sin(ph) + 1e-3 * rng.standard_normal(t.size)
    files.append(("sweep_16k", 16000, 1) + write_wav(f"{out}/sweep_16k.wav", [x], 16000, "s16"))
    x = tone(8000, 0.3, 300.0, 0.6, rng)
    files.append(("tone_300_8k_f64", 8000, 1) + write_wav(f"{out}/tone_300_8k_f64.wav", [x], 8000, "f64"))
    c0, c1, c2 = tone(32000, 0.2, 180.0, 0.4, rng), 0.05 * rng.standard_normal(6400), tone(32000, 0.2, 180.0, 0.2, rng, phase=0.3)
    files.append(("mix_32k_s32_3ch", 32000, 3) + write_wav(f"{out}/mix_32k_s32_3ch.wav", [c0, c1, c2], 32000, "s32", extensible=True))
    with open(f"{out}/audio.txt", "w") as f:
        f.write("# NAME RATE CHANNELS FORMAT BITS FRAMES (tools/reference/audio_ref.py)\n")
        for name, rate, ch, kind, bits, n in files:
            f.write(f"{name} {rate} {ch} {kind} {bits} {n}\n")
    return files


def references(out, files, praat_script):
    for name, rate, ch, kind, bits, n in files:
        path = f"{out}/{name}.wav"
        w, sr = torchaudio.load(path)
        assert sr == rate and w.shape == (ch, n), (name, w.shape)
        x = (w.double().mean(0) * 32768.0).float().unsqueeze(0)
        fb = torchaudio.compliance.kaldi.fbank(x, sample_frequency=float(rate), dither=0.0, num_mel_bins=80)
        mf = torchaudio.compliance.kaldi.mfcc(x, sample_frequency=float(rate), dither=0.0, use_energy=True)
        fb.numpy().astype("<f4").tofile(f"{out}/{name}.fbank.f32")
        mf.numpy().astype("<f4").tofile(f"{out}/{name}.mfcc.f32")
        subprocess.run(["praat", "--run", praat_script, os.path.abspath(path), os.path.abspath(f"{out}/{name}.praat.txt")], check=True)
        print(f"{name}: {n} frames at {rate} Hz, {ch} ch {kind}; fbank {tuple(fb.shape)}, mfcc {tuple(mf.shape)}")


def write_seeds(d):
    """Small WAV files for tests/fuzz/fuzz_wav.c: every sample format, odd chunks, extensible."""
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    t = np.arange(96) / 8000.0
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    odd = [(b"LIST", b"INFOIART\x03\0\0\0ab\0")]   # 15 bytes: a pad byte follows
    write_wav(f"{d}/u8.wav", [x], 8000, "u8", extra=odd)
    write_wav(f"{d}/s16_stereo.wav", [x, -x], 16000, "s16")
    write_wav(f"{d}/s24_ext.wav", [x[:64]], 48000, "s24", extensible=True)
    write_wav(f"{d}/s32_3ch_ext.wav", [x[:32], x[:32], 0 * x[:32]], 32000, "s32", extensible=True)
    write_wav(f"{d}/f32.wav", [x], 22050, "f32", extra=odd)
    write_wav(f"{d}/f64.wav", [x[:48]], 11025, "f64")
    write_wav(f"{d}/f32_ext_stereo.wav", [x[:40], x[:40]], 44100, "f32", extensible=True)
    # 12-bit samples in 16-bit containers: the fmt chunk says 12 bits
    write_wav(f"{d}/s12.wav", [np.round(x * 2048) / 2048], 16000, "s16")
    with open(f"{d}/s12.wav", "r+b") as f:
        f.seek(34)
        f.write(struct.pack("<H", 12))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/audio")
    ap.add_argument("--seeds", default="tests/fuzz/corpus/wav")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_seeds(args.seeds)
    torch.set_num_threads(1)
    files = make_wavs(args.out)
    references(args.out, files, os.path.join(os.path.dirname(os.path.abspath(__file__)), "audio_praat.praat"))


if __name__ == "__main__":
    main()
