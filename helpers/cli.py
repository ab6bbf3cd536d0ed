"""`plotgpt`: prepare | train | finetune | generate | evaluate | download.

Every subcommand has sensible defaults, so `plotgpt prepare data/sample/plots.txt && plotgpt train
&& plotgpt generate` just works. Bad input ends with one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from . import config
from . import paths

EXIT_ERROR = 2


# ---- argument helpers --------------------------------------------------------------------------
def _add_overrides(p: argparse.ArgumentParser, model: bool = True) -> None:
    """One flag per config field (--n-layer, --lr, ...), defaulting to the preset's value."""
    g = p.add_argument_group("overrides (default: the preset's value)")
    classes = (config.ModelConfig, config.TrainConfig) if model else (config.TrainConfig,)
    for cls in classes:
        for f in fields(cls):
            if f.name in ("vocab_size", "max_iters", "max_minutes"):
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.type in ("bool", bool):
                g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
            else:
                typ = {"int": int, "float": float, "str": str}.get(str(f.type), str)
                g.add_argument(flag, dest=f.name, type=typ, default=None, metavar=f.name.upper())


def _overrides(args: argparse.Namespace, names) -> dict:
    return {k: getattr(args, k, None) for k in names if getattr(args, k, None) is not None}


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    found = paths.newest_prepared()
    if found is None:
        raise ValueError(f"no prepared data under {paths.data_root()}; run first: plotgpt prepare data/sample/plots.txt")
    return found


def _checkpoint_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    run = paths.newest_run()
    if run is None:
        raise ValueError(f"no checkpoint under {paths.checkpoints_root()}; train one first: plotgpt train")
    return run


def _log(msg: str) -> None:
    print(msg, flush=True)


# ---- subcommands -------------------------------------------------------------------------------
def cmd_prepare(args) -> int:
    from . import dataset, prepare

    encoding = None
    if args.tokenizer_from:
        encoding = _tokenizer_from(Path(args.tokenizer_from))
    vocab_size = args.vocab_size
    if vocab_size is None:
        vocab_size = config.DEFAULT_VOCAB_SIZE
        if args.tokenizer == "bpe" and encoding is None and not args.quiet:
            _log(f"vocabulary {vocab_size:,} (the default: the fewest made-up words on the sample corpus); "
                 "--vocab-size changes it")
    out = prepare.prepare(args.input, args.out, fmt=args.format, separator=args.separator, column=args.column,
                          field=args.field, title=args.title, tokenizer=args.tokenizer, vocab_size=vocab_size,
                          val_fraction=args.val_fraction, encoding=encoding, progress=not args.quiet, log=_log)
    data = dataset.load_data(out)
    for split in ("train", "val"):
        s = dataset.token_stats(data, split, top=8)
        print(f"{split:>5}: {s['documents']:,} documents, {s['characters']:,} characters, {s['bytes']:,} bytes, "
              f"{s['tokens']:,} tokens, {s['bytes_per_token']:.2f} bytes/token, {s['distinct_tokens']:,} distinct tokens")
    s = dataset.token_stats(data, "train", top=8)
    print("most frequent: " + ", ".join(f"{t} {c:,}" for t, c in s["most_frequent"]))
    print("least frequent: " + ", ".join(f"{t} {c:,}" for t, c in s["least_frequent"]))
    print(f"tokenizer: {data.tokenizer.name} ({data.vocab_size:,} ids, fingerprint {data.fingerprint})")
    print(f"wrote {out}/train.bin, val.bin, meta.json, tokenizer.json\nnext: plotgpt train --data {out}")
    return 0


def _tokenizer_from(path: Path):
    """A tokenizer from a tokenizer.json, a prepared data folder or a checkpoint."""
    from . import checkpoint, tokenizer

    if path.is_dir() and (path / "tokenizer.json").exists():
        return tokenizer.load(path / "tokenizer.json")
    if path.suffix == ".json":
        return tokenizer.load(path)
    return tokenizer.from_dict(checkpoint.read_info(checkpoint.resolve(path))["tokenizer"])


def cmd_train(args) -> int:
    from . import checkpoint
    from .device import detect_device
    from .run import RunFolder

    data_dir = _data_dir(args.data)
    out = Path(args.out) if args.out else paths.checkpoints_root() / f"{data_dir.name}-{args.preset}"
    last = RunFolder(out).newest_resumable() if args.resume else None
    if last is not None:  # the run's own settings, with the flags given now applied (a new shape is refused)
        meta = checkpoint.read_info(last)
        saved_model = config.from_saved(config.ModelConfig, meta["model_config"], last)
        model_cfg = replace(saved_model, **_overrides(args, config.MODEL_FIELDS))
        train_cfg = replace(config.from_saved(config.TrainConfig, meta["info"]["train_config"], last),
                            **_overrides(args, config.TRAIN_FIELDS))
    else:
        preset = config.resolve_preset(args.preset, detect_device(args.device), args.dtype or "auto")
        if preset != args.preset:
            _log(f"preset {args.preset} -> {preset}: this run trains in float32 on a CPU (bf16 needs AVX512-BF16, "
                 f"AMX or Arm BF16), where the smaller {preset} shape learns more in the same minutes")
        model_cfg, train_cfg = config.get_preset(preset, **_overrides(args, config.MODEL_FIELDS | config.TRAIN_FIELDS))
    return _run_training(data_dir, model_cfg, train_cfg, out, args, resume=args.resume)


