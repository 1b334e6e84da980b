"""Generation speed against nanoGPT's ``sample.py``, and what the KV cache buys at 128 / 512 / 2048 new tokens.

    python benchmarks/transformer/bench_generate.py --nanogpt /path/to/nanoGPT   # a checkout or its git directory

The nanoGPT side is nanoGPT's own code: ``model.py``, ``sample.py`` and ``configurator.py`` are copied from the
given checkout into a temporary folder (nothing of it enters this repository) and ``sample.py`` runs there as
nanoGPT's README runs it (``--init_from=resume --device=cpu --compile=False``), on a checkpoint its ``model.py``
builds with the CPU recipe's size (4 layers, 4 heads, 128 wide, block 64, no biases, 65 characters: 0.80M
parameters, random weights: speed does not depend on them) and the ``meta.pkl`` of those characters. The time of
each ``model.generate`` call is taken inside that process (a wrapper around it), so start-up is not counted.

Our side opens the same ``ckpt.pt`` (``torchworks generate --ckpt`` reads nanoGPT checkpoints) and runs
:func:`~torchworks.transformer.gpt.generate.generate` with the same sampling (temperature 0.8, top-k 200, prompt
"\\n", 500 new tokens): cached with the default window shift (what the CLI and API do), and uncached with a
one-token slide (nanoGPT's algorithm, for reference). The two processes alternate, one thread each
(``OMP_NUM_THREADS=1``); medians of CPU and wall seconds per 500-token sample. Results go to the ``generate``
section of ``docs/results/transformer.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "transformer.md"
SIZE = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, bias=False, vocab_size=65, dropout=0.0)
SAMPLING = dict(temperature=0.8, top_k=200)
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tinyshakespeare's 65

# Runs inside the copied nanoGPT folder: times each model.generate call, then runs sample.py unchanged.
NANO_WRAPPER = textwrap.dedent("""
    import json, runpy, sys, time, types
    import torch
    torch.set_num_threads(1)
    try:
        import tiktoken  # noqa: F401  (sample.py imports it; a char checkpoint never uses it)
    except ImportError:
        sys.modules["tiktoken"] = types.ModuleType("tiktoken")
    import model
    times, original = [], model.GPT.generate
    def timed(self, *a, **k):
        c, w = time.process_time(), time.perf_counter()
        out = original(self, *a, **k)
        times.append((time.process_time() - c, time.perf_counter() - w, out[0].tolist()))
        return out
    model.GPT.generate = timed
    sys.argv = ["sample.py"] + sys.argv[2:]
    runpy.run_path("sample.py", run_name="__main__")
    json.dump(times, open("times.json", "w"))
""")


def nanogpt_files(source: Path) -> tuple[dict[str, str], str]:
    """model.py, sample.py, configurator.py of a nanoGPT checkout or git directory, and its commit."""
    names = ("model.py", "sample.py", "configurator.py")
    if (source / "model.py").is_file():
        files = {n: (source / n).read_text() for n in names}
        git = ["git", "-C", str(source)]
    else:  # a bare clone / git directory
        git = ["git", f"--git-dir={source}"]
        files = {n: subprocess.run([*git, "show", f"HEAD:{n}"], capture_output=True, text=True, check=True).stdout
                 for n in names}
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return files, commit or "unknown"


def make_checkpoint(work: Path) -> None:
    """ckpt.pt built by nanoGPT's model.py (seed 1337) and data/shakespeare_char/meta.pkl, as train.py leaves them."""
    code = textwrap.dedent(f"""
        import torch
        from model import GPT, GPTConfig
        torch.manual_seed(1337)
        args = {SIZE!r}
        model = GPT(GPTConfig(**args))
        torch.save({{"model": model.state_dict(), "model_args": args, "iter_num": 0,
                    "best_val_loss": torch.tensor(9.9), "config": {{"dataset": "shakespeare_char"}}}}, "out/ckpt.pt")
    """)
    (work / "out").mkdir()
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True, env=_env(), capture_output=True)
    meta = work / "data" / "shakespeare_char"
    meta.mkdir(parents=True)
    meta.joinpath("meta.pkl").write_bytes(pickle.dumps({"vocab_size": len(CHARS), "itos": dict(enumerate(CHARS)),
                                                        "stoi": {c: i for i, c in enumerate(CHARS)}}))


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_nanogpt(work: Path, samples: int) -> list[tuple[float, float, list[int]]]:
    args = ["--init_from=resume", "--out_dir=out", "--device=cpu", "--dtype=float32", "--compile=False",
            f"--num_samples={samples}", "--max_new_tokens=500", f"--temperature={SAMPLING['temperature']}",
            f"--top_k={SAMPLING['top_k']}", "--seed=1337"]
    subprocess.run([sys.executable, "-c", NANO_WRAPPER, "x", *args], cwd=work, check=True, env=_env(),
                   capture_output=True)
    return [tuple(t) for t in json.loads((work / "times.json").read_text())]


