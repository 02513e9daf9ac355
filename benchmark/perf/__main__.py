"""``python -m benchmark.perf``: one comparison alone, or every model's untuned defaults on every task."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmark.perf.report import aligned_rows, format_terminal
from benchmark.perf.suite import COMPARISONS, FULL, QUICK, run_all
from benchmark.perf.throughput import defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    for name in COMPARISONS:
        p = sub.add_parser(name, help=f"only the {name} comparison (bench perf runs them all)")
        p.add_argument("--quick", action="store_true")
    d = sub.add_parser("defaults")
    d.add_argument("--n", nargs="*", default=["ee_gamma=10000", "quark_gluon=3000", "hcal_dqm=4000", "atlas_topo=10000"],
                   metavar="TASK=N", help="the tasks to run and their synthetic sample counts")
    d.add_argument("--epochs", type=int, default=5)
    d.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what == "defaults":
        with tempfile.TemporaryDirectory() as tmp:
            sizes = {k: int(v) for k, v in (item.split("=") for item in args.n)}
            rows = defaults(n=sizes, epochs=args.epochs, threads=args.threads, root=Path(tmp))
        print("\n".join(aligned_rows(rows)))
        return 0
    report = run_all(QUICK if args.quick else FULL, only=(args.what,),
                     command=" ".join(["python -m benchmark.perf", *(argv if argv is not None else sys.argv[1:])]))
    print(format_terminal(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
