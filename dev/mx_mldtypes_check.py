#!/usr/bin/env python3
"""Cross-checks the block-scaled formats of llmc/mx.h against ml_dtypes (float8_e8m0fnu,
float4_e2m1fn, float8_e4m3fn).

Runs `dev/test_mx_host --dump FILE` (building it with gcc when missing; the layout is described
at dump() in dev/test_mx_host.c) and compares with ml_dtypes:
  - E8M0: all 256 codes decode as ml_dtypes decodes them (255: NaN); every power of two 2^-127..2^127
    converts to the same code in both, and mx_e8m0_encode gives it back (mx_e8m0_encode rounds up
    by design, ml_dtypes to nearest, so only exact powers of two are compared)
  - E2M1: all 16 codes decode alike (code 8 is -0); mx_e2m1_encode equals ml_dtypes' round to
    nearest even on a dense sweep of float32 inputs with |x| <= 6 (every 2^11-th float32 pattern,
    every 2^7-th float in [2^-10, 8), all floats within 512 ulps of each value and midpoint,
    every BF16 value). Beyond 6 llmc saturates and ml_dtypes' handling depends on its version:
    reported, not checked. NaN is left out (llmc: 0x7, ml_dtypes: 0x8)
  - NVFP4 block scales: mx_nvfp4_block_scale(amax, s_t) equals ml_dtypes' E4M3 of the same float32
    arithmetic (amax / 6) * s_t wherever that is <= 448 (above, llmc saturates, ml_dtypes gives NaN)
Prints PASS/FAIL lines and `N passed, N failed`; exit 1 on a failure. Without numpy, or an
ml_dtypes that lacks these types, prints a line starting with SKIPPED and exits 0.
    usage: python3 dev/mx_mldtypes_check.py [path/to/test_mx_host]
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import ml_dtypes
except ImportError as e:
    print(f"SKIPPED mx_mldtypes_check: {e}")
    sys.exit(0)

NEEDED = ("float8_e8m0fnu", "float4_e2m1fn", "float8_e4m3fn")
missing = [t for t in NEEDED if not hasattr(ml_dtypes, t)]
if missing:
    print(f"SKIPPED mx_mldtypes_check: ml_dtypes {getattr(ml_dtypes, '__version__', '?')} lacks {', '.join(missing)}")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x4D584450


def load_dump(exe):
    if not os.path.exists(exe):
        src = os.path.join(HERE, "test_mx_host.c")
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", exe, src, "-lm"], check=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "mx_dump.bin")
        subprocess.run([exe, "--dump", path], check=True, stdout=subprocess.DEVNULL)
        raw = np.fromfile(path, dtype=np.uint8)
    magic, n_sweep, n_bs, _ = raw[:16].view("<u4").tolist()
    size = 16 + 256 * 5 + 16 * 4 + n_sweep * 5 + n_bs * 9
    if magic != MAGIC or raw.size != size:
        sys.exit(f"error: {exe} --dump wrote {raw.size} bytes (magic 0x{magic:08x}), expected {size} (magic 0x{MAGIC:08x})")
    out, pos = {}, 16

    def take(name, count, dtype):
        nonlocal pos
        nbytes = count * np.dtype(dtype).itemsize
        out[name] = raw[pos:pos + nbytes].view(dtype)
        pos += nbytes

    take("e8m0_dec", 256, "<f4")
    take("e8m0_enc", 256, np.uint8)
    take("e2m1_dec", 16, "<f4")
    take("sweep_x", n_sweep, "<f4")
    take("sweep_q", n_sweep, np.uint8)
    take("bs_amax", n_bs, "<f4")
    take("bs_st", n_bs, "<f4")
    take("bs_code", n_bs, np.uint8)
    return out


def ml_decode(codes, dtype):
    """ml_dtypes' value of each code (uint8 array) of dtype, as float32"""
    return codes.view(dtype).astype(np.float32)


def ml_encode(x, dtype):
    """ml_dtypes' code (uint8) of each float32 value of x in dtype"""
    return x.astype(dtype).view(np.uint8)


