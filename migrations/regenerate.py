"""Regenerate the initial migration from bot/models.py (`make schema`).

Until the first release there is one migration, 0001_initial; after a release, new changes get new
revisions with `alembic revision --autogenerate` instead.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command

from bot.db import MIGRATIONS_DIR, alembic_config

target = MIGRATIONS_DIR / "versions" / "0001_initial.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite:///{Path(tmp) / 'empty.db'}"
    command.revision(alembic_config(url), message="initial", autogenerate=True, rev_id="0001")
if not target.exists():
    sys.exit(f"expected {target} to be written")
print(f"wrote {target}")
