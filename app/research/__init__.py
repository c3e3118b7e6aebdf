"""Research: are the signals worth anything, measured honestly (``mia-elite evaluate`` / ``learn``).

Floor: above ``live`` (it runs the analysis engine headless) and below ``cli``; no Qt.

* :mod:`app.research.stats`: Wilson interval, session-block bootstrap, breakeven rate, drawdown,
  Sharpe, Benjamini-Hochberg, the verdict line.
* :mod:`app.research.trades`: the one per-signal trade result (ticks, net USD) and the
  random-entry baseline measured with the same outcome function.
* :mod:`app.research.evaluate`: sessions, the engine run per session (in parallel), the report.
* :mod:`app.research.learn`: walk-forward logistic regression on snapshots, model files.
* :mod:`app.research.snapshots`: candidate snapshots to Parquet.
"""
