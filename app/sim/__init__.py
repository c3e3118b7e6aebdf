"""MIA Elite ``sim`` package: the exchange simulator: matching engine (the one fill model), replay clock, built-in DTC server."""
