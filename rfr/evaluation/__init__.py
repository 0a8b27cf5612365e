"""Evaluation, split the way LaMa's evaluator is: a predictor makes the model output for
a batch, scorers turn outputs into metrics, writers put them in files.

- ``rfr.evaluation.layout``: the file names of an evaluation folder.
- ``rfr.evaluation.batches``: the test split crossed with the mask bank's bins.
- ``rfr.evaluation.predictors``: a checkpoint or a predictions folder as outputs.
- ``rfr.evaluation.scorers``: per-image metrics, FID, recurrence tracing.
- ``rfr.evaluation.writers``: pairs.csv, predictions/, tiles/ and examples.png.
- ``rfr.evaluation.summary_files``: summary.json, metrics.json, bins.csv.
- ``rfr.evaluation.evaluator``: ``evaluate()``, wiring the above.

The package ``__init__`` imports nothing, so reading a file name (``layout``) does not
load models or metric networks; ``rfr.evaluate`` is the public entry point.
"""
