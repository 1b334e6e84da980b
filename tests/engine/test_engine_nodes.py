"""Several machines: ``trainer.num_nodes`` reaches Lightning Fabric (launched by torchrun or SLURM), and nonsense
is refused before anything starts."""

from __future__ import annotations

import pytest

from torchworks.engine import trainer as trainer_mod
from torchworks.engine.config import TrainerConfig


def test_num_nodes_is_passed_to_fabric(monkeypatch):
    seen = {}
    real = trainer_mod._fabric_class()

    class Spy(real):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(**{**kwargs, "num_nodes": 1})  # one machine here; the value itself is what we check

    monkeypatch.setattr(trainer_mod, "_fabric_class", lambda: Spy)
    trainer_mod.Trainer(TrainerConfig(num_nodes=3, progress=False, tensorboard=False, plots=False, threads=1))
    assert seen["num_nodes"] == 3 and seen["devices"] == 1


@pytest.mark.parametrize("bad", [0, -2])
def test_num_nodes_below_one_is_refused(bad):
    with pytest.raises(ValueError, match=f"num_nodes must be >= 1, got {bad}"):
        TrainerConfig(num_nodes=bad)
