"""Insights: a streaming anomaly detector and a forecaster, independent of the web server.

* :mod:`spyglass.insights.detector` scores points as they arrive, many series at once.
* :mod:`spyglass.insights.forecast` predicts the next horizon with an interval and answers
  "when will this cross T".
* :mod:`spyglass.insights.nab` scores a detector on the Numenta Anomaly Benchmark.
* :mod:`spyglass.insights.cli` is the ``spyglass insights`` command group.
"""
