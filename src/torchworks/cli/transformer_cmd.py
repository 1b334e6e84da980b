"""``torchworks generate``, ``torchworks transformer attention|params`` (GPT) and ``torchworks translate``.

Only the standard library is imported at module level so that ``torchworks --help`` stays fast; torch and the
transformer package load inside :func:`run`. Both verbs default to the small character-level Shakespeare GPT
shipped in ``torchworks/transformer/pretrained`` and work offline. User errors (characters outside the
vocabulary, a missing or foreign checkpoint) print one line and exit with 2; a prompt longer than the model's
block size keeps its last ``block_size`` tokens and prints a one-line warning. ``--ckpt`` also takes a nanoGPT
``ckpt.pt`` and ``--from-pretrained`` a Hugging Face GPT-2 folder, both read without running pickled code.
"""

from __future__ import annotations

import argparse
import sys
import warnings

EXIT_USER_ERROR = 2
# torchworks.transformer.gpt.params.PRESETS (named here so that --help needs no torch; a test keeps them equal)
PARAM_PRESETS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-175b")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers the ``generate`` and ``transformer`` verbs."""
    from torchworks.cli._common import add_out, float_in, non_negative_int, out_file, positive_int  # stdlib only

    fmt = argparse.RawDescriptionHelpFormatter
    g = subparsers.add_parser(
        "generate", help="stream text from a GPT checkpoint (default: the shipped Shakespeare char model)",
        formatter_class=fmt,
        description="Continue a prompt with a trained GPT and stream the text to the terminal as it is sampled "
        "(KV-cached decoding; temperature, top-k, top-p, repetition controls, stop string). Past the model's "
        "context the window jumps by --window-shift tokens, so the cache keeps serving long outputs.\n\n"
        "examples:\n"
        '  torchworks generate --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 0\n'
        "  torchworks generate --ckpt out-shakespeare-char/ckpt.pt          # a nanoGPT checkpoint (+ meta.pkl)\n"
        '  torchworks generate --from-pretrained ./gpt2 --prompt "Hello" --repetition-penalty 1.2')
    g.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    _add_ckpt(g)
    g.add_argument("--max-new-tokens", type=positive_int, default=200, help="tokens to generate at most (default 200)")
    g.add_argument("--temperature", type=float_in(0), default=0.8, help="0 = greedy; default 0.8")
    g.add_argument("--top-k", type=non_negative_int, default=40,
                   help="sample among the k most likely tokens (default 40; 0 = off)")
    g.add_argument("--top-p", type=float_in(0, 1, lo_open=True), default=0.95,
                   help="nucleus mass (default 0.95; 1 = off)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument("--stop", action="append", default=[], metavar="STR", help="stop before this string (repeatable)")
    g.add_argument("--no-cache", action="store_true", help="re-run the whole context each step (slower)")
    g.add_argument("--window-shift", type=positive_int, metavar="N",
                   help="once the context is full, jump the window by N tokens (default: a quarter of the "
                   "model's block; 1 = slide one token like nanoGPT, which rebuilds the cache every step)")
    _add_repetition(g)
    g.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")

    tr = subparsers.add_parser(
        "translate", help="translate German to English with the shipped Multi30k Transformer (offline)",
        formatter_class=fmt,
        description="Translate sentences with an encoder-decoder Transformer: beam search (length penalty, KV cache) "
        "or greedy decoding. The default model is the German -> English Multi30k model shipped with the package "
        "(image-caption domain: short descriptions of people and scenes translate best).\n\nexamples:\n"
        '  torchworks translate "Ein Mann fährt Fahrrad."\n'
        "  torchworks translate --file sentences.de -o sentences.en\n"
        "  torchworks translate --file sentences.de --beam 1 > sentences.en\n"
        '  torchworks translate "Zwei Hunde spielen im Schnee." --attention-png attention.png')
    tr.add_argument("sentences", nargs="*", help="sentences to translate (or use --file)")
    tr.add_argument("--file", help="read one sentence per line from this UTF-8 file ('-' = stdin)")
    tr.add_argument("--ckpt", help="translation training checkpoint or export (default: the shipped de->en model)")
    add_out(tr, "write the translations to this file, one per line, instead of stdout")
    tr.add_argument("--beam", type=positive_int, default=4, help="beam size; 1 = greedy (default 4)")
    tr.add_argument("--alpha", type=float_in(0), default=1.4,
                    help="GNMT length penalty exponent of the beam; larger favours longer outputs (default 1.4: "
                    "chosen on Multi30k val for the shipped model, beam 4 BLEU 35.43 vs 34.85 at 0.6)")
    tr.add_argument("--max-new-tokens", type=positive_int,
                    help="longest output in tokens (default: 1.5 x source + 10)")
    _add_repetition(tr)
    tr.add_argument("--attention-png", metavar="PATH", type=out_file,
                    help="also draw the cross-attention of the first sentence's translation (per layer, heads "
                    "averaged) to this PNG; missing parent folders are created")
    tr.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")

    t = subparsers.add_parser("transformer", help="transformer tools (attention maps, parameter counts)")
    tsub = t.add_subparsers(dest="transformer_verb", metavar="ACTION", required=True)
    a = tsub.add_parser("attention", help="write a PNG of per-layer, per-head attention for a prompt",
                        description="Run a GPT on a short text and draw every layer's and head's causal attention "
                        "weights (rows: query position, columns: key position).")
    _add_ckpt(a)
    a.add_argument("--text", required=True, help="the text to attend over (at most block_size tokens are used)")
    add_out(a, "output PNG (default attention.png)", metavar="PNG", default="attention.png")
    a.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads (default 1)")
    pr = tsub.add_parser("params", help="parameter count of GPT-2 / GPT-3 by component (built on the meta device)",
                         description="Build a published GPT size on the meta device (shapes only: no memory for "
                         "weights) and print its parameters by component next to the published total.",
                         formatter_class=fmt, epilog="example:\n  torchworks transformer params --preset gpt3-175b")
    pr.add_argument("--preset", required=True, metavar="NAME", help=f"one of: {', '.join(PARAM_PRESETS)}")
    pr.add_argument("--json", action="store_true", help="print the counts as JSON")
    an = tsub.add_parser("analogies", help="word analogies by vector arithmetic on MiniLM's input embeddings",
                         formatter_class=fmt,
                         description="Vector arithmetic on the pretrained input embeddings of all-MiniLM-L6-v2 "
                         "(offline; the model torchworks embed uses): the nearest words to an expression (its words "
                         "excluded, cosine similarity), the accuracy on 528 analogy questions (capital-country, "
                         "gender, plural, past tense) by the same rule, and how parallel each relation's offsets "
                         "are. --out draws the expression's four words and its two offsets (PCA, 2-D).",
                         epilog='examples:\n  torchworks transformer analogies\n'
                         '  torchworks transformer analogies "paris - france + italy" --out analogy.png')
    an.add_argument("expression", nargs="?", default="king - man + woman",
                    help='words joined by + and - (default "king - man + woman")')
    add_out(an, "also draw the expression's words and offsets to this PNG (an 'x - y + z' expression)",
            metavar="PNG")
    an.add_argument("--json", action="store_true", help="print the results as JSON")


def _add_ckpt(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--ckpt", help="gpt_lm training checkpoint, save_model export with its tokenizer, or a "
                        "nanoGPT ckpt.pt (with meta.pkl beside it or --tokenizer) (default: the shipped Shakespeare "
                        "char model)")
    source.add_argument("--from-pretrained", metavar="DIR", help="a Hugging Face GPT-2 folder (config.json, "
                        "model.safetensors or pytorch_model.bin, tokenizer.json or vocab.json + merges.txt)")
    p.add_argument("--tokenizer", metavar="FILE", help="tokenizer to use instead of the model's: a nanoGPT "
                   "meta.pkl, a torchworks tokenizer JSON or a tokenizers JSON (its vocabulary must fit the model)")


def _add_repetition(p: argparse.ArgumentParser) -> None:
    from torchworks.cli._common import float_in, non_negative_int

    p.add_argument("--repetition-penalty", type=float_in(0, lo_open=True), default=1.0, metavar="F",
                   help="CTRL penalty on tokens already in the text: > 1 discourages repeats (default 1 = off; "
                   "1.1-1.3 is typical)")
    p.add_argument("--no-repeat-ngram", type=non_negative_int, default=0, metavar="N",
                   help="never produce an n-gram of N tokens twice (default 0 = off; 3 is typical)")


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"torchworks: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Runs the chosen verb; returns the exit code (user errors propagate as exceptions)."""
    if args.verb == "transformer" and args.transformer_verb == "params":
        return _params(args)
    if args.verb == "transformer" and args.transformer_verb == "analogies":
        return _analogies(args)
    import torch

    torch.set_num_threads(args.threads)
    warnings.showwarning = _warn_one_line
    if args.verb == "translate":
        return _translate(args)
    from torchworks.transformer.pretrained import load_pretrained

    model, tokenizer = load_pretrained(args.from_pretrained or args.ckpt, tokenizer=args.tokenizer)
    if args.verb != "generate":
        return _attention(args, model, tokenizer)
    try:
        return _generate(args, model, tokenizer)
    except BrokenPipeError:  # `torchworks generate ... | head`: the reader left, which is not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _generate(args: argparse.Namespace, model, tokenizer) -> int:
    import torch

    from torchworks.core.errors import ConfigError
    from torchworks.transformer.gpt.generate import TextStreamer, generate_text

    if any(not s for s in args.stop):
        raise ConfigError("--stop strings must be non-empty")
    block = model.config.block_size
    if args.window_shift is not None and args.window_shift > block:
        raise ConfigError(f"--window-shift must be in [1, {block}] (the model's block size), got {args.window_shift}")
    tokenizer.encode(args.prompt)  # unknown characters fail here, before anything is printed
    generator = torch.Generator().manual_seed(args.seed)
    streamer = _StopAwareStreamer(TextStreamer(tokenizer.decode, write=lambda s: None), args.stop)
    sys.stdout.write(args.prompt)
    generate_text(model, tokenizer, args.prompt, args.max_new_tokens, stop=args.stop or None,
                  temperature=args.temperature, top_k=args.top_k or None,
                  top_p=args.top_p if args.top_p < 1 else None, generator=generator,
                  use_cache=not args.no_cache, window_shift=args.window_shift,
                  repetition_penalty=args.repetition_penalty, no_repeat_ngram_size=args.no_repeat_ngram,
                  on_token=streamer)
    streamer.finish()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


class _StopAwareStreamer:
    """Streams decoded text but holds back a tail that could still become a stop string (so it is never shown)."""

    def __init__(self, streamer, stops: list[str]) -> None:
        self.streamer, self.stops = streamer, stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.shown = 0
        self.done = False

    def __call__(self, token) -> None:
        self.streamer(token)
        text = self.streamer.text
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._show(text[:cut])
            self.done = True
        elif not self.done:
            self._show(text[: max(self.shown, len(text) - self.hold)])

    def _show(self, upto: str) -> None:
        if not self.done and len(upto) > self.shown:
            sys.stdout.write(upto[self.shown:])
            sys.stdout.flush()
            self.shown = len(upto)

    def finish(self) -> None:
        """Write the held-back tail (no stop string appeared)."""
        if not self.done:
            self._show(self.streamer.text)


def _attention(args: argparse.Namespace, model, tokenizer) -> int:
    import torch

    from torchworks.transformer.gpt.plots import plot_attention

    ids = tokenizer.encode(args.text)
    if not ids:
        from torchworks.core.errors import ConfigError

        raise ConfigError("--text encodes to no tokens; give at least one character")
    block = model.config.block_size
    if len(ids) > block:
        warnings.warn(f"text of {len(ids)} tokens exceeds block_size {block}; using the last {block}", stacklevel=1)
        ids = ids[-block:]
    maps = model.attention_maps(torch.tensor([ids]))
    labels = [tokenizer.decode([i]) for i in ids]
    path = plot_attention([m[0] for m in maps], labels, args.out)
    print(f"wrote {path} ({len(maps)} layers x {maps[0].shape[1]} heads, {len(ids)} tokens)")
    return 0


def _read_sentences(args: argparse.Namespace) -> list[str]:
    from torchworks.core.errors import ConfigError

    sentences = list(args.sentences)
    if args.file:
        from torchworks.cli._common import read_text

        text = sys.stdin.read() if args.file == "-" else read_text(args.file, "--file", "a UTF-8 text file")
        sentences += [line.strip() for line in text.splitlines()]
    if not sentences:
        raise ConfigError("nothing to translate: give sentences as arguments or --file")
    if any(not s.strip() for s in sentences):
        raise ConfigError("empty sentence in the input (blank lines are not allowed)")
    return sentences


def _translate(args: argparse.Namespace) -> int:
    from torchworks.core.errors import ConfigError

    sentences = _read_sentences(args)
    from torchworks.transformer.seq2seq.data import load_translator, translate

    model, tokenizer = load_translator(args.ckpt)
    limit = model.config.max_len - 1
    if args.max_new_tokens is not None and not 1 <= args.max_new_tokens <= limit:
        raise ConfigError(f"--max-new-tokens must be in [1, {limit}], got {args.max_new_tokens}")
    outputs = translate(model, tokenizer, sentences, beam_size=args.beam, alpha=args.alpha,
                        max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                        no_repeat_ngram_size=args.no_repeat_ngram)
    if args.out is not None:
        from torchworks.cli._common import atomic_write_bytes

        atomic_write_bytes(args.out, "".join(f"{line}\n" for line in outputs).encode("utf-8"))
        print(f"wrote {args.out} ({len(outputs)} translations)", file=sys.stderr)
    else:
        for line in outputs:
            print(line)
    if args.attention_png:
        from torchworks.transformer.seq2seq.plots import plot_cross_attention

        path = plot_cross_attention(model, tokenizer, sentences[0], outputs[0], args.attention_png)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _params(args: argparse.Namespace) -> int:
    import json

    from torchworks.transformer.gpt.params import PRESETS, build_on_meta, count_params, preset_config

    cfg = preset_config(args.preset)  # ValueError naming the known presets
    model = build_on_meta(cfg)
    counts, preset = count_params(model), PRESETS[args.preset]
    if args.json:
        print(json.dumps({"preset": args.preset, "config": {k: getattr(cfg, k) for k in (
            "vocab_size", "block_size", "n_layer", "n_head", "n_embd")}, "published": preset.published,
            "source": preset.source, **{name: n for name, n in counts.rows()}}, indent=1))
        return 0
    head_dim = cfg.n_embd // cfg.n_head
    print(f"{args.preset}: {cfg.n_layer} blocks of {cfg.n_head} heads x {head_dim} dims (d_model {cfg.n_embd}), "
          f"vocabulary {cfg.vocab_size}, context {cfg.block_size}; built on the meta device "
          f"(0 bytes of weights; {4 * counts.total / 1e9:,.1f} GB in float32)")
    for name, n in counts.rows():
        print(f"  {name:<28} {n:>17,}  {100 * n / counts.total:6.2f} %")
    counted = f"{counts.total / 1e9:.1f}B" if counts.total >= 1e10 else f"{counts.total / 1e6:,.1f}M"
    print(f"  published: {preset.published} ({preset.source}); counted here: {counted}")
    return 0


def _analogies(args: argparse.Namespace) -> int:
    import json

    from torchworks.transformer.bert.analogies import PAIRS, analogy_questions, load_minilm_space, plot_analogy

    words = args.expression.lower().replace("+", " + ").replace("-", " - ").split()
    if args.out is not None and (len(words) != 5 or words[1] != "-" or words[3] != "+"):
        raise ValueError(f"--out draws an 'x - y + z' expression; got {args.expression!r}")
    space = load_minilm_space()
    try:
        nearest = space.expression(args.expression)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    questions = analogy_questions()
    acc, base = space.accuracy(questions), space.accuracy(questions, offset=False)
    parallel = {rel: space.offset_parallelism(pairs) for rel, pairs in PAIRS.items()}
    if args.json:
        print(json.dumps({"expression": args.expression, "nearest": nearest, "accuracy": acc,
                          "baseline_nearest_to_c": base, "offset_cosine": parallel}, indent=1))
    else:
        print(f"{args.expression} ~ " + ", ".join(f"{w} ({c:.3f})" for w, c in nearest))
        print(f"analogies a : b :: c : ? answered by the word nearest to b - a + c (cosine, a, b, c excluded), "
              f"{len(space.words):,} candidate words (MiniLM input embeddings):")
        for rel, (right, asked) in acc.items():
            b_right = base[rel][0]
            print(f"  {rel:<16} {right:>3} / {asked:<3} = {100 * right / asked:5.1f} %   (nearest to c alone: "
                  f"{100 * b_right / asked:5.1f} %)")
        print("offsets b - a of a relation's pairs: mean cosine between pairs (re-matched pairs):")
        for rel, (same, other) in parallel.items():
            print(f"  {rel:<16} {same:.3f} ({other:.3f})")
    if args.out is not None:
        y, x, z = words[2], words[0], words[4]
        path = plot_analogy(space, y, x, z, nearest[0][0], args.out)
        print(f"wrote {path}", file=sys.stderr)
    return 0
