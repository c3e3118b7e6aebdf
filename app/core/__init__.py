"""MIA Elite ``core`` package: the shared vocabulary: market events, trading vocabulary, clocks (ground floor)."""
