"""The plotgpt CLI end to end, on corpora the other tests never saw, and every bad input."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE, write
from helpers import cli


def run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def ship_logs(n=60, seed=0) -> list[str]:
    """A made-up domain: ship's log entries (nothing like movie plots)."""
    rng = random.Random(seed)
    ships, seas = ["Albatross", "Kestrel", "Marigold", "Northern Star"], ["Baltic", "Coral Sea", "Gulf", "North Sea"]
    events = ["sighted a whale", "repaired the mainsail", "lost a barrel overboard", "met a fishing fleet",
              "weathered a squall", "took on fresh water", "charted a new reef"]
    return [f"Log of the {rng.choice(ships)}, day {i}: sailing the {rng.choice(seas)}, the crew "
            + ", then ".join(rng.sample(events, 3)) + f". Wind {rng.randint(3, 30)} knots." for i in range(n)]


def test_help_for_every_subcommand(cli_env):
    r = run(["--help"], cli_env)
    assert r.returncode == 0 and all(c in r.stdout for c in ("prepare", "train", "finetune", "generate",
                                                             "evaluate", "download"))
    for sub in ("prepare", "train", "finetune", "generate", "evaluate", "download"):
        r = run([sub, "--help"], cli_env)
        assert r.returncode == 0 and "usage: plotgpt " + sub in r.stdout
    r = run(["train", "--help"], cli_env)
    assert "--n-layer" in r.stdout and "--max-minutes" in r.stdout and "--resume" in r.stdout


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("plotgpt")
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "plotgpt" in r.stdout


