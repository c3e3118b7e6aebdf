"""MIA Elite ``market`` package: the market model the worker engine owns.

* :mod:`app.market.model`: :class:`~app.market.model.MarketModel`, the order book on an integer
  tick grid, the heatmap ring (price rows x time columns, the newest window a plain slice),
  traded volume per cell, footprint bars and the session volume profile; it builds the
  analyzers' :class:`~app.market.view.MarketView` and the GUI's frame arrays.
* :mod:`app.market.kernels`: the numba kernels (the :data:`app.core.jit.kernel` preset:
  ``nogil``, cached in the user cache folder); :mod:`app.market.kernels_ref`: their plain
  NumPy/Python twins (tests, benchmark baseline, ``use_numba=False``).
* :mod:`app.bench.market`: ``mia-elite bench market``.

Nothing here imports Qt.
"""
