#!/usr/bin/env python3
"""Checks the fused attention kernel against torch's scaled_dot_product_attention and
times both on the same GPU.

usage: attention_torch.py DUMP_DIR
DUMP_DIR/attention.bin comes from `dev/test_kernels --dump-attention DUMP_DIR`: int32 B, T, C, NH,
then bf16 qkv (B,T,3C), dout (B,T,C), out (B,T,C), dqkv (B,T,3C), then fp32 lse (B,NH,T).
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOL_OUT, TOL_GRAD, TOL_LSE = 1e-2, 1.2e-2, 1e-4   # as dev/test_kernels.cu, against an fp32 reference


def bf16(buf, n, off):
    x = np.frombuffer(buf, dtype=np.uint16, count=n, offset=off).astype(np.uint32) << 16
    return torch.from_numpy(x.view(np.float32).copy()), off + 2 * n


def main():
    raw = open(sys.argv[1] + "/attention.bin", "rb").read()
    B, T, C, NH = np.frombuffer(raw, dtype=np.int32, count=4)
    B, T, C, NH, HS = int(B), int(T), int(C), int(NH), int(C) // int(NH)
    off = 16
    qkv, off = bf16(raw, B * T * 3 * C, off)
    dout, off = bf16(raw, B * T * C, off)
    out, off = bf16(raw, B * T * C, off)
    dqkv, off = bf16(raw, B * T * 3 * C, off)
    lse = torch.from_numpy(np.frombuffer(raw, dtype=np.float32, count=B * NH * T, offset=off).copy())

    dev = "cuda"
    x = qkv.view(B, T, 3, NH, HS).to(dev).double().requires_grad_(True)
    q, k, v = (x[:, :, i].transpose(1, 2) for i in range(3))          # (B,NH,T,HS)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)       # math backend in float64
    ref_lse = torch.logsumexp((q @ k.transpose(-1, -2)) / HS ** 0.5 +
                              torch.full((T, T), float("-inf"), device=dev, dtype=torch.float64).triu(1), dim=-1)
    ref_out = ref.transpose(1, 2).reshape(B, T, C)
    ref_out.backward(dout.view(B, T, C).to(dev).double())
    ref_dqkv = x.grad.reshape(B, T, 3 * C)

    def rel(a, b):
        return ((a.double().to(dev) - b).norm() / b.norm()).item()

    checks = [("out", rel(out.view(B, T, C), ref_out), TOL_OUT),
              ("lse", rel(lse.view(B, NH, T), ref_lse), TOL_LSE)]
    for i, name in enumerate(("dq", "dk", "dv")):
        ours = dqkv.view(B, T, 3, C)[:, :, i]
        checks.append((name, rel(ours, ref_dqkv.view(B, T, 3, C)[:, :, i]), TOL_GRAD))
    passed = failed = 0
    print(f"fused attention vs torch SDPA (float64), B={B} T={T} NH={NH}")
    for name, err, tol in checks:
        ok = err < tol
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'PASS' if ok else 'FAIL'} {name:4s} rel err {err:.3e} (tol {tol:.0e})")

    print("\ntorch SDPA, flash backend, bf16 (median of 50, CUDA events):")
    print(f"{'B, NH, T':18s} {'fwd ms':>10s} {'bwd ms':>10s} {'fwd+bwd':>10s} {'fwd TF/s':>9s} {'bwd TF/s':>9s}")
    for (b, nh, t) in ((64, 12, 1024), (16, 25, 1024), (8, 25, 2048)):
        qq, kk, vv = (torch.randn(b, nh, t, 64, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        g = torch.randn(b, nh, t, 64, device=dev, dtype=torch.bfloat16)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            def fwd():
                return F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
            o = fwd()
            tf, tb = [], []
            for _ in range(60):
                e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
                e0.record(); o = fwd(); e1.record()
                o.backward(g); e2.record()
                torch.cuda.synchronize()
                tf.append(e0.elapsed_time(e1)); tb.append(e1.elapsed_time(e2))
                qq.grad = kk.grad = vv.grad = None
        f, bw = float(np.median(tf[10:])), float(np.median(tb[10:]))
        fl = 4.0 * b * nh * t * t * 64 / 2
        print(f"{b:4d}, {nh:3d}, {t:5d}     {f:10.3f} {bw:10.3f} {f + bw:10.3f} {fl / f / 1e9:9.1f} {2.5 * fl / bw / 1e9:9.1f}")
    print(f"attention vs torch: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