def test_pipeline_on_an_unseen_corpus_with_a_custom_separator(tmp_path, cli_env):
    """prepare -> train -> generate -> evaluate -> finetune, all with default paths chained."""
    corpus = write(tmp_path / "logs.txt", "\n@@@\n".join(ship_logs(80)) + "\n")
    r = run(["prepare", str(corpus), "--separator", "@@@", "--vocab-size", "400", "--quiet"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "72 train, 8 val" in r.stdout and "bytes/token" in r.stdout and "most frequent" in r.stdout
    r = run(["train", "--preset", "smoke", "--max-iters", "30", "--quiet"], cli_env)
    assert r.returncode == 0, r.stderr
    root = Path(cli_env["PLOTGPT_ROOT"])
    run_dir = root / "checkpoints" / "logs-smoke"
    assert (run_dir / "best.safetensors").exists() and (run_dir / "loss.png").stat().st_size > 10_000
    r = run(["generate", "--prompt", "Log of the", "--prompt", "Wind", "--num-samples", "2", "--seed", "1",
             "--max-new-tokens", "30", "--out", str(tmp_path / "s.txt")], cli_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("--- sample") == 4 and "for 'Wind'" in r.stdout
    assert (tmp_path / "s.txt").read_text().count("===") == 3
    again = run(["generate", "--prompt", "Log of the", "--num-samples", "2", "--seed", "1", "--max-new-tokens", "30"],
                cli_env)
    assert again.stdout.split("--- sample 1 for 'Wind'")[0] == r.stdout.split("--- sample 1 for 'Wind'")[0]
    r = run(["evaluate", "--json", "--num-samples", "2", "--max-new-tokens", "40", "--seed", "0"], cli_env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["val_bpb"] > 0 and 0 <= rep["repetition_4gram"] <= 1 and 0 <= rep["copied_8gram_share"] <= 1
    assert 0 <= rep["made_up_word_rate"] <= 1 and rep["lowercase_words"] > 0
    assert all(w.islower() for w in rep["made_up_examples"])  # names are never judged
    # fine-tune on a second corpus encoded with the first one's tokenizer
    second = write(tmp_path / "more.txt", "\n@@@\n".join(ship_logs(30, seed=1)))
    r = run(["prepare", str(second), "--separator", "@@@", "--tokenizer-from", str(run_dir), "--quiet"], cli_env)
    assert r.returncode == 0, r.stderr
    r = run(["finetune", "--checkpoint", str(run_dir), "--data", str(root / "data/prepared/more"),
             "--max-iters", "10", "--quiet"], cli_env)
    assert r.returncode == 0, r.stderr
    assert (root / "checkpoints" / "logs-smoke-ft-more" / "best.safetensors").exists()
    # resume continues the run: 30 -> 40 steps
    r = run(["train", "--preset", "smoke", "--data", str(root / "data/prepared/logs"), "--resume",
             "--max-iters", "40", "--quiet"], cli_env)
    assert r.returncode == 0 and "resuming from" in r.stdout and "at step 40" in r.stdout, r.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "dir", "blank", "fortune", "eot"])
def test_prepare_every_format(tmp_path, fmt, capsys):
    docs = ship_logs(20)
    if fmt == "csv":
        src = write(tmp_path / "logs.csv", "Title,Plot\n" + "".join(f'Day {i},"{d}"\n' for i, d in enumerate(docs)))
        args = ["--column", "Plot"]
    elif fmt == "jsonl":
        src = write(tmp_path / "logs.jsonl", "".join(json.dumps({"body": d}) + "\n" for d in docs))
        args = ["--field", "body"]
    elif fmt == "dir":
        for i, d in enumerate(docs):
            write(tmp_path / "logs" / f"{i:03d}.txt", d)
        src, args = tmp_path / "logs", []
    else:
        sep = {"blank": "\n\n", "fortune": "\n%\n", "eot": "<|endoftext|>"}[fmt]
        src = write(tmp_path / "logs.txt", sep.join(docs))
        args = ["--separator", {"blank": "blank", "fortune": "%", "eot": "<|endoftext|>"}[fmt]]
    assert cli.main(["prepare", str(src), "--vocab-size", "300", "--out", str(tmp_path / "out"), "--quiet", *args]) == 0
    assert "18 train, 2 val" in capsys.readouterr().out
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["splits"]["train"]["documents"] == 18


def _bad_inputs(tmp_path: Path, tiny_run: Path, prepared: Path):
    notdir = write(tmp_path / "afile", "x")
    return {
        "empty file": (["prepare", str(write(tmp_path / "empty.txt", ""))], "is empty"),
        "binary file": (["prepare", str(write(tmp_path / "img.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8))],
                        "binary"),
        "non-UTF-8 file": (["prepare", str(write(tmp_path / "latin.txt", "caf\xe9 au lait".encode("latin-1")))],
                           "not valid UTF-8"),
        "one document": (["prepare", str(write(tmp_path / "one.txt", "just one document"))], "at least 2"),
        "unknown CSV column": (["prepare", str(write(tmp_path / "c.csv", "a,b\n1,2\n")), "--column", "Plot"],
                               "no column 'Plot'"),
        "unknown JSONL field": (["prepare", str(write(tmp_path / "j.jsonl", '{"a": 1}\n')), "--field", "text"],
                                "no field 'text'"),
        "vocabulary too large": (["prepare", str(SAMPLE), "--vocab-size", "70000"], "does not fit uint16"),
        "missing input": (["prepare", str(tmp_path / "nope.txt")], "does not exist"),
        "unwritable output": (["prepare", str(SAMPLE), "--out", str(notdir / "sub")], "cannot write to"),
        "corpus shorter than one block": (["train", "--data", str(_short_data(tmp_path)), "--preset", "smoke"],
                                          "fewer than one block"),
        "missing checkpoint": (["generate", "--checkpoint", str(tmp_path / "none.safetensors")], "no checkpoint at"),
        "corrupt checkpoint": (["generate", "--checkpoint", str(_corrupt(tmp_path, tiny_run))], "corrupt|truncated"),
        "tokenizer/checkpoint mismatch": (["evaluate", "--checkpoint", str(tiny_run), "--data",
                                           str(_other_data(tmp_path))], "tokenizer mismatch"),
        "no prepared data": (["train"], "no prepared data"),
        "ema decay out of range": (["train", "--data", str(prepared), "--preset", "smoke", "--ema-decay", "1"],
                                   "ema_decay=1.0 must be in"),
        "unprepared data folder": (["train", "--data", str(tmp_path)], "not prepared data"),
        "existing run": (["train", "--data", str(prepared), "--preset", "smoke", "--out", str(tiny_run)],
                         "already holds a run"),
    }


def _short_data(tmp_path):
    from helpers.prepare import prepare

    return prepare(write(tmp_path / "short.txt", "tiny\n===\ntoo"), tmp_path / "short", vocab_size=300,
                   progress=False, log=lambda *_: None)


def _other_data(tmp_path):
    from helpers.prepare import prepare

    return prepare(write(tmp_path / "other.txt", "\n===\n".join(ship_logs(20))), tmp_path / "other",
                   vocab_size=300, progress=False, log=lambda *_: None)


def _corrupt(tmp_path, run_dir):
    path = tmp_path / "corrupt.safetensors"
    data = (run_dir / "best.safetensors").read_bytes()
    path.write_bytes(data[: len(data) - 5000])
    return path


def test_bad_input_gets_one_clear_line_and_a_nonzero_exit(tmp_path, tiny_run, prepared, cli_env):
    before = {p: p.read_bytes() for p in tiny_run.iterdir() if p.is_file() and p.name != ".lock"}
    for case, (args, pattern) in _bad_inputs(tmp_path, tiny_run, prepared).items():
        r = run(args, cli_env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, f"{case}: exit {r.returncode}\n{r.stderr}"
        assert len(lines) == 1 and "Traceback" not in r.stderr, f"{case}: {r.stderr}"
        assert lines[0].startswith("plotgpt ") and __import__("re").search(pattern, lines[0]), f"{case}: {lines[0]}"
    # nothing already done was touched
    assert {p: p.read_bytes() for p in tiny_run.iterdir() if p.is_file() and p.name != ".lock"} == before
    assert not (Path(cli_env["PLOTGPT_ROOT"]) / "data" / "prepared" / "empty" / "train.bin").exists()


def test_cpu_preset_in_float32_trains_the_rotary_cpu_fp32_shape(tmp_path, cli_env):
    corpus = write(tmp_path / "logs.txt", "\n@@@\n".join(ship_logs(60, seed=3)) + "\n")
    prepared = tmp_path / "prep"
    assert run(["prepare", str(corpus), "--separator", "@@@", "--vocab-size", "300", "--out", str(prepared),
                "--quiet"], cli_env).returncode == 0
    out = tmp_path / "run"
    r = run(["train", "--data", str(prepared), "--preset", "cpu", "--dtype", "float32", "--n-layer", "1",
             "--n-embd", "32", "--n-head", "2", "--block-size", "32", "--max-iters", "3", "--eval-interval", "3",
             "--out", str(out), "--quiet"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "preset cpu -> cpu-fp32" in r.stdout + r.stderr
    from helpers import checkpoint
    from helpers.config import PRESETS

    ck = checkpoint.load(out)
    cfg = ck.config
    assert cfg.pos_emb == "rope" and not cfg.bias and cfg.n_layer == 1  # the preset's shape, the flags on top
    assert ck.info["train_config"]["weight_decay"] == PRESETS["cpu-fp32"].train.weight_decay \
        != PRESETS["cpu"].train.weight_decay


def test_without_a_cpp_compiler_compile_is_skipped_with_a_note_and_training_goes_on(prepared, tmp_path, cli_env):
    """Inductor builds CPU kernels with the system C++ compiler: on a laptop without one, --compile
    (or the cpu preset's compile) must not crash at the first step, after the data and model loaded."""
    env = dict(cli_env, CXX=str(tmp_path / "no-such-compiler"))  # the compiler torch.compile would use
    out = tmp_path / "run"
    r = run(["train", "--data", str(prepared), "--preset", "smoke", "--compile", "--max-iters", "4",
             "--eval-interval", "4", "--out", str(out), "--quiet"], env)
    assert r.returncode == 0, r.stderr
    assert "training without torch.compile: no C++ compiler" in r.stdout + r.stderr
    assert (out / "best.safetensors").exists()


def test_prepare_defaults_to_one_vocabulary_on_every_machine(tmp_path, capsys, monkeypatch):
    """Whether `--preset cpu` means cpu or cpu-fp32 here: the book, `make run` and the CLI all prepare
    the sample corpus the same way."""
    from helpers import device
    from helpers.book import sample_data
    from helpers.config import DEFAULT_VOCAB_SIZE

    for native_bf16 in (False, True):
        monkeypatch.setattr(device, "cpu_has_native_bf16", lambda v=native_bf16: v)
        out = tmp_path / f"bf16-{native_bf16}"
        assert cli.main(["prepare", str(SAMPLE), "--out", str(out)]) == 0
        assert f"vocabulary {DEFAULT_VOCAB_SIZE:,} (the default" in capsys.readouterr().out
        assert json.loads((out / "meta.json").read_text())["vocab_size"] == DEFAULT_VOCAB_SIZE
    assert sample_data().vocab_size == DEFAULT_VOCAB_SIZE


def test_a_time_budget_given_alone_is_not_cut_short_by_the_presets_step_count(tmp_path, prepared, cli_env):
    """`--max-minutes` without `--max-iters`: the budget ends the run, not the preset's max_iters
    (smoke's 40 steps take about a second here, the budget is 4 s); with both, the steps still win."""
    import re

    from helpers.config import PRESETS

    def stopped(args):
        r = run(["train", "--data", str(prepared), "--preset", "smoke", "--sample-tokens", "0", "--quiet", *args],
                cli_env)
        assert r.returncode == 0, r.stderr
        m = re.search(r"stopped at step (\d+) \(([^)]*)\)", r.stdout + r.stderr)
        assert m, r.stdout + r.stderr
        return int(m.group(1)), m.group(2)

    step, reason = stopped(["--max-minutes", str(4 / 60), "--eval-interval", "100000", "--out", str(tmp_path / "a")])
    assert reason == "time budget" and step > PRESETS["smoke"].train.max_iters
    assert stopped(["--max-minutes", "5", "--max-iters", "7", "--out", str(tmp_path / "b")]) == (7, "max_iters")
