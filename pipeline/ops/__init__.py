"""Tools that work on a finished run: its summary and report, lineage, retention, serving
skew, rollback and the owner's acceptance of a refused span.

They read artifacts and ML Metadata (`metadata.py` is the one home of the output dir's
layout); none of them builds or runs the DAG.
"""
