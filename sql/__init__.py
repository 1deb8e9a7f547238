"""The report queries, one SQL file each; `reports/` finds, parameterises and runs them."""
