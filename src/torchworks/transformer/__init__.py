"""Transformers by model family: GPT, encoder-decoder translation, BERT, ViT.

Layout (what families share beyond :mod:`torchworks.nn` is in :mod:`torchworks.transformer.common`)::

    gpt/       model, generate (+ fast_decode), tokenizers, data, task (gpt_lm, init_from), sources (hf: GPT-2
               folders, nanogpt: ckpt.pt), params (GPT-2/GPT-3 sizes on the meta device), plots
    seq2seq/   model, beam, data (Multi30k, BPE, translate), task (translation), plots
    bert/      model, variants, hf (MiniLM), wordpiece, data, task (bert_pretrain), finetune (bert_classify/tag),
               analogies (word-vector arithmetic on MiniLM's input embeddings)
    vit/       model (rollout, HF import), cnn (same-size CNN partner), task (image_classifier), plots
    pretrained/  the models shipped with the package (weights, tokenizers, model cards)

Importing this package registers the GPT variants in ``MODELS`` and the ``gpt_lm`` task in ``TASKS``; the other
families register when their subpackage is imported (``torchworks.catalog`` does it on demand). Tokenizers
(``tokenizers`` library) and HF conversion (``transformers``) import their optional dependencies only when used.

The modules of the former flat layout still import under their old names (``torchworks.transformer.bert_hf``,
``torchworks.transformer.translation_data``, ...): each name is an alias of the module that replaced it.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from torchworks.transformer.gpt.generate import generate, sample_next_token, top_k_filter, top_p_filter
from torchworks.transformer.gpt.model import GPT, GPTConfig
from torchworks.transformer.gpt.task import GPTLMConfig, GPTLMTask, load_lm

__all__ = ["GPT", "GPTConfig", "GPTLMConfig", "GPTLMTask", "generate", "load_lm", "sample_next_token", "top_k_filter",
           "top_p_filter"]

# Old flat module name -> its module now (a tuple: the old module's names now live in several modules).
MOVED: dict[str, str | tuple[str, ...]] = {
    "generate": "gpt.generate", "task": "gpt.task", "data": "gpt.data", "tokenizers": "gpt.tokenizers",
    "hf_convert": "gpt.hf", "plots": ("gpt.plots", "seq2seq.plots"),
    "beam": "seq2seq.beam", "translation_data": "seq2seq.data", "translation_task": "seq2seq.task",
    "bert_hf": "bert.hf", "bert_data": "bert.data", "bert_task": "bert.task", "bert_finetune": "bert.finetune",
    "wordpiece": "bert.wordpiece", "wordpiece_text": "bert.wordpiece_text",
    "vit_cnn": "vit.cnn", "vit_plots": "vit.plots", "vit_task": "vit.task",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``torchworks.transformer.<old name>`` to the module that replaced it (same object, so patching
    either name patches both). Consulted only after the normal finders found no such file."""

    def find_spec(self, fullname, path=None, target=None):
        parent, _, old = fullname.rpartition(".")
        if parent != __name__ or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a placeholder; exec_module swaps in the real module

    def exec_module(self, module) -> None:
        targets = MOVED[module.__name__.rpartition(".")[2]]
        if isinstance(targets, str):
            # The import system returns whatever sys.modules holds once exec_module is done.
            sys.modules[module.__name__] = importlib.import_module(f"{__name__}.{targets}")
            return
        for target in targets:  # merged: re-export the public names of each new module
            new = importlib.import_module(f"{__name__}.{target}")
            for name in new.__all__:
                setattr(module, name, getattr(new, name))


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
# Aliases of modules imported above are set now: importing them later through the finder would make the import
# system set e.g. ``torchworks.transformer.generate`` to the module, hiding the ``generate`` function.
for _old in ("generate", "task", "data", "tokenizers"):
    sys.modules.setdefault(f"{__name__}.{_old}", sys.modules[f"{__name__}.{MOVED[_old]}"])
