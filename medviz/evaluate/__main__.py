"""Evaluate a registered model: ``python -m medviz.evaluate --model NAME --json [--data DIR] [--split test]``.

Prints one JSON object with ``--json``, else a table. Task-specific options (e.g. ``--acceleration``
for reconstruction) come from the task's evaluator in :mod:`medviz.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from medviz.evaluation import evaluator_for
    from medviz.models.registry import get_entry
    from medviz.types import MedvizError

    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)

    p = argparse.ArgumentParser(prog="python -m medviz.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model name (python -m medviz.models list)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--data", type=Path, default=None, help="data folder/file (default: the model's data set)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    try:
        entry = get_entry(known.model) if known.model else None
        module = evaluator_for(entry.task) if entry else None
        if module is not None:
            module.add_arguments(p.add_argument_group(f"{entry.task} options"))
        args = p.parse_args(argv)
        result = module.evaluate(entry, args)
    except MedvizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else module.format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
