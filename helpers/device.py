"""Device and precision detection, seeding, and the version report every notebook prints first.

A beginner passes no flags: cuda -> mps -> cpu, bf16 autocast where the hardware has it,
fp16 + GradScaler only on GPUs without bf16. Taught in notebook 04 (AMP).
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import random

import numpy as np
import torch


def detect_device(requested: str | None = None) -> str:
    """'cuda' if a GPU is there, else 'mps' on Apple silicon, else 'cpu' (or what was asked for)."""
    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


# the /proc/cpuinfo flags of CPUs that compute bf16 in hardware, and how results name them
_BF16_UNITS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "bf16": "Arm BF16"}


def _cpu_info() -> tuple[str | None, set[str]]:
    """(model name, feature flags) of the first processor in /proc/cpuinfo; (None, empty) without it."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name":
                    name = value.strip()
                elif key in ("flags", "features"):
                    flags.update(value.split())
                    break
    except OSError:
        pass
    return name, flags


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (x86 AVX512-BF16 / AMX, Arm BF16).

    Without it, bf16 autocast is emulated and slower than plain fp32.
    """
    return bool(_cpu_info()[1] & _BF16_UNITS.keys())


def cpu_name() -> str:
    """The processor's model name and its bf16 units, as benchmark results should name it: the same
    `x86_64` covers a Zen 5 (bf16 peak ~800 GFLOP/s on 2 cores) and a Xeon with AMX (~2,200)."""
    name, flags = _cpu_info()
    units = [unit for flag, unit in _BF16_UNITS.items() if flag in flags]
    return (name or platform.processor() or platform.machine()) + (f" ({', '.join(units)})" if units else "")


def pick_dtype(device: str, requested: str = "auto") -> torch.dtype:
    """The compute dtype for autocast.

    GPU: bfloat16 where supported (no loss scaling needed), else float16 (+ GradScaler).
    CPU: bfloat16 where the processor does bf16 in hardware - measured twice the tokens/s of
    fp32 on 2 Zen 4 cores for the cpu preset, at the same plots-bench bits per byte for the same
    minutes (bench/LOG.md) - else float32. Apple MPS: float32.
    """
    if requested != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


@functools.lru_cache(maxsize=None)  # it runs the compiler once to ask; the answer holds for the process
def compile_problem(device: str) -> str | None:
    """Why `torch.compile` cannot work here, in one line, or None where it can.

    Inductor writes kernels and builds them: C++ with the system compiler on a CPU, Triton on a
    GPU. A laptop without a compiler would otherwise fail at the first training step, after the
    data and model were loaded; asked first, training goes on eagerly instead, only slower.
    """
    kind = device.split(":")[0]
    if kind == "mps":
        return "torch.compile does not support Apple's MPS backend well yet"
    if kind == "cuda":
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return "Triton is missing (pip install triton; on Windows, triton-windows)"
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # a torch that moved it: let torch.compile itself report any problem
        return None
    try:
        get_cpp_compiler()
    except Exception:  # noqa: BLE001 - whatever the reason, there is no compiler inductor can use
        return ("no C++ compiler for it (install g++ or clang; on macOS `xcode-select --install`, "
                "on Windows Visual Studio's C++ build tools)")
    return None


def maybe_compile(model: torch.nn.Module, device: str, log=print) -> torch.nn.Module:
    """The model to run, compiled where compiling can work (otherwise as it is, with a one-line note).

    On a CPU each transformer block is compiled in place ("regional compilation"): the blocks share
    their code and shapes, so one graph is built and reused by every layer. The loss is compiled on
    its own (one fused kernel for its backward); the embedding and the output layer stay eager. Measured on 2 Xeon cores (AMX) for the `cpu` preset: the same
    step time as compiling the whole model (103 against 104 ms) for 18 instead of 31 s of compiling
    from a cold cache, seconds a 10-minute budget keeps for training. On a GPU the whole model is
    compiled (the measured `gpu-124m` path).
    """
    why = compile_problem(device)
    if why is not None:
        log(f"note: training without torch.compile: {why}; it works, only slower")
        return model
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if device.split(":")[0] == "cpu" and blocks is not None:
        for block in blocks:
            block.compile()
        if isinstance(getattr(model, "loss", None), torch.nn.Module):
            model.loss.compile()
        return model
    return torch.compile(model)


def autocast(device: str, dtype: torch.dtype):
    """An autocast context, or a no-op where it would do nothing (float32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    PyTorch's CPU tensors come straight from malloc, and glibc serves every block over 32 MB
    (a 768 x 50k logits tensor is 150 MB) with a fresh mmap and returns it on free: each training
    step then page-faults and zero-fills hundreds of MB. With mmap off and trimming off, the heap
    keeps those pages and the next step reuses them - measured 1.6x the tokens/s of a 4 x 128 model
    with GPT-2's vocabulary on 2 cores (see `plotgpt bench`). Process-wide, Linux/glibc only; the
    price is that the process keeps its peak memory until it exits. Returns whether it applied.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _MALLOC_TUNED
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # from malloc.h
        _MALLOC_TUNED = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        pass
    return _MALLOC_TUNED


_MALLOC_TUNED = False


def seed_everything(seed: int) -> None:
    """One seeding helper for python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    """Package versions and the device, as the first cell of every notebook prints them."""
    import tiktoken

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "?",
        "device": detect_device(),
        "threads": str(torch.get_num_threads()),
    }
    if info["device"] == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_versions() -> None:
    print("  ".join(f"{k}={v}" for k, v in versions().items()))


def cpu_threads() -> int:
    """Threads torch uses; honours OMP_NUM_THREADS like torch itself."""
    return int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
