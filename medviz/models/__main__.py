"""``python -m medviz.models list [--json] [--task TASK]``: the registered models."""

from __future__ import annotations

import argparse
import json
import sys

from medviz.models.registry import list_models


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medviz.models")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list registered models")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--task", default=None)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    rows = [
        {"name": e.name, "task": e.task, "dataset": e.raw.get("dataset"), "weights": e.raw["file"], "sha256": e.raw["sha256"],
         **({"shards": e.raw["shards"]} if e.raw.get("shards") else {})}
        for e in list_models(task=args.task)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        w = max([len(r["name"]) for r in rows] + [4])
        print(f"{'name':<{w}}  {'task':<14}  {'dataset':<16}  weights")
        for r in rows:
            files = f"{r['weights']} (1 of {len(r['shards'])} shards)" if r.get("shards") else r["weights"]
            print(f"{r['name']:<{w}}  {r['task']:<14}  {str(r['dataset']):<16}  {files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
