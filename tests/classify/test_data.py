"""The one train/validation split, the uint8 data sets and normalisation shared by every image classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchworks.classify.data import (
    DATASETS,
    SPLIT_SEED,
    ClassificationData,
    TensorImages,
    normalize,
    split_indices,
    synthetic_bands,
    synthetic_textures,
)
from torchworks.data.cifar import CIFARDataset


def test_split_is_the_fixed_permutation_of_seed_12345():
    train, val = split_indices(40, holdout=10, train_limit=20)
    order = np.random.default_rng(12345).permutation(40)  # written out: last 10 validate, first 20 of the rest train
    assert SPLIT_SEED == 12345
    assert train.tolist() == sorted(order[:20].tolist()) and val.tolist() == sorted(order[30:].tolist())
    assert not set(train) & set(val)
    assert val.max() - val.min() > 10  # a shuffled holdout, not the last images (one class of a class-major copy)
    full, none = split_indices(40, holdout=0)
    assert full.tolist() == list(range(40)) and none.size == 0
    assert np.array_equal(split_indices(40, 10, 20)[0], train)  # independent of any global seed


@pytest.mark.parametrize(("args", "match"), [((8, 8), "leaves no training images"), ((8, -1), "holdout >= 0"),
                                             ((8, 1, 0), "train_limit >= 1")])
def test_split_refuses_impossible_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        split_indices(*args)


def test_data_splits_and_the_shuffled_test_set_as_validation():
    data = ClassificationData("synthetic", holdout=10, train_limit=20, synthetic_size=40, return_index=True)
    train, val, test = data.train(), data.val(), data.test()
    images, labels = data.arrays("train")
    idx = split_indices(40, 10, 20)[0]
    assert len(train) == 20 and len(val) == 10 and len(test) == 40 and data.num_train_total == 40
    x, y, i = train[3]
    assert int(i) == idx[3] and torch.equal(x, images[idx[3]]) and int(y) == int(labels[idx[3]])
    assert len(val[0]) == 2 and len(test[0]) == 2  # only training items carry the index
    on_test = ClassificationData("synthetic", holdout=0, synthetic_size=40).val()
    perm = np.random.default_rng(SPLIT_SEED).permutation(40)
    assert torch.equal(on_test.labels, data.arrays("test")[1][perm])  # the test set, in a fixed mixed order
    with pytest.raises(ValueError, match="dataset must be one of"):
        ClassificationData("imagenet")


def test_tensor_images_batch_fetch_equals_item_fetch():
    images = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    ds = TensorImages(images, torch.arange(6), index=torch.arange(10, 16))
    items = ds.__getitems__([4, 1])
    for got, i in zip(items, (4, 1), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(got, ds[i], strict=True))
    assert ds[1][2] == 11
    with pytest.raises(ValueError, match="uint8"):
        TensorImages(images.float(), torch.arange(6))


def test_synthetic_sets_are_what_their_labels_say():
    images, labels = synthetic_bands(12, seed=0)
    bands = np.array_split(np.arange(32), 10)
    for img, y in zip(images, labels, strict=True):
        assert (img[:, bands[y]] == 255).all()
    tex, tlab = synthetic_textures(40, seed=1)
    assert tex.shape == (40, 1, 8, 8) and set(tlab.tolist()) <= {0, 1, 2, 3}
    stripes = tex[tlab == 0][:, 0]  # horizontal stripes: even rows bright (>= 155), odd rows noise (< 100)
    assert (stripes[:, ::2] >= 155).all() and (stripes[:, 1::2] < 100).all()
    assert DATASETS["synthetic"].num_classes == 10 and DATASETS["synthetic_textures"].num_classes == 4


def test_normalize_matches_the_cifar_dataset_bit_for_bit():
    """The resnet teachers were trained and evaluated on CIFARDataset's per-image normalisation; the shared data
    path must give the same floats, so their test accuracy is unchanged."""
    images, labels = synthetic_bands(16, seed=3)
    ref = torch.stack([CIFARDataset(images, labels)[i][0] for i in range(16)])
    ours = normalize(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), "cifar10")
    assert torch.equal(ours, ref)
