"""``python -m infomtl`` (also what ``accelerate launch -m infomtl`` runs)."""

import sys

from infomtl.cli import main

sys.exit(main())
