"""Seeds are overrides, not files: ``train CONFIG --seed K`` and ``--seeds K1 K2 ...`` (one resumable folder each)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from torchworks.cli.main import main
from torchworks.core.checkpoint import load_checkpoint
from torchworks.core.config import load_yaml, to_dict
from torchworks.engine.run import resolve, seed_dir

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def last(folder: Path) -> dict:
    return load_checkpoint(folder / "checkpoints" / "last.ckpt")


def weights(state: dict) -> list[torch.Tensor]:
    return [state["task"][k] for k in sorted(state["task"])]


def test_seed_flag_resolves_to_the_old_per_seed_file_in_its_own_folder():
    import torchworks.transformer.vit  # noqa: F401  (registers image_classifier)

    # configs/vit_cifar10_bf16_crop1_seed5.yaml (the shipped vit_mini_cifar10's run) was this base with
    # `seed: 5` and `out_dir: runs/vit_cifar10_bf16_crop1_seed5`, nothing else.
    base = ROOT / "configs" / "vit_cifar10_bf16_crop1.yaml"
    data = load_yaml(base)
    old = to_dict(resolve({**data, "seed": 5, "out_dir": f"{data['out_dir']}_seed5"}))
    new = to_dict(resolve(base, seed=5))
    assert new["out_dir"] == "runs/vit_cifar10_bf16_crop1/seed5" == str(seed_dir(data["out_dir"], 5))
    assert {**new, "out_dir": None} == {**old, "out_dir": None}
    assert resolve(base, seed=5, out_dir="elsewhere").out_dir == "elsewhere"  # -o/--out names the folder
    plain = resolve(base, ["seed=5"])  # --set seed= changes the seed and nothing else
    assert (plain.seed, plain.out_dir) == (5, data["out_dir"])
    assert resolve(base, ["seed=2"], seed=5).seed == 5  # the flag wins over --set, as --out does


def test_seed_flag_trains_what_set_seed_trains_in_the_seed_folder(tmp_path, make_config, capsys):
    recipe = write(tmp_path, make_config())
    assert main(["train", recipe, "--seed", "3"]) == 0
    assert main(["train", recipe, "--set", "seed=3", "--out", str(tmp_path / "by_set")]) == 0
    assert main(["train", recipe, "--out", str(tmp_path / "seed0")]) == 0
    flagged, by_set, zero = last(tmp_path / "run" / "seed3"), last(tmp_path / "by_set"), last(tmp_path / "seed0")
    assert not (tmp_path / "run" / "checkpoints").exists()  # the recipe's own folder stays free for seed 0
    assert flagged["config"]["seed"] == by_set["config"]["seed"] == 3
    assert {**flagged["config"], "out_dir": None} == {**by_set["config"], "out_dir": None}
    assert all(torch.equal(a, b) for a, b in zip(weights(flagged), weights(by_set), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(flagged), weights(zero), strict=True))
    assert f"run directory   {tmp_path / 'run' / 'seed3'}" in capsys.readouterr().out


def test_seeds_run_one_folder_each_and_resume_what_an_earlier_call_left(tmp_path, make_config, capsys):
    recipe = write(tmp_path, make_config(max_steps=20, eval_every=10))
    run = tmp_path / "run"
    # An "interrupted" first call: seeds 1 and 2 stop at step 10.
    assert main(["train", recipe, "--seeds", "1", "2", "--set", "trainer.max_steps=10"]) == 0
    assert [last(run / f"seed{k}")["step"] for k in (1, 2)] == [10, 10]
    capsys.readouterr()
    # The full call: seeds 1 and 2 continue from their last.ckpt, seed 3 starts.
    assert main(["train", recipe, "--seeds", "1", "2", "3"]) == 0
    out = capsys.readouterr().out
    assert "seed 1          resumed (step 20)" in out and "seed 2          resumed (step 20)" in out
    assert "seed 3          trained (step 20)" in out
    states = {k: last(run / f"seed{k}") for k in (1, 2, 3)}
    assert {k: (s["step"], s["config"]["seed"], s["config"]["out_dir"]) for k, s in states.items()} == {
        k: (20, k, str(run / f"seed{k}")) for k in (1, 2, 3)}
    assert not torch.equal(weights(states[1])[0], weights(states[2])[0])
    # Resumed exactly: seed 1 interrupted at step 10 ends where an uninterrupted seed-1 run ends.
    assert main(["train", recipe, "--seed", "1", "--out", str(tmp_path / "straight")]) == 0
    straight = last(tmp_path / "straight")
    assert all(torch.equal(a, b) for a, b in zip(weights(states[1]), weights(straight), strict=True))
    # A third call finds every seed finished and rewrites nothing.
    before = {k: (run / f"seed{k}" / "checkpoints" / "last.ckpt").read_bytes() for k in (1, 2, 3)}
    capsys.readouterr()
    assert main(["train", recipe, "--seeds", "1", "2", "3"]) == 0
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if ln.startswith("seed ")] == [
        f"seed {k}          finished (step 20)" for k in (1, 2, 3)]
    assert before == {k: (run / f"seed{k}" / "checkpoints" / "last.ckpt").read_bytes() for k in (1, 2, 3)}
    # -o/--out is the parent of the seed folders.
    assert main(["train", recipe, "--seeds", "4", "--out", str(tmp_path / "other")]) == 0
    assert last(tmp_path / "other" / "seed4")["config"]["seed"] == 4


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1", "1"], "--seeds gives seed 1 twice"),
    (["--seeds", "-1"], "--seeds must be in 0..4294967295, got -1"),
    (["--seeds", "1", "x"], "--seeds expected an integer, got 'x'"),
    (["--seeds"], "--seeds expected at least one argument"),
    (["--seed", "4294967296"], "--seed must be in 0..4294967295, got 4294967296"),
    (["--seed", "1", "--seeds", "2"], "argument --seeds: not allowed with argument --seed"),
    (["--set", "seed=-1"], "seed must be in 0..4294967295, got -1"),
    (["--seeds", "1", "2", "--resume", "x.ckpt"], "--resume continues one run"),
    (["--seeds", "1", "2", "--devices", "2", "--strategy", "ddp"], "give one --seed per command"),
])
def test_bad_seeds_stop_with_one_line_before_any_output(argv, message, tmp_path, make_config, capsys):
    recipe = write(tmp_path, make_config())
    assert main(["train", recipe, *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("torchworks train: error: "), err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_corrupt_seed_folder_stops_seeds_before_the_first_run(tmp_path, make_config, capsys):
    recipe = write(tmp_path, make_config())
    broken = tmp_path / "run" / "seed2" / "checkpoints" / "last.ckpt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")
    assert main(["train", recipe, "--seeds", "1", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "seed2" in err, err
    assert not (tmp_path / "run" / "seed1").exists()
