"""Checks the CUDA trainer's test outputs against GPT-2 written in PyTorch (fp32).

usage: python3 dev/torch_reference.py DIR

DIR holds model.bin, batch.bin and gpu_out.bin from the CUDA test program; the layouts and
the tolerances (with their reasons) are those of `dev/test_gpt2_cpu --compare DIR`.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}  # weight decay on matrices only
TOL_LOGITS_REL, TOL_LOGITS_MAXABS, TOL_LOSS_ABS, TOL_GRAD_REL, TOL_LOSSES_REL = 2e-2, 2e-2, 2e-3, 3e-2, 2e-3


def shapes(maxT, V, L, NH, C, Vp):
    return [(Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
            (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]


def load_model(path, device):
    """llm.c checkpoint (v3 fp32 or v5 bf16) -> (config dict, {name: leaf tensor})."""
    header = np.fromfile(path, dtype=np.int32, count=256)
    if header.size != 256 or header[0] != 20240326 or header[1] not in (3, 5):
        sys.exit(f"{path}: not a version 3 or 5 GPT-2 checkpoint")
    cfg = dict(zip(["maxT", "V", "L", "NH", "C", "Vp"], (int(x) for x in header[2:8])))
    if header[1] == 3:
        flat = np.fromfile(path, dtype=np.float32, offset=1024)
    else:  # bf16 is the upper half of an fp32
        flat = (np.fromfile(path, dtype=np.uint16, offset=1024).astype(np.uint32) << 16).view(np.float32)
    shp = shapes(**cfg)
    if flat.size != sum(int(np.prod(s)) for s in shp):
        sys.exit(f"{path}: {flat.size} parameters, config {cfg} needs {sum(int(np.prod(s)) for s in shp)}")
    params, off = {}, 0
    for name, s in zip(NAMES, shp):
        k = int(np.prod(s))
        params[name] = torch.tensor(flat[off:off + k].reshape(s), device=device, requires_grad=True)
        off += k
    return cfg, params


def forward(p, cfg, idx, tgt):
    """idx, tgt (B,T) int64 -> logits (B,T,Vp), mean cross-entropy over the first V columns."""
    B, T = idx.shape
    C, NH, V = cfg["C"], cfg["NH"], cfg["V"]
    x = p["wte"][idx] + p["wpe"][:T]  # (B,T,C)
    for l in range(cfg["L"]):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]  # (B,T,3C)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=-1))  # (B,NH,T,HS)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B,NH,T,HS), scale 1/sqrt(HS)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B,T,C) heads concatenated
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        f = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")  # (B,T,4C)
        x = x + f @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"].T  # (B,T,Vp), tied weights
    loss = F.cross_entropy(logits[..., :V].reshape(B * T, V), tgt.reshape(B * T))
    return logits, loss


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 dev/torch_reference.py DIR")
    d = sys.argv[1]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_float32_matmul_precision("highest")  # no TF32: a true fp32 reference
    cfg, p = load_model(f"{d}/model.bin", device)
    n = sum(t.numel() for t in p.values())

    batch = np.fromfile(f"{d}/batch.bin", dtype=np.int32)
    B, T = int(batch[0]), int(batch[1])
    if batch.size != 2 + 2 * B * T or T > cfg["maxT"]:
        sys.exit(f"{d}/batch.bin: {batch.size} int32s does not fit B={B} T={T} (maxT {cfg['maxT']})")
    idx = torch.from_numpy(batch[2:2 + B * T].reshape(B, T).astype(np.int64)).to(device)  # (B,T)
    tgt = torch.from_numpy(batch[2 + B * T:].reshape(B, T).astype(np.int64)).to(device)  # (B,T)

    head = np.fromfile(f"{d}/gpu_out.bin", dtype=np.int64, count=8)
    if head.size != 8 or head[0] != 20261122 or list(head[1:5]) != [B, T, cfg["Vp"], n] or head[5] < 1:
        sys.exit(f"{d}/gpu_out.bin: header {head.tolist()} does not match B={B} T={T} Vp={cfg['Vp']} params={n}")
    nsteps, NVp = int(head[5]), B * T * cfg["Vp"]
    body = np.fromfile(f"{d}/gpu_out.bin", dtype=np.float32, offset=64).astype(np.float64)
    if body.size != NVp + 1 + n + nsteps:
        sys.exit(f"{d}/gpu_out.bin: {body.size} floats after the header, expected {NVp + 1 + n + nsteps}")
    gpu_logits, gpu_loss, gpu_grads, gpu_losses = body[:NVp], body[NVp], body[NVp + 1:NVp + 1 + n], body[NVp + 1 + n:]

    # the same AdamW steps on the same batch; step 0 also gives logits, loss and grads
    opt = torch.optim.AdamW([{"params": [p[k] for k in NAMES if k in DECAY], "weight_decay": 0.1},
                             {"params": [p[k] for k in NAMES if k not in DECAY], "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for step in range(nsteps):
        opt.zero_grad(set_to_none=True)
        logits, loss = forward(p, cfg, idx, tgt)
        loss.backward()
        if step == 0:  # grads before clipping
            ref_logits = logits.detach().double().cpu().numpy().ravel()
            ref_grads = np.concatenate([p[k].grad.detach().double().cpu().numpy().ravel() for k in NAMES])
        losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_([p[k] for k in NAMES], 1.0)
        opt.step()

    results = []

    def row(what, metric, value, tol, note=""):
        ok = bool(value <= tol)  # NaN fails
        print(f"{what:<16} {metric:<18} {value:11.3e} {tol:11.3e}  {'PASS' if ok else 'FAIL':<4} {note}")
        results.append(ok)

    def rel_l2(a, ref):
        den = np.linalg.norm(ref)
        return np.linalg.norm(a - ref) / den if den > 0 else np.linalg.norm(a)

    print(f"config {cfg}; batch B={B} T={T}; {n} params; {nsteps} steps; torch on {device}")
    print(f"{'quantity':<16} {'metric':<18} {'value':>11} {'tolerance':>11}  result")
    row("logits", "rel L2", rel_l2(gpu_logits, ref_logits), TOL_LOGITS_REL)
    maxabs, maxref = np.max(np.abs(gpu_logits - ref_logits)), np.max(np.abs(ref_logits))
    row("logits", "max abs / max|ref|", maxabs / max(maxref, 1e-30), TOL_LOGITS_MAXABS,
        f"max abs {maxabs:.3e}, max |ref| {maxref:.3f}")
    row("loss", "abs diff", abs(gpu_loss - losses[0]), TOL_LOSS_ABS, f"gpu {gpu_loss:.6f} ref {losses[0]:.6f}")
    off = 0
    for k in NAMES:
        size = p[k].numel()
        row(f"grad {k}", "rel L2", rel_l2(gpu_grads[off:off + size], ref_grads[off:off + size]), TOL_GRAD_REL)
        off += size
    if cfg["Vp"] > cfg["V"]:  # padded logits get zero gradient, and nothing else touches those rows
        pad = np.max(np.abs(gpu_grads[cfg["V"] * cfg["C"]:cfg["Vp"] * cfg["C"]]))
        row("grad wte[V:Vp]", "max abs", pad, 0.0, "padded rows must be exactly 0")
    for step in range(nsteps):
        row(f"loss step {step}", "rel diff", abs(gpu_losses[step] - losses[step]) / abs(losses[step]), TOL_LOSSES_REL,
            f"gpu {gpu_losses[step]:.6f} ref {losses[step]:.6f}")

    passed = sum(results)
    print(f"torch reference: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