# A fresh, gentler schedule for fine-tuning (chapter 5 measures it): a tenth of the original peak lr, a
# short warmup, no average of the weights, and evaluations often enough that patience stops it once a
# small corpus starts to be learned by heart (best.safetensors keeps the best step).
FINETUNE = {"warmup_iters": 10, "max_iters": 500, "eval_interval": 20, "patience": 3, "ema_decay": 0.0}
FINETUNE_LR_SCALE = 0.1


def cmd_finetune(args) -> int:
    from . import checkpoint

    ck = checkpoint.load(_checkpoint_path(args.checkpoint))
    data_dir = _data_dir(args.data)
    saved = ck.info.get("train_config")
    base = config.from_saved(config.TrainConfig, saved, ck.path) if saved else config.TrainConfig()
    train_cfg = replace(base, lr=base.lr * FINETUNE_LR_SCALE, **FINETUNE)
    train_cfg = replace(train_cfg, **_overrides(args, config.TRAIN_FIELDS))
    run_name = ck.path.parent.name if ck.path.parent != Path(".") else ck.path.stem
    out = Path(args.out) if args.out else paths.checkpoints_root() / f"{run_name}-ft-{data_dir.name}"
    return _run_training(data_dir, None, train_cfg, out, args, resume=args.resume, init_from=ck)


def _run_training(data_dir, model_cfg, train_cfg, out, args, resume=False, init_from=None) -> int:
    from . import dataset, distributed, plots, prepare, train

    if args.max_iters is not None:
        train_cfg = replace(train_cfg, max_iters=args.max_iters)
    if args.max_minutes is not None:
        # A budget given alone is the whole budget: the preset's step count would otherwise end a fast
        # machine's run early (the cosine follows whichever of steps or time is further along).
        train_cfg = replace(train_cfg, max_minutes=args.max_minutes,
                            max_iters=config.UNTIL_BUDGET if args.max_iters is None else train_cfg.max_iters)
    data = dataset.load_data(data_dir)
    prepare.check_writable(Path(out))
    t0 = time.time()
    result = train.train(data, model_cfg, train_cfg, out, resume=resume, overwrite=args.overwrite,
                         init_from=init_from, device=args.device, progress=not args.quiet, log=_log)
    if distributed.launched_rank() != 0:  # torchrun: rank 0 reports for everyone
        return 0
    png = plots.save_loss_plot(result.history, Path(out) / "loss.png", title=f"{Path(out).name}")
    best = Path(out) / "best.safetensors"
    print(f"done in {time.time() - t0:.0f} s: {result.stop_reason} at step {result.step}\n"
          f"  best checkpoint: {best}\n  last checkpoint: {result.last_checkpoint}\n"
          f"  loss curve:      {png}\n  metrics log:     {Path(out) / 'metrics.jsonl'}\n"
          f"next: plotgpt generate --checkpoint {best}")
    return 0


def _settings(args):
    from .sample import SampleSettings

    return SampleSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                          top_k=args.top_k or None, top_p=args.top_p, do_sample=not args.greedy,
                          repetition_penalty=args.repetition_penalty, seed=args.seed)


def cmd_generate(args) -> int:
    from . import checkpoint, sample
    from .device import detect_device

    ck = checkpoint.load(_checkpoint_path(args.checkpoint), device=detect_device(args.device))
    prompts = args.prompt or [""]
    texts = sample.generate(ck, prompts, args.num_samples, _settings(args))
    for i, text in enumerate(texts):
        prompt = prompts[i // args.num_samples]
        print(f"--- sample {i % args.num_samples + 1}" + (f" for {prompt!r}" if prompt else "") + " ---")
        print(text.strip() + "\n")
    if args.out:
        from .atomic import atomic_write_text

        atomic_write_text(args.out, "\n===\n".join(t.strip() for t in texts) + "\n")
        print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from . import checkpoint, dataset, evaluate, sample
    from .device import detect_device

    device = detect_device(args.device)
    ck = checkpoint.load(_checkpoint_path(args.checkpoint), device=device)
    data_arg = args.data or ck.info.get("data", {}).get("path")
    data = dataset.load_data(_data_dir(data_arg if data_arg and Path(data_arg).exists() else None))
    texts = sample.generate(ck, args.prompt or [""], args.num_samples, _settings(args))
    report = evaluate.report(ck, data, texts, device)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"checkpoint {ck.path} on {data.path} (val: {report['val_tokens']:,} tokens)\n"
          f"  val loss        {report['val_loss']:.4f} nats/token\n"
          f"  val bits/byte   {report['val_bpb']:.4f}\n"
          f"  repetition      {report['repetition_4gram']:.1%} of word 4-grams repeat within a sample "
          f"({len(texts)} samples)\n"
          f"  novelty         {report['copied_8gram_share']:.1%} of word 8-grams appear verbatim in the training text\n"
          f"  longest copy    {report['longest_copied_words']} words: {report['longest_copied_text'][:200]!r}\n"
          f"  made-up words   {report['made_up_word_rate']:.1%} of {report['lowercase_words']:,} lowercase words never "
          "occur in the training text" + (f", e.g. {', '.join(report['made_up_examples'][:8])}"
                                          if report["made_up_examples"] else ""))
    return 0


