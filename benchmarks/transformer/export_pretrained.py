"""Export a benchmark run's final weights as the shipped model: checkpoint + tokenizer JSON + model card.

Usage::

    python benchmarks/transformer/export_pretrained.py --run rope_lr3_1800

reads ``benchmarks/transformer/results/<run>.json`` (written by ``bench_gpt.py ours``), loads the run's
``last.ckpt`` and writes ``src/torchworks/transformer/pretrained/gpt_char_shakespeare.{ckpt,tokenizer.json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from torchworks.core.checkpoint import load_checkpoint, save_model
from torchworks.transformer.gpt.generate import generate_text
from torchworks.transformer.gpt.task import load_lm
from torchworks.transformer.pretrained import DEFAULT_MODEL, PRETRAINED_DIR

RUNS = Path(__file__).resolve().parent / "results"

CARD = """# {name}: character-level GPT trained on tinyshakespeare

A {params:,}-parameter decoder-only Transformer ({arch}) that continues text in the style of Shakespeare, one
character at a time. Shipped so that `torchworks generate --prompt "ROMEO:"` works offline.

## Data
tinyshakespeare (`input.txt` of karpathy/char-rnn, 1,115,394 characters, public domain text), read through the
`tinyshakespeare` data set. Vocabulary: the {vocab} distinct characters, sorted (ids equal nanoGPT's
`shakespeare_char`). Split by position: first 90 % trains (1,003,854 tokens), last 10 % validates (111,540).

## Recipe
Trained with the `gpt_lm` task through the shared engine, one thread, seed {seed}:
`configs/gpt_char_nanogpt.yaml` with {overrides}. That is: block {block}, batch {batch}, {steps} steps
({tokens:,} training tokens), AdamW (0.9, 0.99), weight decay 0.1 on matrices, lr {lr:g} with 100 warm-up steps and
a cosine to 1e-4, gradient clipping at 1, dropout 0.

## Metrics
- Full validation loss: **{full:.4f}** nats/char (all 111,488 scorable targets, non-overlapping 64-character
  windows, `torchworks.transformer.gpt.data.full_val_loss`). nanoGPT's CPU recipe measured in the same session:
  {ref_full}.
- Training cost: {cpu:.0f} CPU seconds for the whole process on 1 thread; {wall:.0f} s wall on a {cores}-core machine
  shared with other jobs (load average about {load:.0f}; a quiet machine needs roughly the CPU time).

## Use
```
torchworks generate --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 0
```
```python
from torchworks.transformer.pretrained import load_pretrained
model, tokenizer = load_pretrained()
```
Sample (`torchworks generate --prompt "ROMEO:" --temperature 0.8 --top-k 40 --top-p 1 --seed 0`, 200 new
characters):

```
ROMEO:{sample}
```

## Files
- `{name}.safetensors`: `torchworks.core.checkpoint.save_model` export (registry spec `{spec}` + weights + tokenizer
  JSON under `tokenizer`), {size:,} bytes.
- `{name}.tokenizer.json`: the same tokenizer as a file.

## Limits
Trained for minutes on one CPU thread: spelling and layout look Shakespearean, sense does not. Characters outside
the {vocab}-character vocabulary cannot be prompted (the CLI names them). The context is {block} characters; longer
prompts keep their last {block}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="name of a results/<run>.json written by bench_gpt.py ours")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = json.loads((RUNS / f"{args.run}.json").read_text())
    refs = [json.loads(p.read_text())["full_val_loss"] for p in sorted(RUNS.glob("nanogpt*.json"))]
    ref_full = ", ".join(f"{r:.4f}" for r in refs) if refs else "not run"
    state = load_checkpoint(rec["last_checkpoint"])
    model, tok = load_lm(rec["last_checkpoint"])
    cfg = state["config"]
    out = PRETRAINED_DIR / f"{DEFAULT_MODEL}.safetensors"
    spec = state["model_spec"]
    save_model(out, model, spec=spec, extra={"tokenizer": tok.to_json(), "full_val_loss": rec["full_val_loss"]})
    out.chmod(0o644)  # save_checkpoint writes through mkstemp (0600); package data must be world-readable
    tok.save(PRETRAINED_DIR / f"{DEFAULT_MODEL}.tokenizer.json")
    sample = generate_text(model, tok, "ROMEO:", 200, temperature=0.8, top_k=40,
                           generator=torch.Generator().manual_seed(0))
    c = model.config
    card = CARD.format(
        name=DEFAULT_MODEL, params=model.num_params(), vocab=tok.vocab_size, seed=cfg["seed"],
        arch=f"{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, {c.pos} positions, no biases",
        overrides=", ".join(f"`{o}`" for o in rec["overrides"]) or "no overrides", block=c.block_size,
        batch=cfg["trainer"]["batch_size"], steps=rec["steps"], tokens=rec["tokens"], lr=cfg["task"]["lr"],
        full=rec["full_val_loss"], ref_full=ref_full, wall=rec["wall_train_s"],
        cpu=rec["cpu_process_s"] - rec.get("full_val_cpu_s", 0.0),  # training process, without full-val scoring
        load=rec["load_avg"][0], cores=rec.get("cores", os.cpu_count()), sample=sample, spec=json.dumps(spec),
        size=out.stat().st_size)
    (PRETRAINED_DIR / f"{DEFAULT_MODEL}.md").write_text(card)
    print(f"wrote {out} ({out.stat().st_size:,} bytes), tokenizer and model card; full-val {rec['full_val_loss']:.4f}")


if __name__ == "__main__":
    main()
