"""Benchmark `kokin demo --days N` (a month of a ward played day by day) against the year demo.

Usage: python bench/bench_month.py [--days 30] [--payers 10000] [--backend sqlite|postgresql|both]

For each backend, two runs of the `kokin` command in fresh processes, each on a fresh database
and instance folder of its own (a one-ward KOKIN_CONFIG, as the first ward of the defaults):

  month     kokin demo --days N --payers P --no-serve: the ledger and slips before the month, then
            every day's feeds, files, deposits, online payments, counter and nightly jobs;
  baseline  kokin demo --payers P --no-serve: the year demo (the same ledger and slips, then a
            year of each channel at once), measured in the same run.

It prints wall seconds and CPU seconds (user + system of the child) of each, the ratio
month/baseline, and the month's last lines (its conservation balance). Issue 17 wants a month
of 10,000 payers under five minutes on two cores. Figures, never assertions: see bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_issue import fresh_database  # bench/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ROOT / "gateway" / "defaults.toml"


def one_ward_config(folder: Path) -> Path:
    """A KOKIN_CONFIG with its own instance folder and the defaults' first ward alone."""
    defaults = DEFAULTS.read_text(encoding="utf-8")
    first = defaults[defaults.index("[[municipalities]]"):]
    second = first.find("\n[[municipalities]]")
    config = folder / "kokin.toml"
    config.write_text(f'instance_path = "{folder / "instance"}"\n\n{first if second < 0 else first[:second]}\n',
                      encoding="utf-8")
    return config


def run_demo(backend: str, arguments: list[str]) -> tuple[float, float, str]:
    """Run `kokin demo ARGUMENTS` on a fresh database: wall seconds, CPU seconds, its output."""
    with fresh_database(backend) as url, tempfile.TemporaryDirectory(prefix="kokin_bench_month_") as folder:
        env = {**os.environ, "KOKIN_CONFIG": str(one_ward_config(Path(folder))), "KOKIN_DATABASE_URL": url}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", *arguments, "--no-serve"], env=env,
                              cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"kokin demo {' '.join(arguments)} failed on {backend}:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--payers", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.days} days, {args.payers:,} payers")
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        month_wall, month_cpu, output = run_demo(backend, ["--days", str(args.days), "--payers", str(args.payers)])
        base_wall, base_cpu, _ = run_demo(backend, ["--payers", str(args.payers)])
        print(f"\n{backend}")
        print(f"  month     {month_wall:8.1f} s wall {month_cpu:8.1f} s CPU")
        print(f"  baseline  {base_wall:8.1f} s wall {base_cpu:8.1f} s CPU   (the year demo)")
        print(f"  ratio month/baseline: {month_wall / base_wall:.2f} (wall)")
        print("  the month's " + next(line for line in output.splitlines() if line.startswith("difference:")))


if __name__ == "__main__":
    main()
