"""MIA Elite: a desktop companion for the Sierra Chart trading platform.

Package layout (see ``docs/`` and the design notes): ``dtc`` (protocol, client, server),
``feeds`` (market event types, recordings, Sierra Chart files, importers), ``market``
(order book, heatmap ring, bars), ``analysis`` (numba analyzers, elite score, worker
engine), ``trading`` (risk gate, brokers, journal), ``ui`` (the only package that imports Qt).
"""

__version__ = "0.1.0"
