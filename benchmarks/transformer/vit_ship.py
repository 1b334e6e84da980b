"""``bench_vit.py --ship``: a trained ViT exported next to the other shipped models, with its model card."""

from __future__ import annotations

from _common import Machine
from vit_common import PRETRAINED, ROOT, TRAIN_SIZE, precision, train_command


def ship(r: dict, data_label: str, goal: float, config: str, seed_flag: int | None, data_slug: str) -> None:
    """Exports a trained ViT as safetensors + model card next to the other shipped models.

    Args:
        r: the run's evaluated row (``bench_vit.evaluate``).
        data_label: "Fashion-MNIST" or "CIFAR-10".
        goal: the test accuracy the card states as the goal.
        config: the run's config name; ``seed_flag`` its ``--seed`` (None: the config's own).
        data_slug: the data part of the shipped model's name (``fashion_mnist``).
    """
    from torchworks.core.checkpoint import load_checkpoint, load_model, save_model

    state = load_checkpoint(r["ckpt"])
    # Named after the architecture and the data (vit_small_patch7_28 -> vit_small_fashion_mnist, conv-stem runs
    # vit_convstem_<data>); a model shipped earlier for the same run under another name is replaced.
    conv = config.endswith("_convstem")
    model_name = f"vit_convstem_{data_slug}" if conv else f"{'_'.join(r['model'].split('_')[:2])}_{data_slug}"
    for old in PRETRAINED.glob(f"vit_*_{data_slug}.*"):
        if old.stem != model_name and ("convstem" in old.stem) == conv:
            old.unlink()
    model = load_model(r["ckpt"])
    patch = model.config.patch_size
    layers = {1: "one", 2: "two", 3: "three", 4: "four"}.get(patch.bit_length() - 1, str(patch.bit_length() - 1))
    what = (f"convolutional stem (Xiao et al. 2021: {layers} stride-2 3x3 conv-BN-ReLU layers and a\n1x1 "
            f"projection, one token per {patch}x{patch} pixels)") if conv else f"patch {patch}"
    kind = "ViT with a convolutional stem" if conv else "plain ViT"
    path = save_model(PRETRAINED / f"{model_name}.safetensors", model, spec=state["model_spec"],
                      extra={"normalise": {"dataset": r["config"]["task"]["dataset"]}})
    t = r["config"]["task"]
    epochs = r["step"] * r["batch"] / TRAIN_SIZE[data_label]
    cpu_note = f"; {r['cpu_how']}: earlier processes of the resumed run left no report" \
        if r["cpu_how"].startswith("est") else ""
    wall_text = f"{r['wall_s'] / 60:.1f} minutes wall" if r["wall_s"] is not None else "wall time not recorded"
    seed = r["config"].get("seed", 0)
    machine = Machine.measure(threads=1)
    card = f"""# {model_name}: {kind} trained from scratch on {data_label}

A {r['params']:,}-parameter Vision Transformer (`{r['model']}`: {what}, [CLS] token, learned positions,
pre-LN blocks) trained here on one CPU thread. Test accuracy **{100 * r['test_acc']:.2f} %** on the
{data_label} test set (goal {100 * goal:.0f} %).

## Data
{data_label} (`{t['dataset']}` via `torchworks.transformer.vit.task.load_split`): {TRAIN_SIZE[data_label]:,} training
images ({t['holdout']:,} more held out for validation, fixed permutation seed 12345); the test set is used once.
Inputs are normalised with the per-channel mean/std in `torchworks.transformer.vit.task.STATS['{t['dataset']}']`.{
    " The CIFAR-10 used is the JPEG (quality 75) copy (`cifar10_jpeg_bytes.npz`), not the lossless original: "
    "accuracies run a few points below what it gives." if t['dataset'] == 'cifar10' else ""}

## Recipe
`torchworks {' '.join(train_command(config, seed_flag))}` (task `image_classifier`, seed {seed}): {r['step']} steps of
batch {r['batch']} ({epochs:.1f} epochs), random crop (zero padding {t['crop_padding']}) + horizontal flip, label
smoothing {t['label_smoothing']}, AdamW lr {t['lr']} (weight decay {t['weight_decay']} on weight matrices only),
{t['warmup_steps']} warm-up steps then cosine to 0, gradient clipping at 1{
    ", bfloat16 autocast (float32 weights and optimizer state)" if precision(r) == "bf16" else ""}.

## Metrics
- Test accuracy: {100 * r['test_acc']:.2f} % (last step; held-out validation accuracy
  {100 * (r['val_acc'] or 0):.2f} %).
- Training cost: {r['cpu_s'] / 60:.1f} CPU-minutes (user + sys of the training process, one thread{cpu_note}),
  {wall_text} on a {machine.cores}-core {machine.cpu} machine shared with other jobs.

## Use
```python
from torchworks.core.checkpoint import load_model
model = load_model("{path.relative_to(ROOT)}").eval()   # images (B, C, H, W), normalised as above
```
"""
    (PRETRAINED / f"{model_name}.md").write_text(card)
