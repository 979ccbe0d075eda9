#!/usr/bin/env python3
"""Cross-checks the FP8 encoder of llmc/fp8.h against ml_dtypes (float8_e4m3fn, float8_e5m2).

Runs `dev/test_fp8_host --dump FILE` (building it with gcc when missing), which writes the E4M3
and the E5M2 code of each of the 65536 BF16 bit patterns, and compares them with ml_dtypes'
round-to-nearest-even conversion for every BF16 input within the format's range (finite,
|x| <= max: beyond it ml_dtypes overflows to NaN or inf where llmc saturates, by design).
Also decodes all 256 codes of each format with ml_dtypes and checks the encoder maps every
finite value back to its own code. Prints PASS/FAIL lines and `N passed, N failed`; exit 1
on a failure. Needs python3 with numpy and ml_dtypes.
    usage: python3 dev/fp8_mldtypes_check.py [path/to/test_fp8_host]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import ml_dtypes

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = [("e4m3", ml_dtypes.float8_e4m3fn, 448.0), ("e5m2", ml_dtypes.float8_e5m2, 57344.0)]


def dumped_codes(exe):
    if not os.path.exists(exe):
        src = os.path.join(HERE, "test_fp8_host.c")
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", exe, src, "-lm"], check=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fp8_codes.bin")
        subprocess.run([exe, "--dump", path], check=True, stdout=subprocess.DEVNULL)
        codes = np.fromfile(path, dtype=np.uint8)
    if codes.size != 2 * 65536:
        sys.exit(f"error: {exe} --dump wrote {codes.size} bytes, expected {2 * 65536}")
    return codes.reshape(2, 65536)


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "test_fp8_host")
    codes = dumped_codes(exe)
    x = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32)   # every bf16 value, exactly
    passed = failed = 0

    def report(ok, msg):
        nonlocal passed, failed
        print(("PASS " if ok else "FAIL ") + msg)
        passed, failed = passed + ok, failed + (not ok)

    for k, (name, dtype, fmax) in enumerate(FORMATS):
        inside = np.isfinite(x) & (np.abs(x) <= fmax)
        want = x[inside].astype(dtype).view(np.uint8)
        got = codes[k][inside]
        bad = np.nonzero(got != want)[0]
        for i in bad[:5]:
            b = int(np.nonzero(inside)[0][i])
            print(f"  bf16 0x{b:04x} = {x[b]!r}: llmc 0x{got[i]:02x}, ml_dtypes 0x{want[i]:02x}")
        report(bad.size == 0, f"{name}: {inside.sum()} bf16 inputs within +-{fmax:g} encode like ml_dtypes "
                              f"({bad.size} differ)")
        # the codes llmc gives to values ml_dtypes decodes: each finite code maps back to itself
        all_codes = np.arange(256, dtype=np.uint8)
        vals = all_codes.view(dtype).astype(np.float32)
        finite = np.isfinite(vals)
        vbits = vals[finite].view(np.uint32)
        exact_bf16 = (vbits & 0xFFFF) == 0          # every fp8 value is a bf16 value
        back = codes[k][(vbits >> 16).astype(np.int64)]
        ok = bool(exact_bf16.all()) and bool((back == all_codes[finite]).all())
        report(ok, f"{name}: every finite code ml_dtypes decodes encodes back to itself ({finite.sum()} codes)")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
