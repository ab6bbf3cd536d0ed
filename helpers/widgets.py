"""A thin ipywidgets panel over `helpers.sample`: prompt, sampling settings, checkpoint picker,
Generate. Text streams in as it is generated, and a bar chart shows the next-token
probabilities for the current context. Taught in notebook 06.

Everything it does is a call to a plain function (`sample.stream`, `sample.next_token_probs`)
that the tests call directly; the widgets only collect settings and show results.
"""
from __future__ import annotations

import html
from pathlib import Path

from . import checkpoint as ckpt_io
from . import paths, sample
from .device import detect_device


def find_checkpoints(root: Path | None = None) -> list[Path]:
    """best.safetensors of every run under checkpoints/, newest first."""
    root = root or paths.checkpoints_root()
    found = [p for p in root.glob("*/best.safetensors") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class SamplingPanel:
    """Build with SamplingPanel(); show `.widget`. `generate()` is what the button calls."""

    def __init__(self, checkpoints: list[Path] | None = None, prompt: str = "Title:"):
        import ipywidgets as W

        self._cache: dict[Path, ckpt_io.Checkpoint] = {}
        options = [(f"{p.parent.name}/{p.name}", str(p)) for p in (checkpoints or find_checkpoints())]
        wide = W.Layout(width="100%")
        label = {"description_width": "110px"}  # room for the labels, so they are not cut off
        self.checkpoint = W.Dropdown(options=options, description="checkpoint", layout=wide)
        self.prompt = W.Textarea(value=prompt, description="prompt", layout=W.Layout(width="100%", height="60px"))
        d = sample.SampleSettings()  # the same defaults as plotgpt generate
        self.temperature = W.FloatSlider(value=d.temperature, min=0.1, max=2.0, step=0.05, description="temperature",
                                         style=label)
        self.top_k = W.IntSlider(value=d.top_k or 0, min=0, max=500, step=5, description="top-k (0 off)", style=label)
        self.top_p = W.FloatSlider(value=d.top_p or 1.0, min=0.05, max=1.0, step=0.05, description="top-p", style=label)
        self.max_new_tokens = W.IntSlider(value=150, min=10, max=600, step=10, description="new tokens", style=label)
        self.do_sample = W.Checkbox(value=True, description="sample (off = greedy)", style=label)
        self.seed = W.IntText(value=0, description="seed (-1 random)", style=label)
        self.button = W.Button(description="Generate", button_style="primary", icon="play")
        self.status = W.HTML()
        self.text = W.HTML(layout=W.Layout(width="100%", min_height="120px", border="1px solid #ccc", padding="6px"))
        self.bars = W.Image(format="png", layout=W.Layout(width="450px"))
        self.button.on_click(lambda _: self.generate())
        controls = W.VBox([self.temperature, self.top_k, self.top_p, self.max_new_tokens, self.do_sample, self.seed])
        self.widget = W.VBox([self.checkpoint, self.prompt, W.HBox([controls, self.bars]),
                              W.HBox([self.button, self.status]), self.text])
        if not options:
            self.button.disabled = True
            self.status.value = "no checkpoint found under checkpoints/: train one first (plotgpt train)"

    def _load(self) -> ckpt_io.Checkpoint:
        path = Path(self.checkpoint.value)
        if path not in self._cache:
            self._cache[path] = ckpt_io.load(path, device=detect_device())
        return self._cache[path]

    def settings(self) -> sample.SampleSettings:
        return sample.SampleSettings(
            max_new_tokens=self.max_new_tokens.value, temperature=self.temperature.value,
            top_k=self.top_k.value or None, top_p=self.top_p.value if self.top_p.value < 1.0 else None,
            do_sample=self.do_sample.value, seed=None if self.seed.value < 0 else self.seed.value)

    def generate(self) -> str:
        """Stream a sample into the panel; return the full text."""
        self.button.disabled = True
        self.status.value = "generating…"
        try:
            ck = self._load()
            text = self.prompt.value
            for piece in sample.stream(ck, self.prompt.value, self.settings()):
                text += piece
                self.text.value = _as_html(text)
            self.status.value = f"done: {len(ck.tokenizer.encode_ordinary(text)):,} tokens"
            self.show_next_token(ck, text)
            return text
        except (ValueError, OSError) as exc:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return ""
        finally:
            self.button.disabled = False

    def show_next_token(self, ck: ckpt_io.Checkpoint, context: str) -> None:
        from .plots import _plt, figure_png, next_token_bars

        plt = _plt()
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        next_token_bars(ax, sample.next_token_probs(ck, context, k=10, temperature=self.temperature.value), context)
        fig.tight_layout()
        self.bars.value = figure_png(fig)
        plt.close(fig)


def _as_html(text: str) -> str:
    return "<div class='plotgpt-text' style='white-space: pre-wrap; font-family: serif'>" + html.escape(text) + "</div>"
