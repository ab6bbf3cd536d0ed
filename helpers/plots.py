"""Plots people would rather look at than read: loss curves (saved, or live in a notebook).

Taught in notebook 04. matplotlib is imported lazily with the Agg backend when no display is
set, so the CLI works on headless machines.
"""
from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "nbagg", "widget", "ipympl"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_loss(ax_loss, ax_lr, history: list[dict]) -> None:
    """Draw train (per-step and eval) and val loss, and the learning rate, onto two axes."""
    train = [h for h in history if h.get("kind") == "train"]
    evals = [h for h in history if h.get("kind") == "eval"]
    ax_loss.clear()
    ax_lr.clear()
    if train:
        ax_loss.plot([h["step"] for h in train], [h["loss"] for h in train], color="tab:blue", alpha=0.3,
                     lw=1, label="train (running)")
    if evals:
        steps = [h["step"] for h in evals]
        ax_loss.plot(steps, [h["train_loss"] for h in evals], "o-", color="tab:blue", label="train (eval)")
        ax_loss.plot(steps, [h["val_loss"] for h in evals], "o-", color="tab:orange", label="val")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (nats / token)")
    ax_loss.grid(alpha=0.3)
    if train or evals:
        ax_loss.legend(loc="upper right")
    lr_pts = [(h["step"], h["lr"]) for h in train + evals if "lr" in h]
    if lr_pts:
        lr_pts.sort()
        ax_lr.plot(*zip(*lr_pts), color="tab:green")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(alpha=0.3)


def save_loss_plot(history: list[dict], path: str | Path, title: str = "") -> Path:
    plt = _plt()
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    draw_loss(ax_loss, ax_lr, history)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
