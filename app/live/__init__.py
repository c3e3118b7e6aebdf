"""MIA Elite ``live`` package: the runtime: market sources, the pipeline with its market-data fan-out, the analysis engine thread."""