def cmd_stats(args) -> int:
    from . import corpusstats

    text, figures = corpusstats.describe([Path(p) for p in args.inputs], against=args.against and Path(args.against),
                                         fmt=args.format, separator=args.separator)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(text)
    return 0


def cmd_download(args) -> int:
    from . import download

    out = Path(args.out) if args.out else paths.root() / "data" / "downloads"
    path = download.fetch_dataset(args.dataset, out, url=args.url, sha256=args.sha256, progress=not args.quiet,
                                  force=args.force)
    print(f"{path} ({path.stat().st_size:,} bytes, sha256 {paths.sha256_file(path)})\n"
          f"next: plotgpt prepare {path} --format cmu")
    return 0


# ---- parser --------------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    import torch

    from . import bench
    from .device import detect_device

    if args.minutes <= 0 or (args.threads is not None and args.threads < 1):
        raise ValueError("--minutes must be positive and --threads at least 1")
    gpu = detect_device().startswith("cuda")
    if args.threads or not gpu:
        torch.set_num_threads(args.threads or 2)
    # CPUs with and without bf16 hardware get their own result files (and presets): cpu / cpu-fp32
    name = args.name or ("gpu" if gpu else config.resolve_preset("cpu"))
    bench.run(Path(args.out), name, do_throughput=args.only != "quality", do_quality=args.only != "throughput",
              minutes=args.minutes, steps=args.steps, log=_log)
    print(f"next: open {Path(args.out) / (name + '.md')}, or rebuild the book (make book) to see it on the "
          "Performance page")
    return 0


def _training_args(sp, model: bool) -> None:
    sp.add_argument("--data", help="prepared data folder (default: the newest under data/prepared)")
    sp.add_argument("--max-iters", type=int, help="optimizer steps")
    sp.add_argument("--max-minutes", type=float,
                    help="budget of training time (evaluations not counted); the schedule fits itself to it, "
                         "and without --max-iters only the budget ends the run")
    sp.add_argument("--out", help="run folder for checkpoints and logs")
    sp.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    sp.add_argument("--overwrite", action="store_true", help="replace a finished run in --out instead of refusing")
    sp.add_argument("--device", help="cuda, mps or cpu (default: detected)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_overrides(sp, model=model)


def _sampling_args(sp, num_samples: int) -> None:
    from .sample import SampleSettings

    sp.add_argument("--checkpoint", help="checkpoint file or run folder (default: the newest run's best)")
    sp.add_argument("--prompt", action="append", help="how the text begins (repeat for several prompts)")
    sp.add_argument("--num-samples", type=int, default=num_samples, help="samples per prompt (default %(default)s)")
    d = SampleSettings()  # the defaults live there, shared with the notebooks and the panel
    sp.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="default %(default)s")
    sp.add_argument("--temperature", type=float, default=d.temperature, help="default %(default)s")
    sp.add_argument("--top-k", type=int, default=d.top_k or 0, help="0 disables (default %(default)s)")
    sp.add_argument("--top-p", type=float, default=d.top_p, help="nucleus sampling, e.g. 0.9 (default %(default)s)")
    sp.add_argument("--repetition-penalty", type=float, default=1.0, help="e.g. 1.2 (default off)")
    sp.add_argument("--greedy", action="store_true", help="always take the most likely token")
    sp.add_argument("--seed", type=int, help="for reproducible samples")
    sp.add_argument("--device", help="cuda, mps or cpu (default: detected)")


