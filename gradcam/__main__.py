"""``python -m gradcam``: see :mod:`gradcam.cli`."""

import sys

from gradcam.cli import main

sys.exit(main())
