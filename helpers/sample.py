"""Prompts -> plots: the one generation function that the CLI, the widgets and the notebooks call.

Taught in notebook 06. Every training document starts with <|endoftext|>, so a prompt is encoded
as that token followed by the prompt text: "start a new plot that begins like this".
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Iterator

import torch

from .checkpoint import Checkpoint


@dataclass(frozen=True)
class SampleSettings:
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = None
    do_sample: bool = True
    repetition_penalty: float = 1.0
    seed: int | None = None

    def kwargs(self) -> dict:
        return dict(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, do_sample=self.do_sample,
                    repetition_penalty=self.repetition_penalty, seed=self.seed)


def _prompt_ids(ckpt: Checkpoint, prompt: str, device) -> torch.Tensor:
    enc = ckpt.tokenizer
    ids = [enc.eot_token, *enc.encode_ordinary(prompt)]
    ids = ids[-ckpt.config.block_size:]
    return torch.tensor([ids], dtype=torch.long, device=device)


def generate(ckpt: Checkpoint, prompts: list[str] | str = "", num_samples: int = 1,
             settings: SampleSettings = SampleSettings()) -> list[str]:
    """Return num_samples texts per prompt (prompt included), stopping at <|endoftext|>."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts) or [""]
    model, enc = ckpt.model, ckpt.tokenizer
    device = next(model.parameters()).device
    texts = []
    for p_i, prompt in enumerate(prompts):
        idx = _prompt_ids(ckpt, prompt, device).expand(num_samples, -1)
        kw = settings.kwargs()
        if kw["seed"] is not None:
            kw["seed"] += p_i  # different prompts, different streams; reproducible all the same
        out = model.generate(idx, settings.max_new_tokens, eos_token=enc.eot_token, n_valid=enc.n_vocab, **kw)
        for row in out[:, idx.size(1):].tolist():
            if enc.eot_token in row:
                row = row[:row.index(enc.eot_token)]
            texts.append(prompt + enc.decode(row))
    return texts


def stream(ckpt: Checkpoint, prompt: str = "", settings: SampleSettings = SampleSettings()) -> Iterator[str]:
    """Yield text pieces as they are generated (for widgets and live terminals)."""
    model, enc = ckpt.model, ckpt.tokenizer
    device = next(model.parameters()).device
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a token may end mid-character
    for nxt in model.generate_stream(_prompt_ids(ckpt, prompt, device), settings.max_new_tokens,
                                     eos_token=enc.eot_token, n_valid=enc.n_vocab, **settings.kwargs()):
        token = int(nxt[0])
        if token == enc.eot_token:
            break
        piece = decoder.decode(enc.decode_single_token_bytes(token))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


@torch.no_grad()
def next_token_probs(ckpt: Checkpoint, context: str, k: int = 10, temperature: float = 1.0) -> list[tuple[str, float]]:
    """The k most likely next tokens after `context`, with their probabilities (for the bar chart)."""
    model, enc = ckpt.model, ckpt.tokenizer
    was_training = model.training
    model.eval()
    logits, _ = model(_prompt_ids(ckpt, context, next(model.parameters()).device))
    model.train(was_training)
    probs = torch.softmax(logits[0, -1, :enc.n_vocab].float() / temperature, dim=-1)
    top = torch.topk(probs, k)
    return [(enc.decode_single_token_bytes(int(i)).decode("utf-8", "replace"), float(p))
            for p, i in zip(top.values, top.indices)]
