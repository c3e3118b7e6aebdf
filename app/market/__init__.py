"""MIA Elite ``market`` package."""
