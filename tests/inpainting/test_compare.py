"""``torchworks.inpainting.compare``: every method on one photo, scored on the hole; a broken one does not stop it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchworks.core.registry import INPAINTERS
from torchworks.inpainting import compare, metrics
from torchworks.inpainting.base import MissingExtraError
from torchworks.inpainting.compare import ERROR, RAN, UNAVAILABLE, compare_methods, registered_methods


def test_registered_methods_learned_first_aliases_left_out(monkeypatch):
    methods, aliases = registered_methods()
    assert sorted(methods) == INPAINTERS.names() and aliases == {}
    kinds = [INPAINTERS.meta(m).get("kind") == "learned" for m in methods]
    assert kinds == sorted(kinds, reverse=True)  # every learned method before every other
    learned = [m for m, k in zip(methods, kinds, strict=True) if k]
    assert learned == sorted(learned) and {"telea", "ns", "mean", "blur"} <= set(methods)
    # A plain name given to a registered method is listed as an alias, not run twice; one whose target is not
    # registered is no alias.
    monkeypatch.setitem(compare.ALIASES, "inpaint_default", "telea")
    monkeypatch.setitem(compare.ALIASES, "telea_old", "not_registered")
    monkeypatch.setattr(INPAINTERS, "names", lambda: sorted([*methods, "inpaint_default"]))
    assert registered_methods() == (methods, {"inpaint_default": "telea"})


def test_scores_each_method_on_the_hole(photo, hole):
    results = compare_methods(photo, hole > 0, ["telea", "mean"])
    assert [(r.name, r.kind, r.status) for r in results] == [("telea", "classical", RAN), ("mean", "baseline", RAN)]
    target = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    mask = torch.from_numpy(hole > 0)[None, None].float()
    for r in results:
        assert r.filled.shape == photo.shape and r.filled.dtype == np.uint8 and r.ms > 0
        assert (r.filled[hole == 0] == photo[hole == 0]).all()  # no default dilation for classical methods
        pred = torch.from_numpy(r.filled).permute(2, 0, 1)[None].float() / 255
        assert r.psnr_hole == pytest.approx(float(metrics.psnr(pred, target, mask)), abs=1e-9)
    telea, mean = results
    assert 15 < telea.psnr_hole < 40 and telea.psnr_hole > mean.psnr_hole  # Telea beats a flat fill on a photo


def test_a_failing_method_is_recorded_and_the_rest_still_run(photo, hole, monkeypatch):
    real = compare.inpaint

    def flaky(image, mask, name):
        if name == "ns":
            raise MissingExtraError("ns needs opencv: pip install torchworks[cv]")
        if name == "blur":
            raise RuntimeError("kaboom")
        return real(image, mask, name)

    monkeypatch.setattr(compare, "inpaint", flaky)
    seen: list[str] = []
    results = compare_methods(photo, hole > 0, ["ns", "blur", "telea"], progress=seen.append)
    assert seen == ["ns", "blur", "telea"]
    assert [r.status for r in results] == [UNAVAILABLE, ERROR, RAN]
    assert results[0].note == "ns needs opencv: pip install torchworks[cv]" and results[0].filled is None
    assert results[1].note == "RuntimeError: kaboom" and results[1].psnr_hole is None


@pytest.mark.parametrize(("photo_", "hole_", "match"), [
    (np.zeros((8, 8, 3), np.float32), np.ones((8, 8), bool), "photo must be uint8"),
    (np.zeros((8, 8), np.uint8), np.ones((8, 8), bool), "photo must be uint8"),
    (np.zeros((8, 8, 3), np.uint8), np.ones((8, 9), bool), "hole must be"),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool), "at least one hole pixel"),
])
def test_bad_input(photo_, hole_, match):
    with pytest.raises(ValueError, match=match):
        compare_methods(photo_, hole_, ["telea"])
