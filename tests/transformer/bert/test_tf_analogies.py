"""Word analogies on all-MiniLM-L6-v2's input embeddings (the real weights, offline) and ``transformer analogies``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torchworks.cli.main import main
from torchworks.transformer.bert.analogies import PAIRS, AnalogySpace, analogy_questions, load_minilm_space


def test_rule_on_a_made_up_space():
    # Two axes (royalty, gender) and a noise axis: king - man + woman lands exactly on queen.
    vecs = {"man": [0, 1, 0.1], "woman": [0, -1, 0.1], "king": [1, 1, 0.1], "queen": [1, -1, 0.1],
            "apple": [0.2, 0.1, 1]}
    words = list(vecs)
    space = AnalogySpace(words, F.normalize(torch.tensor([vecs[w] for w in words]), dim=1),
                         {w: i for i, w in enumerate(words)})
    assert space.solve("man", "king", "woman", k=1)[0][0] == "queen"
    assert space.expression("king - man + woman", k=1)[0][0] == "queen"
    with pytest.raises(ValueError, match="expected 'word"):
        space.expression("king man")
    with pytest.raises(KeyError, match="'prince'"):
        space.expression("prince - man")


@pytest.fixture(scope="module")
def space():
    try:
        return load_minilm_space()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_questions_cover_four_relations():
    questions = analogy_questions()
    assert len(questions) == 4 * 12 * 11 >= 100
    assert {q[0] for q in questions} == set(PAIRS)
    assert ("gender", "man", "woman", "king", "queen") in questions


def test_king_minus_man_plus_woman_is_queen(space):
    assert space.solve("man", "king", "woman")[0][0] == "queen"
    target = space.vector("king") - space.vector("man") + space.vector("woman")
    # Why the query words are excluded: with them, the nearest vector is one of the query words itself.
    assert space.nearest(target, exclude=set(), k=1)[0][0] in {"king", "woman"}


def test_accuracy_and_parallel_offsets_on_the_real_embeddings(space):
    questions = analogy_questions()
    acc, base = space.accuracy(questions), space.accuracy(questions, offset=False)
    assert acc["all"] == (423, 528)  # 80.1 % (pinned weights: a change means the rule or the vocabulary changed)
    assert acc["gender"][0] - base["gender"][0] >= 80  # the offset, not closeness to c, answers these
    assert acc["plural"] == base["plural"] == (132, 132)  # plurals are nearest neighbours anyway
    for rel, pairs in PAIRS.items():
        same, rematched = space.offset_parallelism(pairs)
        assert same > rematched + 0.1, rel


def test_cli(space, tmp_path, capsys):
    out = tmp_path / "fig" / "analogy.png"
    assert main(["transformer", "analogies", "king - man + woman", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("king - man + woman ~ queen") and "423 / 528" in text
    assert out.read_bytes()[:4] == b"\x89PNG"
    for argv, needle in ((["king - man + zzzq"], "'zzzq' is not a whole word"), (["king man"], "expected 'word"),
                         (["king + queen", "--out", str(out)], "'x - y + z'")):
        assert main(["transformer", "analogies", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err


def test_plot_analogy_writes_a_png_atomically(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from torchworks.transformer.bert.analogies import plot_analogy

    words = ["man", "woman", "king", "queen"]
    vecs = F.normalize(torch.tensor([[0, 1, 0.1], [0, -1, 0.1], [1, 1, 0.1], [1, -1, 0.1]]), dim=1)
    space = AnalogySpace(words, vecs, {w: i for i, w in enumerate(words)})
    out = tmp_path / "figs" / "analogy.png"  # the folder is created
    assert plot_analogy(space, *words, out) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["analogy.png"]  # no temporary left beside it

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", fail)
    before = out.read_bytes()
    with pytest.raises(OSError, match="No space left"):
        plot_analogy(space, *words, out)
    assert out.read_bytes() == before and [p.name for p in out.parent.iterdir()] == ["analogy.png"]
