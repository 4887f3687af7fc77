"""Serves the light test page in its own process until killed: ``python -m tests.serve_light_app PORT``.

For tests of uploads that could bring a server process down: they talk to it over HTTP and check it lives.
"""

from __future__ import annotations

import sys
import time

from .app_server import running_app
from .light_app import light_service


def main(port: int) -> None:
    with running_app(light_service(), port=port):
        print("serving", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]))
