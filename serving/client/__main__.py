"""`python -m serving.client`: the client's command line (`serving/client/cli.py`)."""
import sys

from serving.client.cli import main

sys.exit(main())
