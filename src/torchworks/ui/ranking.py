"""The order in which the UI offers inpainting methods: the best for natural photos first.

The page preselects the first method and lists the others in this order, so the order is a claim about quality
and comes from measurements, not from the kind of method.
"""

from __future__ import annotations

from collections.abc import Iterable

from torchworks.core.registry import INPAINTERS

MEASURED_ORDER = ("telea", "ns", "fsr")
"""Classical methods by hole PSNR on photos: Telea leads NS by 0.0-0.3 dB on Kodak24 and BSDS500 in
``docs/results/inpainting.md``; on six scene photos Telea, NS and FSR scored 21.8-22.0 dB, the shipped 64 px face
models 13.7-14.3 dB (issue 20)."""

KIND_ORDER = ("classical", "learned", "baseline")
"""After :data:`MEASURED_ORDER`: the other methods grouped by registry kind, each group by name."""


def methods_by_quality(names: Iterable[str] | None = None) -> list[str]:
    """Registered inpainter names, best for natural photos first.

    The ranking is fed by the held-out evaluation table in ``docs/results/inpainting.md``. When the inpainting
    package publishes that ranking as ``torchworks.inpainting.api.methods_by_quality()``, its order is used as
    is; until then the order is :data:`MEASURED_ORDER` (Telea, NS, FSR), then the learned models (none of the
    shipped ones beats Telea on photos), then the baselines (mean colour, push-pull blur).

    Args:
        names: the names to order (default: every registered inpainter). Names the ranking does not mention
            follow the ranked ones, grouped as in :data:`KIND_ORDER`.

    Returns:
        Every name of ``names`` once, best first.
    """
    pool = list(dict.fromkeys(INPAINTERS.names() if names is None else names))
    ranked = _published_ranking()
    head = [n for n in (ranked if ranked is not None else MEASURED_ORDER) if n in pool]
    rest = [n for n in pool if n not in head]

    def group(name: str) -> tuple[int, str]:
        kind = INPAINTERS.meta(name).get("kind") if name in INPAINTERS else None
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), name)

    return head + sorted(rest, key=group)


def _published_ranking() -> list[str] | None:
    """The inpainting package's own ranking, when it has one."""
    from torchworks.inpainting import api

    publish = getattr(api, "methods_by_quality", None)
    return list(publish()) if callable(publish) else None


__all__ = ["KIND_ORDER", "MEASURED_ORDER", "methods_by_quality"]
