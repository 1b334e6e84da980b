"""Statistics and the Markdown report of the LaMa / ReLaMa / plain-conv experiment (``experiment.py``).

Each trained run contributes one number per (data set, evaluation size, mask family, metric): the mean over the
held-out test images. Across the seeds of a method we report mean ± sample standard deviation (ddof 1). Classical
methods are deterministic: one value, no spread.

**The spread rule.** A difference between methods A and B counts as larger than the seed spread only when it
exceeds the half-width of its 95 % confidence interval from the t-distribution for the number of seeds: Welch's
interval ``t(0.975, df) * sqrt(s_A^2 / n_A + s_B^2 / n_B)`` with the Welch-Satterthwaite ``df`` for two learned
methods, and the one-sample interval ``t(0.975, n_A - 1) * s_A / sqrt(n_A)`` against a deterministic method
(std 0). It needs at least two seeds on the learned side; every verdict prints its seed counts. With 3 seeds
``t(0.975, 2) = 4.30``, so only large, consistent differences pass: one that fails is not a finding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CASES", "COMPARISONS", "METRICS", "TRANSFER_PAIRS", "case_records", "compare", "format_value",
           "mean_std", "render", "t_quantile", "transfer_drops"]

METRICS = (("psnr_hole", "hole PSNR dB", 2), ("ssim", "SSIM", 4), ("l1_hole", "hole L1", 4))
"""(key, column title, decimals) of the reported metrics; the spread verdicts use the first two."""

COMPARISONS = (("relama", "lama"), ("lama", "plainconv"), ("relama", "plainconv"), ("lama", "telea"))
"""Pairs (A, B) whose difference A - B is judged against the seed spread, when both were evaluated."""


CASES = {"scratches": ("thin",), "region": ("medium", "box"), "large": ("thick", "center")}
"""The seed project's three cases as mask families (the same as ``torchworks.inpainting.evaluate.PRESETS``)."""


def case_records(records: list[dict[str, Any]], planned: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Per (data set, method, seed, size): one record per seed case, the mean of its families' values (area and
    metrics); a case is left out where one of its families is missing. ``planned``: the mask families the plan
    evaluates; a case then stands for its members among them (the scenes128 plan has no ``box`` / ``center``: its
    region case is ``medium`` alone, its large case ``thick`` alone)."""
    cases = CASES if planned is None else {c: tuple(f for f in m if f in set(planned)) for c, m in CASES.items()}
    cases = {c: m for c, m in cases.items() if m}
    keys = ["area", *(k for k, _, _ in METRICS)]
    groups: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r["method"], r["seed"], r["size"]), {})[r["family"]] = r
    out = []
    for (ds, method, seed, size), fams in groups.items():
        for case, members in cases.items():
            if all(f in fams for f in members):
                out.append({"dataset": ds, "method": method, "seed": seed, "size": size, "family": case,
                            **{k: sum(fams[f][k] for f in members) / len(members) for k in keys}})
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """``(mean, sample std with ddof 1 (0 for a single value), n)`` of the finite values; NaNs if none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan, 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd, len(v)