def same_float(a, b):
    """bit-identical float32 arrays, any NaN equal to any NaN"""
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "test_mx_host")
    d = load_dump(exe)
    passed = failed = 0

    def report(ok, msg):
        nonlocal passed, failed
        print(("PASS " if ok else "FAIL ") + msg)
        passed, failed = passed + bool(ok), failed + (not ok)

    def show(bad, fmt_one):
        for i in bad[:5]:
            print("  " + fmt_one(int(i)))

    # E8M0
    codes = np.arange(256, dtype=np.uint8)
    ml = ml_decode(codes, ml_dtypes.float8_e8m0fnu)
    bad = np.nonzero(~same_float(d["e8m0_dec"], ml))[0]
    show(bad, lambda c: f"code {c}: llmc {d['e8m0_dec'][c]!r}, ml_dtypes {ml[c]!r}")
    report(bad.size == 0, f"e8m0: all 256 codes decode like ml_dtypes ({bad.size} differ)")
    pows = d["e8m0_dec"][:255]                       # 2^-127 .. 2^127, exact float32 values
    ml_codes = ml_encode(pows, ml_dtypes.float8_e8m0fnu)
    ok = (ml_codes == codes[:255]).all() and (d["e8m0_enc"][:255] == codes[:255]).all() and d["e8m0_enc"][255] == 255
    report(ok, "e8m0: every power of two 2^-127..2^127 converts to the same code in ml_dtypes and mx_e8m0_encode")

    # E2M1 decode
    codes16 = np.arange(16, dtype=np.uint8)
    ml = ml_decode(codes16, ml_dtypes.float4_e2m1fn)
    bad = np.nonzero(~same_float(d["e2m1_dec"], ml))[0]   # bits: -0 (code 8) must stay -0
    show(bad, lambda c: f"code {c}: llmc {d['e2m1_dec'][c]!r}, ml_dtypes {ml[c]!r}")
    report(bad.size == 0, f"e2m1: all 16 codes decode like ml_dtypes, signed zero included ({bad.size} differ)")

    # E2M1 encode: round to nearest even on the sweep
    x, q = d["sweep_x"], d["sweep_q"]
    finite = np.isfinite(x)
    inside = finite & (np.abs(x) <= 6.0)
    ml_q = ml_encode(x[inside], ml_dtypes.float4_e2m1fn) & 0x0F
    got = q[inside]
    bad = np.nonzero(got != ml_q)[0]
    xs = x[inside]
    show(bad, lambda i: f"x = {xs[i]!r} (0x{xs[i:i + 1].view(np.uint32)[0]:08x}): llmc 0x{got[i]:x}, ml_dtypes 0x{ml_q[i]:x}")
    ties = int(np.isin(np.abs(xs), [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]).sum())
    report(bad.size == 0, f"e2m1: {inside.sum()} float32 inputs with |x| <= 6 ({ties} exact ties) encode like ml_dtypes' "
                          f"round to nearest even ({bad.size} differ)")
    outside = ~np.isnan(x) & ~inside
    ml_out = ml_encode(x[outside], ml_dtypes.float4_e2m1fn) & 0x0F
    agree = int((ml_out == q[outside]).sum())
    print(f"note: beyond +-6 (infinities included) llmc saturates to +-6; ml_dtypes "
          f"{getattr(ml_dtypes, '__version__', '?')} agrees on {agree} of {int(outside.sum())}")

    # NVFP4 block scales: E4M3 of (amax / 6) * s_t in float32
    v = (d["bs_amax"] / np.float32(6.0)) * d["bs_st"]
    inside = np.abs(v) <= np.float32(448.0)
    ml_c = ml_encode(v[inside], ml_dtypes.float8_e4m3fn)
    got = d["bs_code"][inside]
    bad = np.nonzero(got != ml_c)[0]
    vs = v[inside]
    show(bad, lambda i: f"(amax/6)*s_t = {vs[i]!r}: llmc 0x{got[i]:02x}, ml_dtypes 0x{ml_c[i]:02x}")
    sat_ok = (d["bs_code"][~inside] == 0x7E).all()
    report(bad.size == 0 and sat_ok, f"nvfp4: {inside.sum()} block scales equal ml_dtypes' float8_e4m3fn of (amax / 6) * s_t "
                                     f"({bad.size} differ; {int((~inside).sum())} above 448 saturate to 0x7E: {bool(sat_ok)})")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
