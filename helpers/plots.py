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


class LiveLossPlot:
    """A `callback` for `helpers.train.train` that redraws one figure in place at every eval.

    In JupyterLab the same output updates (no new figure per eval); in an executed notebook or
    the book, the final state is what is stored.
    """

    def __init__(self, title: str = ""):
        plt = _plt()
        self.fig, (self.ax_loss, self.ax_lr) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
        if title:
            self.fig.suptitle(title)
        plt.close(self.fig)  # we display it ourselves, once, then update that display
        self.history: list[dict] = []
        self._handle = None

    def __call__(self, rec: dict) -> None:
        self.history.append(rec)
        if rec.get("kind") != "eval":
            return
        from IPython.display import Image, display

        draw_loss(self.ax_loss, self.ax_lr, self.history)
        self.fig.tight_layout()
        image = Image(data=figure_png(self.fig))  # explicit PNG: works whatever the matplotlib backend
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def figure_png(fig, dpi: int = 100) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def next_token_bars(ax, probs: list[tuple[str, float]], context: str = "") -> None:
    """Horizontal bars of the most likely next tokens (most likely on top)."""
    ax.clear()
    labels = [repr(t) for t, _ in probs][::-1]
    ax.barh(labels, [p for _, p in probs][::-1], color="tab:blue")
    ax.set_xlabel("probability")
    ax.set_xlim(0, max([p for _, p in probs] + [0.05]) * 1.1)
    tail = context[-40:].replace("\n", " ")
    ax.set_title(f"next token after …{tail!r}" if context else "next token", fontsize=9)