def t_quantile(df: float, q: float = 0.975) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (SciPy)."""
    from scipy.stats import t

    return float(t.ppf(q, df))


def compare(a: Sequence[float], b: Sequence[float], a_deterministic: bool = False,
            b_deterministic: bool = False) -> dict[str, Any]:
    """Difference ``mean(a) - mean(b)`` against its 95 % t-interval half-width (see the module docstring).

    A side with one value counts as deterministic only if flagged so; a learned method with a single seed has
    an unknown spread, and the verdict is then None.

    Returns:
        ``{"diff", "spread" (the half-width), "exceeds" (bool or None), "n_a", "n_b", "df"}``.
    """
    ma, sa, na = mean_std(a)
    mb, sb, nb = mean_std(b)
    known = (na >= 2 or (a_deterministic and na == 1)) and (nb >= 2 or (b_deterministic and nb == 1))
    diff = ma - mb
    if not known or (na < 2 and nb < 2):
        return {"diff": diff, "spread": math.nan, "exceeds": None, "n_a": na, "n_b": nb, "df": math.nan}
    va, vb = (sa * sa / na if na > 1 else 0.0), (sb * sb / nb if nb > 1 else 0.0)
    if va + vb == 0.0:
        df = float(max(na, nb) - 1)
    else:  # Welch-Satterthwaite; reduces to n - 1 when one side is deterministic
        df = (va + vb) ** 2 / ((va * va / (na - 1) if na > 1 else 0.0) + (vb * vb / (nb - 1) if nb > 1 else 0.0))
    spread = t_quantile(df) * math.sqrt(va + vb)
    return {"diff": diff, "spread": spread, "exceeds": bool(abs(diff) > spread), "n_a": na, "n_b": nb, "df": df}


def format_value(values: Sequence[float], decimals: int, deterministic: bool = False) -> str:
    """``"m ± s"`` over seeds, ``"m"`` for a deterministic method, ``"m (1 seed)"`` for a lone seed, ``-`` if none."""
    m, s, n = mean_std(values)
    if n == 0:
        return "-"
    if deterministic:
        return f"{m:.{decimals}f}"
    return f"{m:.{decimals}f} ± {s:.{decimals}f}" if n > 1 else f"{m:.{decimals}f} (1 seed)"


def _verdict(c: dict[str, Any]) -> str:
    return {True: "**yes**", False: "no", None: "n/a (1 seed)"}[c["exceeds"]]


TRANSFER_PAIRS = (("lama", "plainconv"), ("relama", "lama"), ("relama", "plainconv"))
"""Pairs whose resolution-transfer changes are compared (LaMa's claim: Fourier convolutions transfer better)."""


def transfer_drops(cases: list[dict[str, Any]], train_size: int) -> dict[tuple, list[float]]:
    """``{(data set, case, method, size): [hole PSNR at size - at the training size, per seed]}``: each seed is
    paired with itself, so the seed-to-seed offset cancels; a deterministic method gives one value."""
    at: dict[tuple, float] = {(r["dataset"], r["family"], r["method"], r["seed"], r["size"]): r["psnr_hole"]
                              for r in cases}
    out: dict[tuple, list[float]] = {}
    for (ds, case, m, seed, size), v in at.items():
        base = at.get((ds, case, m, seed, train_size))
        if size != train_size and base is not None:
            out.setdefault((ds, case, m, size), []).append(v - base)
    return out


def transfer_lines(cases: list[dict[str, Any]], meta: dict[str, Any], methods: list[str], det: set[str],
                   labels: dict[str, str]) -> list[str]:
    """Resolution transfer: the change of each method's hole PSNR from the training size to the larger sizes,
    with the spread verdicts of :data:`TRANSFER_PAIRS` and a conclusion line."""
    drops = transfer_drops(cases, meta.get("train_size"))
    if not drops:
        return []
    sizes = sorted({k[3] for k in drops})
    datasets = list(dict.fromkeys(k[0] for k in drops))
    out = ["", "### Resolution transfer: change of hole PSNR from the training size", "",
           f"Per seed, hole PSNR at the larger size minus at {meta.get('train_size')} px (same run, same case), then "
           "mean ± std over seeds; the masks differ between sizes but not between methods, so compare methods "
           "within a column. LaMa's claim is that Fourier convolutions lose less than plain convolutions."
           + (" The Context Encoder always runs at its fixed input size (the photo is resized to it and the fill "
              "back), so its rows measure that resizing, not transfer." if "ce" in methods else ""), "",
           "| data | case | method | " + " | ".join(f"{meta.get('train_size')} -> {s} px (dB)" for s in sizes) + " |",
           "|---|---|---|" + "---:|" * len(sizes)]
    for ds in datasets:
        for case in CASES:
            for m in methods:
                if not any((ds, case, m, s) in drops for s in sizes):
                    continue
                cells = " | ".join(format_value(drops.get((ds, case, m, s), []), 2, m in det) for s in sizes)
                out.append(f"| {ds} | {case} | {labels.get(m, m)} | {cells} |")
    for a, b in TRANSFER_PAIRS:
        found = [(ds, case, s, compare(drops[(ds, case, a, s)], drops[(ds, case, b, s)]))
                 for ds in datasets for case in CASES for s in sizes
                 if (ds, case, a, s) in drops and (ds, case, b, s) in drops]
        if not found:
            continue
        hits = [f for f in found if f[3]["exceeds"]]
        name = f"{labels.get(a, a)} vs {labels.get(b, b)}"
        where = ", ".join(f"{ds} {case} at {s} px ({c['diff']:+.2f} dB, spread {c['spread']:.2f})"
                          for ds, case, s, c in hits)
        if hits:
            better = sum(f[3]["diff"] > 0 for f in hits)
            out.append(f"- {name}: the difference of the transfer changes exceeds the seed spread in {len(hits)} of "
                       f"{len(found)} cells ({better} in favour of {labels.get(a, a)}): {where}; within the spread "
                       "elsewhere.")
        else:
            mean = sum(f[3]["diff"] for f in found) / len(found)
            out.append(f"- {name}: the transfer changes differ by less than the seed spread in all {len(found)} "
                       f"cells (mean difference {mean:+.2f} dB); no conclusion either way.")
    return out


def render(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The Markdown body of the experiment section.

    Args:
        records: one dict per (run, size, family): ``dataset``, ``method``, ``seed`` (None = deterministic),
            ``size``, ``family``, ``area`` and the metric keys of :data:`METRICS`.
        meta: ``title``, ``intro`` (Markdown paragraphs), ``train_size``, ``labels`` (method -> display name),
            ``status`` (one line).
    """
    labels: dict[str, str] = meta.get("labels", {})
    out = [f"## {meta.get('title', 'Experiment')}", "", meta.get("status", ""), "", meta.get("intro", "")]
    if not records:
        out += ["", "_No run has finished yet: nothing to report._"]
        return "\n".join(out)

    def vals(ds: str, size: int, fam: str, method: str, key: str) -> list[float]:
        return [r[key] for r in records if (r["dataset"], r["size"], r["family"], r["method"]) == (ds, size, fam,
                                                                                                    method)]

    det = {r["method"] for r in records if r["seed"] is None}
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    verdicts: list[tuple[str, int, str, str, str, dict[str, Any]]] = []
    for ds in datasets:
        for size in sorted({r["size"] for r in records if r["dataset"] == ds}):
            kind = "training size" if size == meta.get("train_size") else "resolution transfer"
            out += ["", f"### {ds}, {size} px ({kind})", "",
                    "| mask | hole area | method | seeds | " + " | ".join(t for _, t, _ in METRICS) + " |",
                    "|---|---|---|---|" + "---:|" * len(METRICS)]
            fams = list(dict.fromkeys(r["family"] for r in records if r["dataset"] == ds and r["size"] == size))
            for fam in fams:
                for m in methods:
                    if not vals(ds, size, fam, m, "psnr_hole"):
                        continue
                    area = mean_std(vals(ds, size, fam, m, "area"))[0]
                    n = "-" if m in det else str(len(vals(ds, size, fam, m, "psnr_hole")))
                    cells = " | ".join(format_value(vals(ds, size, fam, m, k), d, m in det) for k, _, d in METRICS)
                    out.append(f"| {fam} | {100 * area:.1f} % | {labels.get(m, m)} | {n} | {cells} |")
                for a, b in COMPARISONS:
                    for key, _, _ in METRICS[:2]:
                        va, vb = vals(ds, size, fam, a, key), vals(ds, size, fam, b, key)
                        if va and vb:
                            verdicts.append((ds, size, fam, f"{a} - {b}", key, compare(va, vb, a in det, b in det)))
    planned = meta.get("families")
    cases = case_records(records, planned)
    case_map = CASES if planned is None else {c: tuple(f for f in m if f in planned) for c, m in CASES.items()}
    case_verdicts: list[tuple[str, int, str, str, str, dict[str, Any]]] = []
    if cases:
        out += ["", "### The seed project's three cases", "",
                "Each run's value for a case is the mean over its mask families (" + "; ".join(
                    f"{c} = {' + '.join(f)}" for c, f in case_map.items() if f) + "), then mean ± std over seeds.", "",
                "| data | px | case | method | seeds | " + " | ".join(t for _, t, _ in METRICS) + " |",
                "|---|---|---|---|---|" + "---:|" * len(METRICS)]

        def cvals(ds: str, size: int, case: str, method: str, key: str) -> list[float]:
            return [r[key] for r in cases if (r["dataset"], r["size"], r["family"], r["method"]) == (ds, size, case,
                                                                                                      method)]

        for ds in datasets:
            for size in sorted({r["size"] for r in cases if r["dataset"] == ds}):
                for case in CASES:
                    for m in methods:
                        if not cvals(ds, size, case, m, "psnr_hole"):
                            continue
                        n = "-" if m in det else str(len(cvals(ds, size, case, m, "psnr_hole")))
                        cells = " | ".join(format_value(cvals(ds, size, case, m, k), d, m in det)
                                           for k, _, d in METRICS)
                        out.append(f"| {ds} | {size} | {case} | {labels.get(m, m)} | {n} | {cells} |")
                    for a, b in COMPARISONS:
                        for key, _, _ in METRICS[:2]:
                            va, vb = cvals(ds, size, case, a, key), cvals(ds, size, case, b, key)
                            if va and vb:
                                case_verdicts.append((ds, size, case, f"{a} - {b}", key,
                                                      compare(va, vb, a in det, b in det)))
    out += transfer_lines(cases, meta, methods, det, labels)
    verdicts = verdicts + case_verdicts
    if verdicts:
        out += ["", "### Differences against the seed spread", "",
                "Rule: a difference counts only if it exceeds the half-width of its 95 % t-interval for the seed "
                "counts n_A, n_B (Welch; one-sample against a classical method, which has std 0). Positive "
                "hole-PSNR/SSIM differences favour A.",
                "", "| data | px | mask | A - B | metric | n_A, n_B | difference | ±95 % CI (t) | exceeds? |",
                "|---|---|---|---|---|---|---:|---:|---|"]
        titles = {k: t for k, t, _ in METRICS}
        decimals = {k: d for k, _, d in METRICS}
        for ds, size, fam, pair, key, c in verdicts:
            d = decimals[key]
            out.append(f"| {ds} | {size} | {fam} | {pair} | {titles[key]} | {c['n_a']}, {c['n_b']} "
                       f"| {c['diff']:+.{d}f} | {c['spread']:.{d}f} "
                       f"| {_verdict(c)} |")
        out += ["", "**Conclusions (only where the difference exceeds the seed spread).**" + (
            " Counted over the seed's three cases (the per-family rows above give the detail)." if case_verdicts
            else "")]
        for a, b in COMPARISONS:
            sel = [v for v in (case_verdicts or verdicts) if v[3] == f"{a} - {b}" and v[4] == "psnr_hole"]
            if not sel:
                continue
            known = [v for v in sel if v[5]["exceeds"] is not None]
            hits = [v for v in known if v[5]["exceeds"]]
            name = f"{labels.get(a, a)} vs {labels.get(b, b)}"
            if not known:
                out.append(f"- {name}: one seed only, no verdict.")
                continue
            better = sum(v[5]["diff"] > 0 for v in hits)
            where = ", ".join(f"{v[0]} {v[1]} px {v[2]} ({v[5]['diff']:+.2f} dB)" for v in hits)
            if len(hits) == len(known):
                out.append(f"- {name} (hole PSNR): the difference exceeds the seed spread in all {len(known)} cells "
                           f"({better} in favour of {labels.get(a, a)}): {where}.")
            elif hits:
                out.append(f"- {name} (hole PSNR): the difference exceeds the seed spread in {len(hits)} of "
                           f"{len(known)} cells ({better} in favour of {labels.get(a, a)}): {where}. In the other "
                           f"{len(known) - len(hits)} it does not, and we draw no conclusion there.")
            else:
                out.append(f"- {name} (hole PSNR): the difference stays within the seed spread in all {len(known)} "
                           "cells; no conclusion either way.")
    return "\n".join(out)
