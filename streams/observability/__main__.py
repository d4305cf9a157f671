"""Command line: `python -m streams.observability generate [--check]`."""

from __future__ import annotations

import argparse
import sys

from streams.observability import generate, names
from streams.observability.alerts import Links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.observability")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="regenerate the dashboards and alert rule files")
    gen.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is out of date")
    gen.add_argument("--grafana-url", default=names.DEFAULT_GRAFANA_URL, help="base of dashboard_url annotations")
    gen.add_argument("--runbook-url", default=names.DEFAULT_RUNBOOK_URL, help="base of runbook_url annotations")
    args = parser.parse_args(argv)

    links = Links(grafana_url=args.grafana_url, runbook_url=args.runbook_url)
    if args.check:
        outdated = generate.stale(links=links)
        for path in outdated:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if outdated else 0
    for path in generate.write(links=links):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
