"""GPT-2 as in minGPT / nanoGPT: pre-LN blocks, causal self-attention, GELU MLP, learned
positions, tied input/output embeddings. Taught in notebooks 02 (attention) and 03 (blocks).
Two later ideas are options of ModelConfig, both in the cpu and cpu-fp32 presets: rotary positions
(`pos_emb="rope"`) and the squared-ReLU MLP (`mlp="relu2"`). The CPU kernels it runs on (cheap
dropout masks, a written-out backward for relu^2 and the loss) are in helpers/kernels.py.

Shapes: B = batch, T = time (tokens), C = n_embd, nh = n_head, hs = C // nh, V = vocab.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn as nn
from torch.nn import functional as F

from .config import ModelConfig
from .kernels import Dropout, ReLU2, TokenLoss


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, as in GPT-NeoX): position t turns each pair of
    channels (i, i + hs/2) of q and k by the angle t * base^(-2i/hs). A dot product of a rotated q
    and k then depends only on how far apart the two tokens are, not on where they are: there is
    no position table to learn, and a small model learns faster (plots-bench, bench/LOG.md).
    """

    def __init__(self, head_size: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T_max, hs/2)
        # Not saved in checkpoints (persistent=False): they follow from the config.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, nh, T, hs) -> same
        T = x.size(-2)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)  # (T, hs/2), in x's (autocast) dtype
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.rotary = Rotary(cfg.n_embd // cfg.n_head, cfg.block_size) if cfg.pos_emb == "rope" else None
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = Dropout(cfg.dropout)
        self.resid_dropout = Dropout(cfg.dropout)
        self.kernel = "auto"  # auto | sdpa | explicit; see use_explicit
        # (T, T) additive causal mask for the explicit path: 0 on and below the diagonal, -inf above.
        # A buffer, not built per call: inside a compiled graph a mask made from indices becomes int64
        # comparisons in every softmax element (9.1 ms of a ~140 ms `cpu` step on 2 Xeon cores), a mask
        # loaded from memory takes half that (the Performance page). Not saved: it follows from the config.
        self.register_buffer("causal", torch.full((cfg.block_size, cfg.block_size), float("-inf")).triu(1),
                             persistent=False)

    def use_explicit(self, q: torch.Tensor) -> bool:
        """Measured on a Zen 4 CPU (the Performance page): in bf16, PyTorch's fused CPU attention
        is 2-4x slower to train than the plain matmul-softmax-matmul below, and in fp32 its own
        dropout costs more than the cheap mask (6 % of the step); otherwise, and on GPUs, the
        fused kernel (flash / memory-efficient) wins."""
        if self.kernel != "auto":
            return self.kernel == "explicit"
        return q.device.type == "cpu" and (q.dtype == torch.bfloat16 or (self.training and self.dropout > 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs): each head attends in its own subspace
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.rotary is not None:  # positions enter here, as rotations of q and k
            q, k = self.rotary(q), self.rotary(k)
        if self.use_explicit(q):
            # softmax(q k^T / sqrt(hs) + causal mask) v, written out (as minGPT did). The scale goes on
            # q (half the elements of the scores) and the mask is added, not filled in: an addition's
            # backward is free, a fill's is one more pass over the (B, nh, T, T) scores (the Performance
            # page: 4.5 instead of 5.1 ms per layer at the cpu preset's shape, forward and backward).
            att = (q * (1.0 / math.sqrt(k.size(-1)))) @ k.transpose(-2, -1)  # (B, nh, T, T)
            att = att + self.causal[:T, :T].to(att.dtype)  # -inf above the diagonal: a token sees only its past
            y = self.attn_dropout(F.softmax(att, dim=-1)) @ v  # (B, nh, T, hs)
        else:
            # the same, fused: flash / memory-efficient kernels where available
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        # GPT-2's GELU, or relu(x)^2: cheaper, and it learned faster in the speedruns that tried it
        self.act = nn.GELU(approximate="tanh") if cfg.mlp == "gelu" else ReLU2()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN: normalise before each sub-layer, add its output to the residual stream."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            # rotary positions live in the attention; otherwise GPT-2's learned table
            **({} if cfg.pos_emb == "rope" else {"wpe": nn.Embedding(cfg.block_size, cfg.n_embd)}),
            drop=Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
            ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.loss = TokenLoss()  # no parameters: nothing of it in a checkpoint
        # Weight tying: reading and writing tokens share one matrix (fewer parameters, better small models).
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters counted once (tied weights once); non-embedding drops token and position tables."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(t.weight.numel() for k, t in self.transformer.items() if k in ("wte", "wpe"))
        return n

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> the residual stream's input (B, T, C)."""
        x = self.transformer.wte(idx)  # (B, T, C)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(idx.shape[1], device=idx.device))  # + (T, C), broadcast over B
        return self.transformer.drop(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.embed(idx)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            # Inference: only the last position's logits are needed, saving a (T x V) matmul.
            return self.lm_head(x[:, [-1], :]), None  # (B, 1, V)
        logits = self.lm_head(x)  # (B, T, V)
        loss = self.loss(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate_stream(self, idx: torch.Tensor, max_new_tokens: int = 200, *, temperature: float = 1.0,
                        top_k: int | None = None, top_p: float | None = None, do_sample: bool = True,
                        repetition_penalty: float = 1.0, seed: int | None = None,
                        eos_token: int | None = None, n_valid: int | None = None) -> Iterator[torch.Tensor]:
        """Yield the next token (shape (B,)) one at a time, for UIs that show text as it comes.

        Greedy when `do_sample` is False. Stops early once every row has produced `eos_token`.
        `n_valid`: the tokenizer's real vocabulary; ids above it (padding of the embedding
        table to a multiple of 64) are never produced.
        """
        if temperature <= 0 and do_sample:
            raise ValueError("temperature must be positive (use do_sample=False for greedy decoding)")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be positive")
        gen = None
        if seed is not None:
            gen = torch.Generator(device=idx.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        try:
            for _ in range(max_new_tokens):
                ctx = idx[:, -self.config.block_size:]  # crop to the context the model knows
                logits, _ = self(ctx)
                logits = logits[:, -1, :].float()  # (B, V)
                if n_valid is not None:
                    logits[:, n_valid:] = float("-inf")
                if repetition_penalty != 1.0:
                    # CTRL-style: make tokens already in the context less likely (divide positive
                    # logits, multiply negative ones) - the cure for "the vampire ... the vampire".
                    seen = torch.gather(logits, 1, ctx)
                    seen = torch.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty)
                    logits.scatter_(1, ctx, seen)
                if do_sample:
                    nxt = self._sample(logits / temperature, top_k, top_p, gen)
                else:
                    nxt = logits.argmax(dim=-1)
                if eos_token is not None:
                    nxt = torch.where(done, torch.full_like(nxt, eos_token), nxt)
                idx = torch.cat([idx, nxt[:, None]], dim=1)
                yield nxt
                if eos_token is not None:
                    done |= nxt == eos_token
                    if bool(done.all()):
                        break
        finally:
            self.train(was_training)

    @staticmethod
    def _sample(logits: torch.Tensor, top_k: int | None, top_p: float | None, gen) -> torch.Tensor:
        if top_k is not None and top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits, dim=-1)
        if top_p is not None and top_p < 1.0:
            # Nucleus: keep the smallest set of tokens whose probability adds up to top_p.
            sorted_p, order = torch.sort(probs, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > top_p  # mass before this token already exceeds p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter_(1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int = 200, **kwargs) -> torch.Tensor:
        """Prompt (B, T) -> prompt plus up to max_new_tokens new tokens (B, T + n). See generate_stream."""
        new = list(self.generate_stream(idx, max_new_tokens, **kwargs))
        return torch.cat([idx, torch.stack(new, dim=1)], dim=1) if new else idx
