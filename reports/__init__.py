"""Emotion-pattern reports over a `fer-mine run` output: DuckDB views (archive.py), one SQL
query per report (`sql/`, listed in registry.py), shown as text (text.py) or as one HTML page
with charts (html.py, charts.py). Kept free of imports so that `--help` stays fast."""
