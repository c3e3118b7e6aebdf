"""Reason texts that read like a trader's note (issue 14, item 16).

Every :class:`~app.analysis.frame.PatternHit` carries a ``detail`` line shown in the tape, the
heatmap tooltip and the journal. The rules, in one place:

* price levels are prices in the instrument's display decimals (``4800.75``), never ticks;
  distances stay in ticks and say so (``2 ticks away``);
* sizes are in the instrument's own units with only the decimals its sizes have (ES contracts
  are whole: ``max displayed 3``; BTCUSDT sizes have up to 3 decimals: ``0.125``), learned from
  the sizes seen in the stream (:meth:`ReasonFormatter.learn_sizes`);
* ratios and fractions have two decimals;
* English only (the Battle Navale base rule is "red under green", the seed's *rouge sous verte*);
* each line ends with the detection's strength (``strength 0.83``).
"""

from __future__ import annotations

import math

import numpy as np

#: Value names (``PatternHit.values`` keys) that are sizes in the instrument's units.
SIZE_VALUES = frozenset({
    "traded", "displayed", "max_displayed", "size", "median", "first_size", "pulled_size", "aggressive",
    "opposite", "volume_beyond", "row_volume", "volume",
})
#: Value names that are whole counts.
COUNT_VALUES = frozenset({"levels"})
#: Value names that are distances in ticks.
TICK_VALUES = frozenset({"move_ticks", "range_ticks", "base_gap", "retrace_ticks"})

#: Most decimals a size is shown with (Binance quantity steps go down to 0.0001).
MAX_SIZE_DECIMALS = 4


def _label(name: str) -> str:
    return name.replace("_", " ")


class ReasonFormatter:
    """Formats prices, sizes and values of one instrument's detections.

    Parameters
    ----------
    instrument : app.core.events.Instrument
        ``tick_size`` and ``price_decimals`` give the price text.

    Attributes
    ----------
    size_decimals : int
        Decimals of a size (0 until a fractional size is seen; at most :data:`MAX_SIZE_DECIMALS`).
    """

    def __init__(self, instrument):
        self.tick_size = float(instrument.tick_size)
        self.price_decimals = int(getattr(instrument, "price_decimals", 2))
        self.size_decimals = 0

    def learn_sizes(self, sizes: np.ndarray) -> None:
        """Widen :attr:`size_decimals` to what ``sizes`` (float array of trade or book sizes in
        the instrument's units, any shape) need, up to :data:`MAX_SIZE_DECIMALS`."""
        a = np.asarray(sizes, dtype=np.float64).ravel()
        if a.size == 0 or self.size_decimals >= MAX_SIZE_DECIMALS:
            return
        a = a[np.isfinite(a)][:512]
        d = self.size_decimals
        while d < MAX_SIZE_DECIMALS:
            scaled = a * 10.0**d
            if np.all(np.abs(scaled - np.rint(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
                break
            d += 1
        self.size_decimals = d

    def price(self, ticks: int | float) -> str:
        """``ticks`` (int ticks) as a price text, e.g. ``4800.75``."""
        return f"{float(ticks) * self.tick_size:.{self.price_decimals}f}"

    def size(self, x: float) -> str:
        """A size in the instrument's units with its own decimals (``3``, ``0.125``)."""
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{self.size_decimals}f}"

    def value(self, name: str, x: float) -> str:
        """``name value`` with the unit rules of the module docstring."""
        if name in SIZE_VALUES:
            text = self.size(x)
        elif name in COUNT_VALUES:
            text = f"{x:.0f}"
        elif name in TICK_VALUES:
            text = f"{x:.0f} ticks" if float(x).is_integer() else f"{x:.2f} ticks"
        else:
            text = f"{x:.2f}"
        return f"{_label(name)} {text}"

    def values(self, pairs) -> str:
        """``pairs`` of ``(name, value)`` joined by commas."""
        return ", ".join(self.value(n, float(v)) for n, v in pairs)

    @staticmethod
    def strength(s: float) -> str:
        """The closing ``strength 0.83`` of every reason line."""
        return f"strength {float(s):.2f}"
