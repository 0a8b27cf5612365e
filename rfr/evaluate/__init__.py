"""Evaluation: ``rfr.evaluate.api.evaluator.evaluate`` wires a predictor (a checkpoint or a
folder of predictions) to scorers (per-image metrics, FID, recurrence tracing) and
writers (CSVs, metrics and summary JSON, tiles, grids); the metrics, their per-bin
aggregation with bootstrap intervals, and the reach analysis live beside it.

Empty on purpose, so that the report can import the aggregation without the models.
"""
