"""MIA Elite ``config`` package."""
