"""`python -m pipeline.accept`: the owner's acceptance of a refused span, the same command as
`python -m pipeline accept`.

Kept under this name because refusal messages, runbooks and the docs print it; the code is
`pipeline/ops/accept.py`.
"""
import sys

from pipeline.ops.accept import main

if __name__ == "__main__":
    sys.exit(main())