def _add_prepare(sub) -> None:
    from .corpus import DEFAULT_SEPARATOR, FORMATS

    sp = sub.add_parser("prepare", help="corpus -> tokenizer -> train.bin/val.bin memmaps")
    sp.add_argument("input", help="a text file, a folder of .txt files, a CSV, a JSONL file, or the CMU archive")
    sp.add_argument("--format", choices=FORMATS, help="default: guessed from the name")
    sp.add_argument("--separator", default=DEFAULT_SEPARATOR,
                    help="document separator line for txt/dir (default %(default)s; also: blank, %%, <|endoftext|>)")
    sp.add_argument("--column", default="Plot", help="CSV column holding the text (default %(default)s)")
    sp.add_argument("--field", default="text", help="JSONL field holding the text (default %(default)s)")
    sp.add_argument("--title", help="CSV column / JSONL field with a title to keep as a 'Title:' line "
                                    "(CSV default: Title, when present)")
    sp.add_argument("--tokenizer", choices=("bpe", "gpt2"), default="bpe",
                    help="bpe: train a domain BPE here (offline); gpt2: tiktoken's GPT-2 BPE (default %(default)s)")
    sp.add_argument("--vocab-size", type=int,
                    help=f"domain BPE vocabulary (default {config.DEFAULT_VOCAB_SIZE}, on every machine)")
    sp.add_argument("--tokenizer-from", metavar="PATH",
                    help="reuse a tokenizer: a tokenizer.json, a prepared folder or a checkpoint (for fine-tuning)")
    sp.add_argument("--val-fraction", type=float, default=0.1, help="last share of documents for val (default 0.1)")
    sp.add_argument("--out", help="output folder (default: data/prepared/<corpus name>)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_prepare)


def _add_training(sub) -> None:
    sp = sub.add_parser("train", help="train a GPT on prepared data")
    sp.add_argument("--preset", default="cpu", choices=list(config.PRESETS),
                    help="; ".join(f"{k}: {v.description}" for k, v in config.PRESETS.items()) + " (default cpu)")
    _training_args(sp, model=True)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("finetune", help="continue training a checkpoint on another corpus (fresh schedule)")
    sp.add_argument("--checkpoint", help="checkpoint file or run folder (default: the newest run)")
    _training_args(sp, model=False)
    sp.set_defaults(func=cmd_finetune)


def _add_sampling(sub) -> None:
    sp = sub.add_parser("generate", help="write new plots with a trained model")
    _sampling_args(sp, 3)
    sp.add_argument("--out", help="also write the samples to this file (=== between them)")
    sp.set_defaults(func=cmd_generate)

    sp = sub.add_parser("evaluate", help="val loss, bits per byte, repetition and novelty of samples")
    _sampling_args(sp, 5)
    sp.add_argument("--data", help="prepared data (default: the checkpoint's own)")
    sp.add_argument("--json", action="store_true", help="print a JSON report")
    sp.set_defaults(func=cmd_evaluate)


def _add_tools(sub) -> None:
    from .corpus import DEFAULT_SEPARATOR, FORMATS

    sp = sub.add_parser("bench", help="throughput against baseline loops, and plots-bench v1 quality")
    sp.add_argument("--only", choices=("throughput", "quality"), help="run one part (default: both)")
    sp.add_argument("--minutes", type=float, default=10.0, help="quality training budget (default %(default)s)")
    sp.add_argument("--threads", type=int, help="CPU threads (default 2 on a CPU, as plots-bench v1 specifies)")
    sp.add_argument("--steps", type=int, help="optimizer steps per throughput measurement (default: per config)")
    sp.add_argument("--name", help="result file name (default: cpu or gpu)")
    sp.add_argument("--out", default=str(paths.PROJECT / "bench" / "results"), help="default bench/results")
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("stats", help="corpus statistics: lengths, titles, openings, shared 8-grams, vocabulary")
    sp.add_argument("inputs", nargs="+", help="one or more corpora (any format prepare reads)")
    sp.add_argument("--against", metavar="CORPUS",
                    help="also a column for this corpus, and the share of each corpus's 8-grams found in it")
    sp.add_argument("--format", choices=FORMATS, help="default: guessed from the name")
    sp.add_argument("--separator", default=DEFAULT_SEPARATOR, help="document separator line (default %(default)s)")
    sp.add_argument("--json", action="store_true", help="print the figures as JSON")
    sp.set_defaults(func=cmd_stats)

    sp = sub.add_parser("download", help="fetch a public corpus (cmu-plots)")
    sp.add_argument("dataset", choices=["cmu-plots"])
    sp.add_argument("--url", help="download from this URL instead (a mirror)")
    sp.add_argument("--sha256", help="expected sha256 of the file")
    sp.add_argument("--out", help="folder (default: data/downloads)")
    sp.add_argument("--force", action="store_true", help="download again even if present")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_download)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plotgpt", description="Train a small GPT on one narrow domain (movie plots).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_prepare, _add_training, _add_sampling, _add_tools):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("plotgpt: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, FloatingPointError) as exc:
        # Every error we raise on purpose is one of these, with a message that says what to do.
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"plotgpt {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
