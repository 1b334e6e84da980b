"""ICT-style inpainting: palette, token cover, the prior's masking, the pluralistic sampler, the two stages, the
prior's training task and the guided upsampler's conditioning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchworks.inpainting.nets  # noqa: F401
from torchworks.core.checkpoint import build_model, load_model, save_model
from torchworks.core.errors import ShapeError
from torchworks.inpainting import inpaint
from torchworks.inpainting.ict import (
    ICTInpainter,
    dequantize,
    downsample,
    fit_palette,
    hole_tokens,
    quantize,
    sample_tokens,
)

torch.set_num_threads(1)


def test_kmeans_palette_finds_separated_colours():
    g = torch.Generator().manual_seed(0)
    true = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9]])
    pixels = torch.cat([c + 0.02 * torch.randn(300, 3, generator=g) for c in true])
    pal = fit_palette(pixels, 3, seed=1)
    lum = true @ torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(pal, true[lum.argsort()], atol=0.01, rtol=0)  # sorted by luminance
    with pytest.raises(ValueError, match="must be \\(N, 3\\)"):
        fit_palette(torch.rand(10, 4), 2)
    with pytest.raises(ValueError, match="palette size must be in 2..10"):
        fit_palette(torch.rand(10, 3), 11)


def test_quantize_round_trips_palette_images_and_picks_the_nearest_colour():
    pal = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    tokens = torch.tensor([[2, 0, 1, 1]])
    img = dequantize(tokens, pal, 2)
    assert img.shape == (1, 3, 2, 2) and torch.equal(quantize(img, pal), tokens)
    # (0.6, 0.2, 0.1) is nearer red (dist^2 0.21) than black (0.41) or white (0.97)
    assert quantize(torch.tensor([0.6, 0.2, 0.1]).view(1, 3, 1, 1), pal).item() == 2


def test_hole_tokens_cover_every_hole_pixel():
    mask = torch.zeros(1, 1, 16, 16)
    mask[0, 0, 5, 9] = 1  # one pixel -> token row 1, column 2 of a 4x4 grid
    unknown = hole_tokens(mask, 4)
    assert unknown.shape == (1, 16) and unknown.nonzero().flatten().tolist() == [0, 6]
    m = (torch.rand(2, 1, 64, 64) > 0.97).float()
    cover = hole_tokens(m, 8).view(2, 1, 8, 8)
    up = cover.float().repeat_interleave(8, -1).repeat_interleave(8, -2)
    assert bool((up >= m).all())  # no hole pixel under a known token


def test_prior_ignores_the_values_of_masked_tokens_and_checks_shapes():
    prior = build_model("ict_prior_tiny").eval()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (2, 64), generator=g)
    unknown = torch.rand(2, 64, generator=g) < 0.4
    other = torch.where(unknown, (tokens + 5) % 16, tokens)
    with torch.no_grad():
        torch.testing.assert_close(prior(tokens, unknown), prior(other, unknown), rtol=0, atol=0)
        assert not torch.allclose(prior(tokens, unknown), prior((tokens + 1) % 16, unknown))
    with pytest.raises(ShapeError, match="\\(B, 64\\)"):
        prior(tokens[:, :10], unknown[:, :10])


def test_sampler_keeps_known_tokens_is_seeded_and_pluralistic():
    prior = build_model("ict_prior_tiny").eval()
    tokens = torch.randint(0, 16, (1, 64), generator=torch.Generator().manual_seed(1))
    unknown = torch.zeros(1, 64, dtype=torch.bool)
    unknown[0, 20:44] = True
    calls = []
    prior.register_forward_hook(lambda *a: calls.append(1))

    def run(seed, **kw):
        return sample_tokens(prior, tokens, unknown, generator=torch.Generator().manual_seed(seed), **kw)

    seen = []
    a = run(0, steps=4, callback=lambda step, steps: seen.append((step, steps)))
    assert len(calls) == 4  # one forward per step
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # progress after each pass
    assert torch.equal(a[~unknown], tokens[~unknown])
    assert torch.equal(a, run(0, steps=4))
    samples = {tuple(run(s, steps=4)[unknown].tolist()) for s in range(5)}
    assert len(samples) == 5  # five seeds, five different completions
    greedy = run(0, top_k=1, steps=1)
    assert torch.equal(greedy, run(9, top_k=1, steps=1))  # argmax does not depend on the seed
    with torch.no_grad():
        expect = prior(tokens, unknown).argmax(-1)
    assert torch.equal(greedy[unknown], expect[unknown])
    with pytest.raises(ValueError, match="top_k >= 1"):
        run(0, top_k=0)
    closed = sample_tokens(prior, tokens, torch.zeros_like(unknown), steps=4,
                           callback=lambda step, steps: seen.append(("closed", step)))
    assert torch.equal(closed, tokens) and seen[-1] == ("closed", 4)  # nothing to fill: one final report


def _ict(seed=0):
    torch.manual_seed(0)
    prior = build_model("ict_prior_tiny").eval()
    prior.palette.copy_(torch.rand(16, 3))
    return ICTInpainter(prior, build_model("ict_upsampler_tiny").eval(), seed=seed, working_size=64, pad_mod=4)


def test_two_stage_fill_keeps_known_pixels_and_varies_with_the_seed(photo, hole):
    a = inpaint(photo, hole, _ict(0), dilate=0)
    assert np.array_equal(a[hole == 0], photo[hole == 0])
    assert np.array_equal(a, inpaint(photo, hole, _ict(0), dilate=0))
    b = inpaint(photo, hole, _ict(1), dilate=0)
    assert not np.array_equal(a[hole > 0], b[hole > 0])


def test_prior_image_known_region_equals_the_quantized_photo():
    ict = _ict()
    image = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:24, 8:24] = 1
    low = dequantize(quantize(downsample(image, 8), ict.palette), ict.palette, 8)
    sampled = ict.sample_prior(image, mask)
    down = downsample(sampled, 8)  # bicubic up then area down is close to the grid in flat regions
    known = ~hole_tokens(mask, 8).view(1, 1, 8, 8)
    far = known.clone()
    far[..., :4, :4] = False  # tokens next to the hole blend with sampled ones under bicubic
    assert float((down - low).abs()[far.expand_as(low)].max()) < 0.35


def _folder(tmp_path, n=4, size=80):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.integers(0, 255, 3)
        img = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
        Image.fromarray(img).save(tmp_path / f"p{i}.png")
    return tmp_path


def test_prior_task_fits_the_palette_and_learns(tmp_path):
    from torchworks.engine.run import train

    (tmp_path / "photos").mkdir()
    cfg = {"task": {"name": "ict_prior", "model": "ict_prior_tiny", "data": str(_folder(tmp_path / "photos")),
                    "holdout": 1, "crop": 32, "load_size": 40, "repeat": 8, "train_masks": "medium_256",
                    "lr": 3e-3, "palette_pixels": 2000},
           "trainer": {"max_steps": 40, "batch_size": 4, "eval_every": 40, "log_every": 10, "threads": 1,
                       "progress": False, "tensorboard": False, "plots": False},
           "seed": 0, "out_dir": str(tmp_path / "run")}
    res = train(cfg)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(r.split(",")[header.index("train/loss")]) for r in rows[1:]
              if r.split(",")[header.index("train/loss")]]
    assert losses[-1] < losses[0]
    prior = load_model(res.last_checkpoint)
    grey = torch.linspace(0, 1, 16).unsqueeze(1).repeat(1, 3)
    assert not torch.allclose(prior.palette, grey)  # fitted and saved with the weights


def test_upsampler_task_is_conditioned_on_the_quantized_ground_truth(tmp_path):
    from torchworks.inpainting.task import InpaintGANTask, InpaintTaskConfig

    prior = build_model("ict_prior_tiny")
    prior.palette.copy_(fit_palette(torch.rand(500, 3), 16))
    save_model(tmp_path / "prior.safetensors", prior)
    task = InpaintGANTask(InpaintTaskConfig(generator="ict_upsampler_tiny", discriminator="lama_discriminator_tiny",
                                            prior=str(tmp_path / "prior.safetensors"), prior_noise=0.0,
                                            perceptual=0.0, crop=32, load_size=40))
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[..., 4:12, 4:20] = 1
    seen = {}
    task.generator.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    task.eval()
    with torch.no_grad():
        task(image, mask)
    x = seen["x"]
    assert x.shape == (2, 7, 32, 32)
    from torchworks.inpainting.ict import prior_image

    expect = prior_image(quantize(downsample(image, 8), prior.palette), prior.palette, 8, (32, 32))
    torch.testing.assert_close(x[:, 4:], expect)


def test_cli_samples_writes_k_distinct_completions_and_refuses_single_answer_methods(tmp_path, monkeypatch, capsys,
                                                                                     photo, hole):
    from PIL import Image

    from torchworks.cli.main import main
    from torchworks.inpainting import learned

    torch.manual_seed(0)
    prior = build_model("ict_prior_tiny")
    prior.palette.copy_(torch.rand(16, 3))
    entry = learned.ICT_SHIPPED["ict_scenes"]
    save_model(tmp_path / entry["prior"], prior)
    save_model(tmp_path / entry["upsampler"], build_model("ict_upsampler_tiny"))
    monkeypatch.setenv("TORCHWORKS_PRETRAINED_DIR", str(tmp_path))
    from torchworks.core.registry import INPAINTERS

    learned._register()
    try:
        Image.fromarray(photo).save(tmp_path / "p.png")
        Image.fromarray(hole).save(tmp_path / "m.png")
        argv = ["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "m.png"), "--method", "ict_scenes",
                "--samples", "3", "--seed", "5", "--dilate", "0", "-o", str(tmp_path / "out.png")]
        assert main(argv) == 0
        paths = [tmp_path / f"out_sample{i}.png" for i in range(3)]
        assert capsys.readouterr().out.split() == [str(p) for p in paths]
        outs = [np.asarray(Image.open(p)) for p in paths]
        assert all(np.array_equal(o[hole == 0], photo[hole == 0]) for o in outs)
        assert len({o[hole > 0].tobytes() for o in outs}) == 3  # three different completions
        assert main(argv[:-8] + ["--seed", "6", "--dilate", "0", "-o", str(tmp_path / "one.png")]) == 0  # = sample 1
        assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), outs[1])
        import sys

        capsys.readouterr()
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # on a terminal: a bar over the passes
        assert main(argv[:-2] + ["-o", str(tmp_path / "bar.png")]) == 0
        err = capsys.readouterr().err
        assert "transformer" in err and "sample 3/3" in err and "24/24" in err  # 3 samples x 8 passes
        assert np.array_equal(np.asarray(Image.open(tmp_path / "bar_sample0.png")), outs[0])  # same fills
        monkeypatch.undo()
        monkeypatch.setenv("TORCHWORKS_PRETRAINED_DIR", str(tmp_path))
        bad = ["inpaint", str(tmp_path / "p.png"), "--mask", str(tmp_path / "m.png"), "--samples", "2", "-o",
               str(tmp_path / "t.png")]
        assert main(bad) == 2 and "applies to pluralistic methods" in capsys.readouterr().err
        assert main([*bad[:-2], "--samples", "0"]) == 2
        assert not list(tmp_path.glob("t*.png"))
    finally:
        INPAINTERS._entries.pop("ict_scenes", None)  # test-only entry; the registry has no public removal
        INPAINTERS._meta.pop("ict_scenes", None)


def test_upsampler_started_from_a_lama_checkpoint_computes_what_the_lama_did(tmp_path):
    # init_from: a LaMa training checkpoint starts an ICT upsampler (7 inputs instead of 4); the prior's 3 input
    # channels start at zero, so before any training the upsampler's output equals the LaMa's on the same input,
    # whatever the prior image; the discriminator is taken over too. A checkpoint of another size is refused.
    from torchworks.core.checkpoint import save_checkpoint
    from torchworks.core.errors import CheckpointError
    from torchworks.inpainting.task import InpaintGANTask, InpaintTaskConfig

    torch.manual_seed(0)
    lama = InpaintGANTask(InpaintTaskConfig(generator="lama_tiny", discriminator="lama_discriminator_tiny",
                                            perceptual=0.0, crop=32, load_size=40))
    with torch.no_grad():  # non-trivial batch-norm statistics, so the copy of every buffer matters
        for m in lama.generator.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    ckpt = save_checkpoint(tmp_path / "lama.ckpt", {"task": lama.state_dict()})
    prior = build_model("ict_prior_tiny")
    prior.palette.copy_(torch.rand(16, 3))
    save_model(tmp_path / "prior.safetensors", prior)
    up = InpaintGANTask(InpaintTaskConfig(generator="ict_upsampler_tiny", discriminator="lama_discriminator_tiny",
                                          prior=str(tmp_path / "prior.safetensors"), perceptual=0.0, crop=32,
                                          load_size=40, init_from=str(ckpt)))
    image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    mask[..., 6:20, 3:15] = 1
    lama.eval(), up.eval()
    with torch.no_grad():
        want = lama(image, mask)
        got = up(image, mask)
        prior_input = up.generator(torch.cat([image * (1 - mask), mask, torch.rand(2, 3, 32, 32)], 1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    torch.testing.assert_close(prior_input, want, rtol=0, atol=1e-6)
    for key, value in lama.discriminator.state_dict().items():
        assert torch.equal(up.discriminator.state_dict()[key], value)
    # the exported generator alone starts the generator the same way
    save_model(tmp_path / "lama_gen.safetensors", lama.generator)
    gen_only = InpaintGANTask(InpaintTaskConfig(
        generator="ict_upsampler_tiny", discriminator="lama_discriminator_tiny",
        prior=str(tmp_path / "prior.safetensors"), perceptual=0.0, crop=32, load_size=40,
        init_from=str(tmp_path / "lama_gen.safetensors")))
    gen_only.eval()
    with torch.no_grad():
        torch.testing.assert_close(gen_only(image, mask), want, rtol=0, atol=1e-6)
    with pytest.raises(CheckpointError, match="does not fit"):
        InpaintGANTask(InpaintTaskConfig(generator="lama_small", discriminator="lama_discriminator_tiny",
                                         perceptual=0.0, crop=32, load_size=40, init_from=str(ckpt)))


def test_generator_recalibration_repairs_stale_batchnorm_statistics(tmp_path):
    # A task whose generator's running statistics are stale (as after a short GAN run): eval-mode fills drift far
    # from the train-mode ones; recalibrate_generator recomputes the statistics on the training stream and the two
    # agree again. The weights do not move, and the task's mode is restored.
    from PIL import Image

    from torchworks.inpainting.task import InpaintGANTask, InpaintTaskConfig

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    torch.manual_seed(0)
    task = InpaintGANTask(InpaintTaskConfig(generator="lama_tiny", discriminator="lama_discriminator_tiny",
                                            perceptual=0.0, data=str(folder), holdout=0, crop=32, load_size=40,
                                            repeat=20, train_masks="medium_256"))
    bns = [m for m in task.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.running_mean.fill_(3.0), m.running_var.fill_(0.05)
    data = task.train_dataset()
    img = torch.stack([data[i][0] for i in range(4)])
    mask = torch.stack([data[i][1] for i in range(4)])

    def gap() -> float:
        with torch.no_grad():
            task.eval()
            ev = task(img, mask)
            task.generator.train()
            tr = task(img, mask)
        return float((ev - tr).abs().mean())

    weights = [p.clone() for p in task.generator.parameters()]
    stale = gap()
    task.train()
    assert task.recalibrate_generator(batches=6, batch_size=8) == len(bns)
    assert task.training and all(torch.equal(a, b) for a, b in zip(weights, task.generator.parameters(), strict=True))
    fixed = gap()
    assert fixed < 0.25 * stale, (stale, fixed)
    with pytest.raises(ValueError, match="need 8000 samples"):
        task.recalibrate_generator(batches=1000, batch_size=8)