OURS = textwrap.dedent("""
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    from torchworks.transformer.gpt.generate import generate
    from torchworks.transformer.gpt.sources import load_lm_source
    ckpt, meta, samples, mode, new = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    model, tok = load_lm_source(ckpt, tokenizer=meta)
    idx = torch.tensor([tok.encode("\\n")])
    kw = dict(use_cache=True) if mode == "cached" else dict(use_cache=False, window_shift=1)
    torch.manual_seed(1337)
    times = []
    for _ in range(samples):
        c, w = time.process_time(), time.perf_counter()
        out = generate(model, idx, new, temperature=0.8, top_k=200, **kw)
        times.append((time.process_time() - c, time.perf_counter() - w, out[0].tolist()))
    print(json.dumps(times))
""")


def run_ours(work: Path, samples: int, mode: str, new_tokens: int = 500) -> list[tuple[float, float, list[int]]]:
    args = [str(work / "out" / "ckpt.pt"), str(work / "data" / "shakespeare_char" / "meta.pkl"), str(samples), mode,
            str(new_tokens)]
    done = subprocess.run([sys.executable, "-c", OURS, *args], check=True, env=_env(), capture_output=True, text=True)
    return [tuple(t) for t in json.loads(done.stdout)]


def logit_gap(work: Path) -> float:
    """Max |logit difference| between nanoGPT's model.py and ours on the same checkpoint (a 64-token window)."""
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(work)!r})
        from model import GPT, GPTConfig
        from torchworks.transformer.gpt.nanogpt import load_nanogpt
        ckpt = torch.load({str(work / "out" / "ckpt.pt")!r}, weights_only=True)
        nano = GPT(GPTConfig(**ckpt["model_args"])).eval()
        nano.load_state_dict(ckpt["model"])
        ours, _ = load_nanogpt({str(work / "out" / "ckpt.pt")!r}, tokenizer=type("T", (), {{"vocab_size": 65}})())
        idx = torch.randint(0, 65, (4, 64), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a = nano(idx, idx)[0]
            b = ours(idx, all_logits=True)[0]
        print((a - b).abs().max().item())
    """)
    done = subprocess.run([sys.executable, "-c", code], check=True, env=_env(), capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])  # model.py prints its parameter count first


def _med(runs, i: int) -> float:
    return statistics.median(r[i] for r in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", required=True, type=Path, help="a nanoGPT checkout or its git directory")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--samples", type=int, default=3, help="500-token samples per process (default 3)")
    args = parser.parse_args(argv)
    machine = Machine.measure(threads=1)
    files, commit = nanogpt_files(args.nanogpt)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, text in files.items():
            (work / name).write_text(text)
        make_checkpoint(work)
        gap = logit_gap(work)
        runs: dict[str, list] = {"nanogpt": [], "cached": [], "uncached": []}
        for _ in range(args.rounds):  # alternate so that all three see the same load
            runs["nanogpt"] += run_nanogpt(work, args.samples)
            runs["cached"] += run_ours(work, args.samples, "cached")
            runs["uncached"] += run_ours(work, args.samples, "uncached")
        scale, scale_cached = {}, {}
        for n in (128, 512, 2048):
            scale[n], scale_cached[n] = [], []
            for _ in range(2):
                scale[n] += run_ours(work, 1, "uncached", n)
                scale_cached[n] += run_ours(work, 1, "cached", n)
        shutil.rmtree(work / "out")
    machine.finish()
    write(args, machine, commit, gap, runs, scale, scale_cached)


def write(args, machine, commit, gap, runs, scale, scale_cached) -> None:
    nano_cpu, nano_wall = _med(runs["nanogpt"], 0), _med(runs["nanogpt"], 1)
    rows = ["| sampler | CPU s per 500 tokens | tokens / CPU-s | wall s | tokens / wall-s | speed vs nanoGPT (CPU) "
            "| speed vs nanoGPT (wall) |", "|---|---|---|---|---|---|---|"]
    labels = {"nanogpt": f"nanoGPT `sample.py` ({commit}): uncached, window slides by 1",
              "uncached": "ours, uncached, window slides by 1 (nanoGPT's algorithm)",
              "cached": "**ours, default** (`torchworks generate`): KV cache + fast step, window jumps by 16"}
    for key in ("nanogpt", "uncached", "cached"):
        cpu, wall = _med(runs[key], 0), _med(runs[key], 1)
        rows.append(f"| {labels[key]} | {cpu:.3f} | {500 / cpu:,.0f} | {wall:.3f} | {500 / wall:,.0f} | "
                    f"**{nano_cpu / cpu:.2f}x** | {nano_wall / wall:.2f}x |")
    speed = ["| new tokens | uncached CPU s | cached CPU s | speed-up (CPU) | uncached wall s | cached wall s | "
             "speed-up (wall) |", "|---|---|---|---|---|---|---|"]
    for n in (128, 512, 2048):
        u, c = scale[n], scale_cached[n]
        speed.append(f"| {n} | {_med(u, 0):.3f} | {_med(c, 0):.3f} | **{_med(u, 0) / _med(c, 0):.2f}x** | "
                     f"{_med(u, 1):.3f} | {_med(c, 1):.3f} | {_med(u, 1) / _med(c, 1):.2f}x |")
    n_runs = args.rounds * args.samples
    body = "\n".join([
        "## Generation speed: KV cache vs nanoGPT's sample.py (benchmarks/transformer/bench_generate.py)",
        "",
        f"Command: `python {shlex.join(['benchmarks/transformer/bench_generate.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {machine.describe()}. Every process ran with one thread (`OMP_NUM_THREADS=1`)"
        + ("; the machine was shared with other jobs (load above the core count), so wall times are inflated: "
           "compare CPU seconds. " if machine.busy else ". ")
        + f"Medians of {n_runs} samples per sampler, the three samplers alternating in {args.rounds} rounds.",
        "",
        "Same model for both: a 0.80M-parameter checkpoint written by nanoGPT's `model.py` (the CPU recipe's size: 4 "
        "layers, 4 heads, 128 wide, block 64, no biases, 65 characters), opened by `sample.py` and by our "
        f"nanoGPT reader (max |logit difference| {gap:.1e}). Same sampling: prompt \"\\n\", temperature 0.8, top-k "
        "200, 500 new tokens. nanoGPT's time is that of its `model.generate` call inside `sample.py` (start-up "
        "excluded), ours that of `generate()`. The texts differ: `sample.py` seeds torch before building its model, "
        "whose initialisation draws from the same generator.",
        "",
        *rows,
        "",
        "Past the context (64 tokens) nanoGPT slides its window by one token and re-runs it every step; ours jumps the "
        "window by a quarter of the block (`window_shift`, default `block_size // 4`), rebuilds the cache once from "
        "the remaining 48 tokens and then decodes 16 tokens one at a time (the fast step calls the layers' tensor "
        "operations directly, without module overhead). Within the context cached and uncached decoding give "
        "identical tokens (tests/transformer/gpt/test_tf_fast_decode.py).",
        "",
        "### Cached vs uncached, by output length (ours, 2 samples each)",
        "",
        *speed,
        "",
    ])
    write_section(RESULTS, "generate", body)
    print(body)


if __name__ == "__main__":
    main()
