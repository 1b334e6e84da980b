"""Sequence models: LSTM models with Keras semantics, memory tasks, forecasting, diagnostics.

Importing the package registers the models (``seq_lstm``, ``seq_mlp``, ``seq_forecaster``) and the engine tasks
(``seq_memory``, ``seq_forecast``). Entry points: :func:`torchworks.sequence.experiments.run_experiment`
(``torchworks sequence run NAME``) and :func:`torchworks.sequence.forecasting.run_forecast`
(``torchworks forecast``).
"""

from torchworks.sequence import forecast_task, memory_task, models  # noqa: F401  (registers models and tasks)
