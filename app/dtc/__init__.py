"""MIA Elite ``dtc`` package."""
