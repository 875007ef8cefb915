"""Start-up time of light `govbot` commands (target: under 1.5 s each).

usage: python bench/cli_startup.py [--runs N]

Runs the real entry point in a subprocess, N times each (default 5), on a fresh SQLite database in a
temp dir: `govbot --help`, `govbot tickets list`, `govbot rules test "…"` (the jieba cache in
<data_dir>/cache is written by a first, unmeasured run, as after any first start). Prints the median
wall time and the median CPU time (user + system) of each: on a loaded machine the wall time grows
with the load, the CPU time much less, so both are shown, with the load average.

Last line: help_s=... tickets_list_s=... rules_test_s=... help_cpu_s=... tickets_list_cpu_s=... rules_test_cpu_s=...
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOVBOT = Path(sys.executable).with_name("govbot")


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([str(GOVBOT), *args], env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"govbot {' '.join(args)} failed: {result.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
        text = text.replace('data_dir = "data"', f'data_dir = "{tmp}/data"')
        text = text.replace('url = "sqlite:///data/govbot.db"', f'url = "sqlite:///{tmp}/govbot.db"')
        text = text.replace('rules_dir = "rules"', f'rules_dir = "{ROOT / "rules"}"')
        text = text.replace('holidays_file = "rules/holidays.toml"', f'holidays_file = "{ROOT / "rules" / "holidays.toml"}"')
        config = Path(tmp) / "config.toml"
        config.write_text(text, encoding="utf-8")
        env = {**os.environ, "GOVBOT_CONFIG": str(config)}
        run(["init"], env)
        commands = {"help": ["--help"], "tickets_list": ["tickets", "list"],
                    "rules_test": ["rules", "test", "路灯坏了好几天了没人管，希望尽快修好"]}
        run(commands["rules_test"], env)  # writes jieba's cache, as the first start anywhere does
        results = {}
        for name, command in commands.items():
            samples = [run(command, env) for _ in range(args.runs)]
            results[name] = (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
            print(f"govbot {' '.join(command)}: wall {results[name][0]:.2f} s, cpu {results[name][1]:.2f} s "
                  f"(median of {args.runs})")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(" ".join(f"{name}_s={wall:.2f}" for name, (wall, _) in results.items()) + " "
          + " ".join(f"{name}_cpu_s={cpu:.2f}" for name, (_, cpu) in results.items()))


if __name__ == "__main__":
    main()
