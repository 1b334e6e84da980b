"""Geometry tests run on one torch thread (the suite's timing budget assumes it; see DESIGN.md benchmarks)."""

import torch

torch.set_num_threads(1)
