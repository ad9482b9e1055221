"""The revisions, `NNNN_name.py` each with its `NNNN_name.sql` (a package so wheels ship them)."""
