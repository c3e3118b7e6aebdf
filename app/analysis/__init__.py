"""MIA Elite ``analysis`` package."""
