#!/usr/bin/env python3
"""Plots train and validation loss curves of one or more runs' log.jsonl files.

usage: plot_losses.py OUT.png LABEL=RUN_DIR/log.jsonl [LABEL=...]
"""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read(path):
    train, val = [], []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "train_loss" in r:
                train.append((r["step"], r["train_loss"]))
            if "val_loss" in r:
                val.append((r["step"], r["val_loss"]))
    return train, val


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        train, val = read(path)
        if train:
            ax1.plot(*zip(*train), label=label, linewidth=0.8)
        if val:
            ax2.plot(*zip(*val), marker="o", label=label)
    for ax, title in ((ax1, "train loss"), (ax2, "val loss")):
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.set_ylim(top=min(ax.get_ylim()[1], 8.0))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=110)


if __name__ == "__main__":
    main()
