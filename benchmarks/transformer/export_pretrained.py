"""Export a benchmark run's final weights as the shipped model: checkpoint + tokenizer JSON + model card.

Usage::

    python benchmarks/transformer/export_pretrained.py --run rope_lr3_1800

reads ``benchmarks/transformer/results/<run>.json`` (written by ``bench_gpt.py ours``), loads the run's
``last.ckpt`` and writes ``src/torchworks/transformer/pretrained/gpt_char_shakespeare.{ckpt,tokenizer.json,md}``.
The card's recipe is written in the current config keys (a run trained before the schedule keys were renamed
stored ``decay_steps`` / ``min_lr``) and must resolve to the same task and trainer settings as ``--recipe``, the
config the card's Reproduce command evaluates with.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from torchworks.core.checkpoint import load_checkpoint, save_model
from torchworks.core.config import to_dict
from torchworks.engine.config import load_run_config
from torchworks.transformer.common import SCHEDULE_RENAMED_KEYS
from torchworks.transformer.gpt.generate import generate_text
from torchworks.transformer.gpt.task import load_lm
from torchworks.transformer.pretrained import DEFAULT_MODEL, PRETRAINED_DIR

RUNS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[2]

CARD = """# {name}: character-level GPT trained on tinyshakespeare

A {params:,}-parameter decoder-only Transformer ({arch}) that continues text in the style of Shakespeare, one
character at a time. Shipped so that `torchworks generate --prompt "ROMEO:"` works offline.

## Data
tinyshakespeare (`input.txt` of karpathy/char-rnn, 1,115,394 characters, public domain text), read through the
`tinyshakespeare` data set. Vocabulary: the {vocab} distinct characters, sorted (ids equal nanoGPT's
`shakespeare_char`). Split by position: first 90 % trains (1,003,854 tokens), last 10 % validates (111,540).

## Recipe
Trained with the `gpt_lm` task through the shared engine, one thread, seed {seed}:
`{base}` with {overrides} (`{recipe}`). That is: block {block}, batch {batch}, {steps} steps
({tokens:,} training tokens), AdamW (0.9, 0.99), weight decay 0.1 on matrices, lr {lr:g} with {warmup} warm-up steps
and a cosine to {floor:g}, gradient clipping at 1, dropout 0.

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

## Reproduce

One command from the repository root (about 10 CPU-seconds on one thread; needs the `tinyshakespeare` data set):

```bash
torchworks eval {recipe} --ckpt src/torchworks/transformer/pretrained/{name}.safetensors --split val --set trainer.limit_val_batches=null --threads 1
```

prints `val/loss {full:.4f}`, the full validation loss above (`{recipe}` is the recipe above; `limit_val_batches=null` scores the whole split instead of the {limit} batches of periodic evaluations).
"""  # noqa: E501  (the card's command stays one line to copy)


def recipe_overrides(overrides: list[str], task: dict) -> list[str]:
    """The run's ``--set`` overrides in the current task keys.

    Args:
        overrides: as the run recorded them (``"task.decay_steps=1800"``).
        task: the ``task`` section of the run's saved config, old keys (``decay_steps``, absolute ``min_lr``) or
            new (``total_steps``, ``min_lr_ratio``).

    Returns:
        The overrides with ``task.decay_steps`` renamed ``task.total_steps``, and ``task.min_lr_ratio`` pinned to
        the floor the run decayed to (``min_lr / lr``), since the base config's default ratio is another floor at
        another peak lr.
    """
    out = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "task.decay_steps":
            out.append(f"task.{SCHEDULE_RENAMED_KEYS['decay_steps']}={value}")
        elif key not in ("task.min_lr", "task.min_lr_ratio"):
            out.append(item)
    ratio = task["min_lr"] / task["lr"] if "min_lr" in task else task["min_lr_ratio"]
    return [*out, f"task.min_lr_ratio={ratio!r}"]


def check_recipe(base: Path, overrides: list[str], recipe: Path) -> None:
    """Raises ``ValueError`` naming the differences unless ``base`` + ``overrides`` resolve to the ``task`` and
    ``trainer`` settings of ``recipe`` (a ConfigError if an override names an unknown key)."""
    got, want = (to_dict(load_run_config(*a)[0]) for a in ((base, overrides), (recipe, ())))
    diff = [f"{part}.{k}: {got[part].get(k)!r} != {v!r}" for part in ("task", "trainer")
            for k, v in want[part].items() if got[part].get(k) != v]
    if diff:
        raise ValueError(f"{base} with {overrides} is not {recipe}: " + "; ".join(diff))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="name of a results/<run>.json written by bench_gpt.py ours")
    parser.add_argument("--recipe", default="configs/gpt_char_best.yaml",
                        help="the config (repository-relative) the run equals, which the card's Reproduce uses")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = json.loads((RUNS / f"{args.run}.json").read_text())
    refs = [json.loads(p.read_text())["full_val_loss"] for p in sorted(RUNS.glob("nanogpt*.json"))]
    ref_full = ", ".join(f"{r:.4f}" for r in refs) if refs else "not run"
    state = load_checkpoint(rec["last_checkpoint"])
    model, tok = load_lm(rec["last_checkpoint"])
    cfg = state["config"]
    base = Path(rec["config"])
    overrides = recipe_overrides(rec["overrides"], cfg["task"])
    check_recipe(base, overrides, ROOT / args.recipe)
    out = PRETRAINED_DIR / f"{DEFAULT_MODEL}.safetensors"
    spec = state["model_spec"]
    save_model(out, model, spec=spec, extra={"tokenizer": tok.to_json(), "full_val_loss": rec["full_val_loss"]})
    tok.save(PRETRAINED_DIR / f"{DEFAULT_MODEL}.tokenizer.json")
    sample = generate_text(model, tok, "ROMEO:", 200, temperature=0.8, top_k=40,
                           generator=torch.Generator().manual_seed(0))
    c = model.config
    card = CARD.format(
        name=DEFAULT_MODEL, params=model.num_params(), vocab=tok.vocab_size, seed=cfg["seed"],
        arch=f"{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, {c.pos} positions, no biases",
        base=base.resolve().relative_to(ROOT), overrides=", ".join(f"`{o}`" for o in overrides), recipe=args.recipe,
        block=c.block_size, batch=cfg["trainer"]["batch_size"], steps=rec["steps"], tokens=rec["tokens"],
        lr=cfg["task"]["lr"], warmup=cfg["task"]["warmup_steps"],
        floor=cfg["task"].get("min_lr", cfg["task"]["lr"] * cfg["task"].get("min_lr_ratio", 0.0)),
        limit=cfg["trainer"]["limit_val_batches"],
        full=rec["full_val_loss"], ref_full=ref_full, wall=rec["wall_train_s"],
        cpu=rec["cpu_process_s"] - rec.get("full_val_cpu_s", 0.0),  # training process, without full-val scoring
        load=rec["load_avg"][0], cores=rec.get("cores", os.cpu_count()), sample=sample, spec=json.dumps(spec),
        size=out.stat().st_size)
    (PRETRAINED_DIR / f"{DEFAULT_MODEL}.md").write_text(card)
    print(f"wrote {out} ({out.stat().st_size:,} bytes), tokenizer and model card; full-val {rec['full_val_loss']:.4f}")


if __name__ == "__main__":
    main()
