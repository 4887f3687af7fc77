"""``python -m gradcam``: see :mod:`gradcam.cli`; ``python -m gradcam evaluate``: see :mod:`gradcam.evaluate.cli`."""

import sys

if sys.argv[1:2] == ["evaluate"]:
    from gradcam.evaluate.cli import main as evaluate

    sys.exit(evaluate(sys.argv[2:]))

from gradcam.cli import main

sys.exit(main())
