"""BERT results: re-evaluate the pre-training and fine-tuning checkpoints and rewrite the ``## BERT`` section of
docs/results/transformer.md (only the text between ``<!-- bert:start -->`` and ``<!-- bert:end -->``).

Each run is rebuilt from the config stored in its checkpoint (``best.ckpt``; data, article split and vocabulary
are deterministic) and scored on its held-out **test** split:

* ``bert_pretrain``: MLM accuracy pooled over every masked position (fixed, seeded masks) and NSP accuracy over
  every pair of the test articles; the validation split too, and the validation curve from ``metrics.csv``.
* ``bert_classify``: accuracy on Multi30k test2016 (4 x 1,000 captions) against the majority class and a
  character 1-3-gram Naive Bayes trained on the same training sentences (raw text, accents kept).
* ``bert_classify`` with ``kind: translation_pair``: accuracy of English-German translation-pair detection on
  test2016 (each English caption with its German translation and with a random other one) against the majority
  class and a character-trigram overlap threshold fitted on the training pairs.
* ``bert_tag``: word accuracy of the case tags on the test articles against most-frequent-tag-per-word, with
  per-tag recall (a baseline that says "lower" everywhere already gets most words right).

Training CPU/wall seconds come from ``/usr/bin/time`` output (``CPU_USER u CPU_SYS s WALL w``) in
``<run_dir>/time.txt`` or ``runs/bert_logs/<run name>.log``.

Every evaluation is kept in ``results/bert.json`` (beside this script), so the section can be rewritten when some
runs are gone (``runs/`` is not committed): a run found under ``runs/`` is evaluated afresh and replaces its
stored entry, a missing one is taken from the store, and with neither the document is left untouched. Usage::

    nice -n 15 python benchmarks/transformer/bench_bert.py            # all runs under runs/
    python benchmarks/transformer/bench_bert.py --dry-run             # print the section instead of writing it
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "results" / "transformer.md"
LONG_STORE = ROOT / "benchmarks" / "transformer" / "results" / "bert_pretrain_long.json"
STORE = ROOT / "benchmarks" / "transformer" / "results" / "bert.json"
RUNS = {"pretrain": "runs/bert_pretrain_small", "classify": "runs/bert_classify_langid",
        "pairs": "runs/bert_classify_pairs", "tag": "runs/bert_tag_case", "tag_scratch": "runs/bert_tag_case_scratch",
        "tag_minilm": "runs/bert_tag_case_minilm", "pairs_minilm": "runs/bert_classify_pairs_minilm"}
CONFIGS = {"pretrain": "configs/bert_pretrain_small.yaml", "classify": "configs/bert_classify_langid.yaml",
           "pairs": "configs/bert_classify_pairs.yaml", "tag": "configs/bert_tag_case.yaml",
           "tag_scratch": "configs/bert_tag_case.yaml", "tag_minilm": "configs/bert_tag_case_minilm.yaml",
           "pairs_minilm": "configs/bert_classify_pairs_minilm.yaml"}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rebuild(run_dir: Path):
    """(task with the best checkpoint's weights, checkpoint state)."""
    import torchworks.transformer.bert.finetune  # noqa: F401  (registers the tasks)
    import torchworks.transformer.bert.task  # noqa: F401
    from torchworks.core.checkpoint import load_checkpoint, load_weights
    from torchworks.core.registry import TASKS
    from torchworks.engine.config import load_run_config

    ckpt = run_dir / "checkpoints" / "best.ckpt"
    state = load_checkpoint(ckpt)
    run_cfg, task_cfg = load_run_config(state["config"])
    task_cfg = task_cfg.for_checkpoint(ckpt)  # a vocabulary learned at start-up: the run's own, not a relearned one
    task = TASKS.get(run_cfg.task["name"])(task_cfg, data_dir=run_cfg.data_dir)
    load_weights(task, state["task"], source=str(ckpt))
    return task.eval(), state


def train_times(run_dir: Path) -> dict[str, float] | None:
    for path in (run_dir / "time.txt", ROOT / "runs" / "bert_logs" / f"{run_dir.name}.log"):
        if path.is_file():
            m = re.search(r"CPU_USER (\S+) CPU_SYS (\S+) WALL (\S+)", path.read_text(errors="replace"))
            if m:
                return {"cpu": float(m[1]) + float(m[2]), "wall": float(m[3])}
    return None


def val_curve(run_dir: Path, keys: tuple[str, ...]) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as fh:
        return [r for r in csv.DictReader(fh) if r.get(keys[0])]


def tuning_runs() -> list[dict]:
    """Pre-training runs stopped early while choosing the learning rate (``runs/bert_pretrain_small_<x>``)."""
    import yaml

    out = []
    for run_dir in sorted((ROOT / "runs").glob("bert_pretrain_small_*")):
        times, rows = train_times(run_dir), val_curve(run_dir, ("val/mlm_acc",))
        if not times or not rows:
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        with open(run_dir / "metrics.csv") as fh:
            last_step = max(int(r["step"]) for r in csv.DictReader(fh))
        at250 = [r for r in rows if int(r["step"]) == 250]
        out.append({"name": run_dir.name, "lr": cfg["task"]["lr"], "dropout": cfg["task"]["model_args"]["dropout"],
                    "step": last_step, "mlm250": float(at250[0]["val/mlm_acc"]) if at250 else float("nan"),
                    "mlm": float(rows[-1]["val/mlm_acc"]), "nsp": float(rows[-1]["val/nsp_acc"]),
                    "eval_step": int(rows[-1]["step"]), "cpu": times["cpu"]})
    return out


def _acc(pred, true) -> float:
    return sum(p == t for p, t in zip(pred, true, strict=True)) / len(true)


def _overlap(item: dict, sep: int) -> float:
    ids = item["input_ids"]
    s = ids.index(sep)
    a, b = set(ids[1:s]), set(ids[s + 1:-1])
    return len(a & b) / max(1, len(a | b))


def nsp_overlap_baseline(task) -> dict:
    """NSP by lexical overlap: "random" when the Jaccard overlap of A's and B's piece sets is below a threshold
    fitted on the training pairs (held-out masks do not matter: [MASK] is one piece in both segments)."""
    train = [(_overlap(it, task.sep_id), it["nsp_label"]) for it in task.train_dataset().items]
    fit = max((sum((o < th) == bool(y) for o, y in train) / len(train), th) for th in [k / 200 for k in range(120)])
    test = [(_overlap(it, task.sep_id), it["nsp_label"]) for it in task.test_dataset().items]
    test_acc = sum((o < fit[1]) == bool(y) for o, y in test) / len(test)
    return {"threshold": fit[1], "train_acc": fit[0], "test_acc": test_acc}


def bench_pretrain(run_dir: Path) -> dict:
    task, state = rebuild(run_dir)
    t = _cpu()
    out = {split: task.evaluate(split) for split in ("val", "test")}
    out["eval_cpu"] = _cpu() - t
    out["overlap"] = nsp_overlap_baseline(task)
    from collections import Counter

    specials = task.tokenizer.special_ids
    counts = Counter(t for it in task.train_dataset().items for t in it["input_ids"] if t not in specials)
    top = counts.most_common(1)[0][0]
    labels = [y for it in task.test_dataset().items for y in it["mlm_labels"] if y != -100]
    out["unigram"] = {"token": task.tokenizer.id_to_token(top), "test_acc": sum(y == top for y in labels) / len(labels)}
    out["step"], out["params"] = state["step"], sum(p.numel() for p in task.model.parameters())
    out["vocab"], out["articles"] = task.tokenizer.vocab_size, {k: len(v) for k, v in task.split.items()}
    out["train_pairs"] = len(task.train_dataset())
    out["curve"] = [(int(r["step"]), float(r["val/mlm_acc"]), float(r["val/nsp_acc"]))
                    for r in val_curve(run_dir, ("val/mlm_acc",))]
    out["cfg"] = state["config"]
    return out


def bench_classify(run_dir: Path) -> dict:
    from torchworks.transformer.bert.finetune import CharNgramNaiveBayes

    task, state = rebuild(run_dir)
    t = _cpu()
    pred = task.predict("test")
    cpu = _cpu() - t
    texts, true = task.data["test"]
    train_texts, train_labels = task.data["train"]
    t = _cpu()
    nb = CharNgramNaiveBayes().fit(train_texts, train_labels)
    nb_acc = _acc(nb.predict(texts), true)
    nb_cpu = _cpu() - t
    majority = max(set(train_labels), key=train_labels.count)
    return {"acc": _acc(pred, true), "n": len(true), "eval_cpu": cpu, "nb_acc": nb_acc, "nb_cpu": nb_cpu,
            "majority_acc": _acc([majority] * len(true), true), "step": state["step"],
            "errors": [(texts[i], task.cfg.languages[true[i]], task.cfg.languages[pred[i]])
                       for i in range(len(true)) if pred[i] != true[i]][:5],
            "train_n": len(train_texts), "init_from": task.cfg.init_from, "cfg": state["config"]}


def bench_pairs(run_dir: Path) -> dict:
    from torchworks.transformer.bert.finetune import OverlapThreshold

    task, state = rebuild(run_dir)
    t = _cpu()
    pred = task.predict("test")
    cpu = _cpu() - t
    pairs, true = task.data["test"]
    train_pairs, train_labels = task.data["train"]
    t = _cpu()
    overlap = OverlapThreshold().fit(train_pairs, train_labels)
    base_acc = _acc(overlap.predict(pairs), true)
    base_cpu = _cpu() - t
    return {"acc": _acc(pred, true), "n": len(true), "eval_cpu": cpu, "base_acc": base_acc, "base_cpu": base_cpu,
            "threshold": overlap.threshold, "majority_acc": _acc([1] * len(true), true), "step": state["step"],
            "errors": [(pairs[i], true[i]) for i in range(len(true)) if pred[i] != true[i]][:4],
            "train_n": len(train_pairs), "languages": task.cfg.languages, "init_from": task.cfg.init_from}


def bench_tag(run_dir: Path) -> dict:
    from torchworks.transformer.bert.finetune import TAGS, MostFrequentTag, case_tag

    task, state = rebuild(run_dir)
    t = _cpu()
    pred, true = task.predict("test")
    cpu = _cpu() - t
    words = [w for doc in task.words["test"] for s in doc for w in s if case_tag(w) is not None]
    train_words = [w for doc in task.words["train"] for s in doc for w in s if case_tag(w) is not None]
    assert len(words) == len(true)
    base = MostFrequentTag().fit(train_words, [case_tag(w) for w in train_words]).predict(words)

    def recall(p, tag):
        hits = [a == b for a, b in zip(p, true, strict=True) if b == tag]
        return sum(hits) / len(hits) if hits else float("nan")

    return {"acc": _acc(pred, true), "base_acc": _acc(base, true), "n": len(true), "eval_cpu": cpu,
            "recall": {TAGS[k]: (recall(pred, k), recall(base, k), sum(t == k for t in true)) for k in range(4)},
            "lower_acc": _acc([0] * len(true), true), "step": state["step"], "init_from": task.cfg.init_from,
            "cfg": state["config"]}


def _cpu_min(r: dict) -> str:
    t = r.get("times")
    return f"{t['cpu'] / 60:.1f}" if t else "n/a"


def pretrain_lines(p: dict, times: dict | None, config: str, title: str = "MLM + NSP pre-training from scratch "
                   "(`bert_pretrain`)") -> list[str]:
    """The pre-training subsection: setup, held-out table, NSP verdict, baselines, validation curve, times."""
    task = p["cfg"]["task"]
    batch = p["cfg"]["trainer"]["batch_size"]
    lines = [f"### {title}", "", "```bash", f"torchworks train {config} --threads 1", "```", "",
             f"`{task['model']}` with {task.get('model_args')}: {p['params'] / 1e6:.2f}M parameters; "
             f"WordPiece vocabulary of {p['vocab']:,} pieces learned on the training articles; WikiText-2 "
             f"(valid + test files) split by article {p['articles']['train']}/{p['articles']['val']}/"
             f"{p['articles']['test']}; {p['train_pairs']:,} training pairs of <= {task['max_len']} pieces "
             f"({task['dupe_factor']} pairing rounds), batch {batch}, "
             f"{p['step']} steps, lr {task['lr']} (warm-up {task['warmup_steps']}, cosine).", "",
             "| split | pairs | masked pieces | MLM accuracy (masked positions) | NSP accuracy | random-B share |",
             "|---|---|---|---|---|---|"]
    for split in ("val", "test"):
        e = p[split]
        lines.append(f"| {split} (held-out articles) | {e['pairs']} | {e['masked_tokens']:,} | "
                     f"**{e['mlm_acc']:.3f}** | **{e['nsp_acc']:.3f}** | {e['nsp_random_share']:.3f} |")
    e, o = p["test"], p["overlap"]
    pieces = batch * task["max_len"] * p["step"]
    seen = (f"the run saw about {pieces / 1e6:.0f}M pieces (batch {batch} x {task['max_len']} x {p['step']:,} "
            f"steps), 1/{131e9 / pieces:,.0f} of BERT-base's pre-training (1M steps of 256 x 512; Devlin et al. "
            "2019)")
    const = {k: max(p[k]["nsp_random_share"], 1 - p[k]["nsp_random_share"]) for k in ("val", "test")}
    above = {k: p[k]["nsp_acc"] > const[k] + 0.02 for k in ("val", "test")}
    if not any(above.values()):
        lines += ["", "**NSP was not learned in this budget**: its accuracy is that of always answering the more "
                  f"frequent label (val {const['val']:.3f}, test {const['test']:.3f}). MLM learns, but slowly: "
                  f"{seen}, and NSP usually leaves its plateau only after MLM has built topic-aware "
                  "representations."]
    else:
        left = next((s for s, _, n in p["curve"] if abs(n - 0.5) > 0.03), None)
        verdict = "; ".join(f"{k} {p[k]['nsp_acc']:.3f} against {const[k]:.3f} for the best constant answer"
                            for k in ("val", "test"))
        head = "NSP is learned" if all(above.values()) else "NSP starts to leave chance"
        lines += ["", f"**{head}** (validation NSP first more than 3 points from 0.5 at step "
                  f"{left}): {verdict}" + ("" if all(above.values()) else
                                            f" (not yet on {'test' if above['val'] else 'val'})")
                  + f"; {'below' if e['nsp_acc'] < o['test_acc'] else 'above'} the lexical-overlap rule's "
                  f"{o['test_acc']:.3f} on test. {seen[0].upper()}{seen[1:]}."]
    lines += ["", "Reference points: NSP chance is 0.5 (labels balanced by construction); a lexical-overlap rule "
              "(\"random\" when the Jaccard overlap of A's and B's piece sets is below "
              f"{o['threshold']:.3f}, fitted on the training pairs) scores **{o['test_acc']:.3f}** on the test "
              f"pairs. MLM: always predicting the most frequent training piece (\"{p['unigram']['token']}\") "
              f"scores {p['unigram']['test_acc']:.3f} on the test masks.", "",
              "| step | val MLM acc | val NSP acc |", "|---|---|---|"]
    lines += [f"| {s} | {m:.3f} | {n:.3f} |" for s, m, n in p["curve"]]
    cells = f"{times['cpu'] / 60:.1f} CPU-min, {times['wall'] / 60:.1f}" if times else "n/a CPU-min, n/a"
    lines += ["", f"Training: {cells} wall-min. Held-out evaluation (val + test): {p['eval_cpu']:.1f} CPU-s.", ""]
    return lines


def render(res: dict) -> str:
    m = Machine.measure(threads=1)
    lines = ["## BERT", "",
             f"Machine: {m.arch} {m.cpu}, {m.cores} cores, torch {m.torch}, 1 thread per run, "
             "`nice -n 15`; generated by `python benchmarks/transformer/bench_bert.py` on "
             f"{time.strftime('%Y-%m-%d')} from "
             "the `best.ckpt` of each run (each task rebuilt from the config stored in its checkpoint, scored on "
             "its held-out **test** split). Training times are whole-process `/usr/bin/time` user+sys and wall "
             "minutes; the machine was shared with other training runs, so wall times are inflated "
             "(CPU minutes are the comparable number).", ""]
    p = res.get("pretrain")
    if p:
        lines += pretrain_lines(p, p.get("times"), "configs/bert_pretrain_small.yaml")
        tried = res.get("_tuning")
        if tried:
            lines += ["Learning-rate choice: these runs of the same recipe were stopped early once the one above led "
                      "at the same step (their CPU time is counted in the total below):", "",
                      "| run | lr | dropout | stopped at step | val MLM acc at step 250 | val MLM acc (last eval) "
                      "| val NSP acc (last eval) | CPU-min |", "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {r['name']} | {r['lr']} | {r['dropout']} | {r['step']} | {r['mlm250']:.3f} | "
                      f"{r['mlm']:.3f} (step {r['eval_step']}) | {r['nsp']:.3f} | {r['cpu'] / 60:.1f} |" for r in tried]
            lines.append("")
    c = res.get("classify")
    if c:
        lines += ["### [CLS] classification: language identification of Multi30k captions (`bert_classify`)", "",
                  "```bash", "torchworks train configs/bert_classify_langid.yaml --threads 1", "```", "",
                  "Why this task: real labels at no annotation cost, four classes, and a classic, strong baseline. "
                  f"Training: {c['train_n']:,} captions ({c['train_n'] // 4:,} per language from disjoint line "
                  "ranges of Multi30k train, so no caption is seen in two languages); test: test2016, all 4 x "
                  "1,000. The encoder starts from the pre-training checkpoint and sees lower-cased, "
                  "accent-stripped text (BERT-uncased normalisation), which removes cues such as ä/é/č that the "
                  "Naive Bayes baseline keeps.", "",
                  "| model | test accuracy | CPU |", "|---|---|---|",
                  f"| majority class | {c['majority_acc']:.4f} | - |",
                  f"| char 1-3-gram Naive Bayes (raw text) | {c['nb_acc']:.4f} | {c['nb_cpu']:.1f} s fit + predict |",
                  f"| BERT [CLS] fine-tuned ({c['step']} steps) | **{c['acc']:.4f}** | train "
                  f"{_cpu_min(c)} CPU-min, predict {c['eval_cpu']:.1f} s |", ""]
        verdict = ("beats" if c["acc"] > c["nb_acc"] else "does **not** beat")
        lines += [f"The fine-tuned [CLS] head beats the majority class by a wide margin but {verdict} the character "
                  "n-gram Naive Bayes, which is at or near the ceiling on this test set: language identification of "
                  "full captions is nearly solved by character statistics, and BERT-uncased normalisation throws "
                  "some of them away.", ""]
        if c["errors"]:
            lines += ["Errors (text, true, predicted): " + "; ".join(f"\"{t}\" {a}->{b}" for t, a, b in c["errors"]),
                      ""]
    c = res.get("pairs") or res.get("pairs_minilm")
    if c:
        la, lb = c["languages"]
        lines += ["### [CLS] sentence-pair classification: translation detection on Multi30k (`bert_classify`, "
                  "`kind: translation_pair`)", "",
                  "```bash", "torchworks train configs/bert_classify_pairs.yaml --threads 1", "```", "",
                  f"Why this task: language identification is solved by character statistics (above), so the "
                  f"harder test is a sentence-pair task in the style of MRPC: segment A is an {la} caption, "
                  f"segment B a {lb} caption, label 1 when B is A's translation and 0 when it translates a random "
                  "other caption (every A appears once with each label, so neither segment alone tells the "
                  "answer). Real labels (Multi30k's parallel lines), balanced classes; the model must relate "
                  "words across languages it was never pre-trained on. "
                  f"Training: {c['train_n']:,} pairs from Multi30k train; test: test2016, {c['n']:,} pairs.", "",
                  "| model | test accuracy | CPU |", "|---|---|---|",
                  f"| majority class | {c['majority_acc']:.4f} | - |",
                  f"| char-trigram overlap >= {c['threshold']:.3f} (fitted on the training pairs) | "
                  f"{c['base_acc']:.4f} | {c['base_cpu']:.1f} s fit + predict |",
                  ]
        for key, title in (("pairs", "our bert_tiny (WikiText pre-training)"),
                           ("pairs_minilm", "all-MiniLM-L6-v2 (`configs/bert_classify_pairs_minilm.yaml`)")):
            r = res.get(key)
            if r:
                lines.append(f"| BERT [CLS] fine-tuned from {title}, {r['step']} steps | **{r['acc']:.4f}** | train "
                             f"{_cpu_min(r)} CPU-min, predict {r['eval_cpu']:.1f} s |")
        lines.append("")
        for key, title in (("pairs", "from bert_tiny"), ("pairs_minilm", "from MiniLM")):
            r = res.get(key)
            if r:
                verdict = "beats" if r["acc"] > r["base_acc"] else "does **not** beat"
                lines += [f"The pair classifier fine-tuned {title} {verdict} the lexical-overlap rule "
                          f"({100 * (r['acc'] - r['base_acc']):+.1f} points).", ""]
        if c["errors"]:
            lines += ["Errors (A | B, true label): " + "; ".join(f"\"{a}\" | \"{b}\" ({y})" for (a, b), y in
                                                               c["errors"]), ""]
    for key, title in (("tag", "from the pre-trained checkpoint"), ("tag_scratch", "from scratch (same recipe)"),
                       ("tag_minilm", "from all-MiniLM-L6-v2 (`configs/bert_tag_case_minilm.yaml`)")):
        t = res.get(key)
        if not t:
            continue
        if key == res.get("_first_tag"):
            lines += ["### Token tagging: capitalisation restoration (`bert_tag`)", "",
                      "```bash", "torchworks train configs/bert_tag_case.yaml --threads 1", "```", "",
                      "Why this task: the labels come for free from real text and need context: the encoder reads "
                      "lower-cased WikiText and tags each word lower / Title / UPPER / mIxed (predicted on its first "
                      "piece; words without letters and `[UNK]` are not scored). A word-identity baseline cannot "
                      "know that \"the\" starts a sentence or that \"may\" is a month; the test articles are the "
                      "pre-training test articles, never seen by our encoder (MiniLM's pre-training corpus includes "
                      "English Wikipedia, so it may have read them, lower-cased: it never saw their case).", "",
                      "| model | test word accuracy | recall lower / Title / UPPER / mIxed | CPU |",
                      "|---|---|---|---|",
                      f"| all lower | {t['lower_acc']:.4f} | 1 / 0 / 0 / 0 | - |",
                      "| most frequent tag per word (train articles) | "
                      f"{t['base_acc']:.4f} | " + " / ".join(f"{v[1]:.3f}" for v in t["recall"].values()) + " | - |"]
        lines.append(f"| BERT tagger {title}, {t['step']} steps | **{t['acc']:.4f}** | "
                     + " / ".join(f"{v[0]:.3f}" for v in t["recall"].values())
                     + f" | train {_cpu_min(t)} CPU-min |")
    if res.get("_first_tag"):
        first = res[res["_first_tag"]]
        counts = ", ".join(f"{k} {v[2]:,}" for k, v in first["recall"].items())
        lines += ["", f"{first['n']:,} scored test words ({counts}).", ""]
        for key in ("tag", "tag_scratch", "tag_minilm"):
            if res.get(key) and res[key]["n"] != first["n"]:
                lines += [f"(The `{key}` run scores {res[key]['n']:,} words: its tokenizer leaves a different set of "
                          "words unscored as `[UNK]`.)", ""]
    total = res.get("_total")
    if total:
        lines += [f"Total training CPU time of every BERT training process, stopped ones included "
                  f"({', '.join(total['runs'])}): {total['cpu'] / 60:.1f} minutes.", ""]
    return "\n".join(lines)


def total_training_cpu() -> dict | None:
    """CPU seconds of every BERT training process that left a ``/usr/bin/time`` log in ``runs/bert_logs``."""
    logs = sorted((ROOT / "runs" / "bert_logs").glob("*.log"))
    times = {p.stem: train_times(ROOT / "runs" / p.stem) for p in logs}
    times = {k: t for k, t in times.items() if t}
    return {"runs": sorted(times), "cpu": sum(t["cpu"] for t in times.values())} if times else None


def merge_with_store(fresh: dict, stored: dict) -> tuple[dict, list[str]]:
    """``fresh`` results completed by ``stored`` ones for runs that are gone; returns (results, reused keys).

    A run evaluated now replaces its stored entry; the tuning table and the CPU total are taken from whichever
    side measured more runs, so a partial re-run never shrinks them."""
    res = dict(fresh)
    reused = [k for k in RUNS if k not in fresh and k in stored]
    for key in reused:
        res[key] = stored[key]
    for key, size in (("_tuning", len), ("_total", lambda t: len(t["runs"]))):
        cands = [d[key] for d in (fresh, stored) if d.get(key)]
        if cands:
            res[key] = max(cands, key=size)
    return res, reused


def long_run(run_dir: Path, doc: Path, dry_run: bool) -> None:
    """Evaluates the long pre-training run (or reuses its stored numbers when the run is gone) and writes its
    section ``bert_long``."""
    if (run_dir / "checkpoints" / "best.ckpt").is_file():
        p = bench_pretrain(run_dir)
        p["times"] = train_times(run_dir)
        LONG_STORE.write_text(json.dumps(p, indent=1) + "\n")
    else:
        p = json.loads(LONG_STORE.read_text())
        print(f"{run_dir} is gone: the numbers stored in {LONG_STORE.name}")
    title = f"Longer pre-training: does NSP leave chance? ({p['step']:,} steps)"
    text = "\n".join(pretrain_lines(p, p["times"], "configs/bert_pretrain_long.yaml", title))
    if dry_run:
        print(text)
    else:
        write_section(doc, "bert_long", text)
        print(f"wrote the long pre-training section of {doc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for key, default in RUNS.items():
        ap.add_argument(f"--{key.replace('_', '-')}", default=default, help=f"run directory (default {default})")
    ap.add_argument("--long", metavar="RUN_DIR", help="only the long pre-training run "
                    "(configs/bert_pretrain_long.yaml): its own section after the BERT one, its numbers kept in "
                    "results/bert_pretrain_long.json")
    ap.add_argument("--doc", default=str(DOC))
    ap.add_argument("--dry-run", action="store_true", help="print the section, do not write the document")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.chdir(ROOT)  # configs name their init_from checkpoints relative to the repository root
    if args.long:
        return long_run(ROOT / args.long, Path(args.doc), args.dry_run)
    dirs = {k: ROOT / getattr(args, k) for k in RUNS}
    dirs = {k: d for k, d in dirs.items() if (d / "checkpoints" / "best.ckpt").is_file()}
    benches = {"pretrain": bench_pretrain, "classify": bench_classify, "pairs": bench_pairs, "tag": bench_tag,
               "tag_scratch": bench_tag, "tag_minilm": bench_tag, "pairs_minilm": bench_pairs}
    fresh = {}
    for key, run_dir in dirs.items():
        print(f"evaluating {key}: {run_dir}", flush=True)
        fresh[key] = benches[key](run_dir)
        fresh[key]["times"] = train_times(run_dir)
    fresh["_tuning"], fresh["_total"] = tuning_runs(), total_training_cpu()
    # JSON turns tuples into lists; a round trip makes fresh and stored entries render alike.
    fresh = json.loads(json.dumps(fresh, default=str))
    stored = json.loads(STORE.read_text()) if STORE.is_file() else {}
    res, reused = merge_with_store(fresh, stored)
    for key in reused:
        print(f"{key}: {dirs.get(key, getattr(args, key))} is gone: the numbers stored in {STORE.name}")
    if not any(k in res for k in RUNS):
        raise SystemExit(f"no BERT run under runs/ has checkpoints/best.ckpt and {STORE.name} holds none: "
                         f"{args.doc} is left as it is (train the configs named in --help first)")
    res["_first_tag"] = next((k for k in ("tag", "tag_scratch", "tag_minilm") if k in res), None)
    text = render(res)
    if args.dry_run:
        print(text)
        return
    if any(k in fresh for k in RUNS):
        STORE.write_text(json.dumps({k: v for k, v in res.items() if k != "_first_tag"}, indent=1, default=str) + "\n")
    write_section(args.doc, "bert", text)
    print(f"wrote the BERT section of {args.doc}")


if __name__ == "__main__":
    main()
