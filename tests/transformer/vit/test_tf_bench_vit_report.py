"""bench_vit's report logic: runs named by (config, seed), seed repeats grouped under their config."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks" / "transformer"))
import bench_vit  # noqa: E402


def test_seed_repeats_group_under_their_config_in_seed_order(monkeypatch):
    monkeypatch.setattr(bench_vit, "RUNS", [("a", None, "ViT", "CIFAR-10", 0.7), ("a", 2, "ViT", "CIFAR-10", 0.7),
                                            ("a", 1, "ViT", "CIFAR-10", 0.7), ("b", None, "ViT", "CIFAR-10", 0.7),
                                            ("lone", 1, "ViT", "CIFAR-10", 0.7)])
    results = {"a": {"test_acc": 0.70}, "a/seed2": {"test_acc": 0.72}, "a/seed1": {"test_acc": 0.68},
               "b": {"test_acc": 0.5}, "lone/seed1": {"test_acc": 0.1}}
    groups = bench_vit.seed_groups(results)
    assert list(groups) == ["a"]  # b and lone ran with one seed each
    assert [k for k, _ in groups["a"]] == [0, 1, 2]
    assert [r["test_acc"] for _, r in groups["a"]] == [0.70, 0.68, 0.72]


def test_seed_verdict_counts_runs_at_goal_and_judges_the_mean():
    assert bench_vit.seed_verdict([90.3, 90.1], 90.2, 90.0) == ": every run meets the 90 % goal."
    text = bench_vit.seed_verdict([70.1, 69.8, 71.0], 70.3, 70.0)
    assert text.startswith(": 2 of 3 runs meet the 70 % goal and the mean meets it")
    assert "the mean misses it" in bench_vit.seed_verdict([70.9, 69.0], 69.95, 70.0)


def test_same_seed_recipes_pick_plain_vits_of_one_data_set_and_seed(monkeypatch):
    monkeypatch.setattr(bench_vit, "RUNS", [("v", None, "ViT", "CIFAR-10", 0.7), ("v", 1, "ViT", "CIFAR-10", 0.7),
                                            ("w", None, "ViT", "CIFAR-10", 0.7), ("c", 1, "CNN", "CIFAR-10", None),
                                            ("f", 1, "ViT", "Fashion-MNIST", 0.9)])
    results = {"v": {}, "v/seed1": {}, "w": {"config": {"seed": 1}}, "c/seed1": {}, "f/seed1": {}}
    assert [n for n, _ in bench_vit.same_seed_recipes(results, "CIFAR-10", 1)] == ["v/seed1", "w"]
    assert [n for n, _ in bench_vit.same_seed_recipes(results, "CIFAR-10", 0)] == ["v"]
    assert bench_vit.run_seed("v/seed1", {"config": {"seed": 3}}) == 1  # the flag is what the run used
    assert bench_vit.recipe_of("v/seed1") == ("v", 1) and bench_vit.recipe_of("w") == ("w", None)
    assert bench_vit.log_name("v/seed1") == "v_seed1"  # = the GNU time reports of the former per-seed configs


SEED_RUNS = [(c, k) for c, k, *_ in bench_vit.RUNS if k is not None]


@pytest.mark.parametrize("config, seed", SEED_RUNS, ids=[bench_vit.run_key(c, k) for c, k in SEED_RUNS])
def test_a_stored_seed_run_is_its_config_with_the_seed_flag(config, seed):
    # The rows were trained from per-seed copies of the config (configs/<config>_seed<k>.yaml, since deleted);
    # the command that now names them, `torchworks train configs/<config>.yaml --seed k`, must give the config
    # those runs stored, in the folder bench_vit reads. Options added to the task since then may appear (their
    # defaults keep the old behaviour); every stored value must come out the same.
    import torchworks.transformer.vit  # noqa: F401  (registers image_classifier)
    from torchworks.core.config import to_dict
    from torchworks.engine.run import resolve

    key = bench_vit.run_key(config, seed)
    stored = json.loads(bench_vit.STORE.read_text())[key]["config"]
    argv = bench_vit.train_command(config, seed)
    assert argv[:4] == ["train", f"configs/{config}.yaml", "--seed", str(seed)]
    now = to_dict(resolve(ROOT / argv[1], seed=seed))
    assert now["out_dir"] == f"runs/{key}"
    for section in ("task", "trainer"):
        assert {k: now[section].get(k, "<missing>") for k in stored[section]} == stored[section], section
    assert set(now) == set(stored) and (now["seed"], now["data_dir"]) == (stored["seed"], stored["data_dir"]) == (
        seed, None)
