"""Write the provisioned Grafana dashboards (grafana/dashboards/wes/*.json) from their description in
boards.py (one function per dashboard, built from the blocks of panels.py).

    .venv/bin/python grafana/generate_dashboards.py          # rewrite the JSON files
    .venv/bin/python grafana/generate_dashboards.py --check  # exit 1 if one is out of date (CI)

Built in Python so every panel gets the fixed datasource uid, a unique id and a gridPos inside the
24-column grid by construction; metric names and SLA buckets come from engine/metrics/catalogue.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from boards import BOARDS

OUT = Path(__file__).resolve().parent / "dashboards" / "wes"


def generate() -> dict[str, str]:
    out = {}
    for build in BOARDS:
        board = build()
        out[f"{board.uid}.json"] = json.dumps(board.to_json(), indent=2, sort_keys=False) + "\n"
    return out


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"out of date: {', '.join(stale + extra)}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
