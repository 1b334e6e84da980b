"""Sequence models: LSTM models with Keras semantics, memory tasks, forecasting, diagnostics."""
