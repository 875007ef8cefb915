"""govbot. Loguru's default sink would print local variables (secrets) in tracebacks: off before
loguru is first imported; every sink govbot adds itself goes through bot.logs."""

import os

os.environ.setdefault("LOGURU_DIAGNOSE", "NO")

__version__ = "0.2.0"
