#!/usr/bin/env python3
"""Writes a small llm.c-format token shard for tests, optionally broken on purpose.

usage: make_shard.py OUT NTOKENS [--seed S] [--vocab V] [--magic M] [--version N]
                     [--bad-token] [--truncate] [--trailing]
"""
import argparse
import random
import struct

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("ntok", type=int)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--vocab", type=int, default=50257)
p.add_argument("--magic", type=int, default=20240520)
p.add_argument("--version", type=int, default=1)
p.add_argument("--bad-token", action="store_true", help="put one token id >= vocab in the middle")
p.add_argument("--truncate", action="store_true", help="drop the last token's bytes")
p.add_argument("--trailing", action="store_true", help="append a stray byte")
a = p.parse_args()

rng = random.Random(a.seed)
toks = [rng.randrange(a.vocab) for _ in range(a.ntok)]
if a.bad_token:
    toks[a.ntok // 2] = min(a.vocab, 65535)
header = [0] * 256
header[0], header[1], header[2] = a.magic, a.version, a.ntok
data = struct.pack("<256i", *header) + struct.pack("<%dH" % a.ntok, *toks)
if a.truncate:
    data = data[:-2]
if a.trailing:
    data += b"\0"
with open(a.out, "wb") as f:
    f.write(data)
