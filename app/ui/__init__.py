"""MIA Elite ``ui`` package."""
