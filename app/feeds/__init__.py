"""MIA Elite ``feeds`` package."""
