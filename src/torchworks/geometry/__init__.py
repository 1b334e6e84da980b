"""Camera geometry: pure, batched, differentiable functions on tensors. Imports core only."""
