"""MIA Elite ``trading`` package."""
