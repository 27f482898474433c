"""Write docs/supported-ops.md from the lowering registries (edgec/supported_ops.py).

    .venv/bin/python scripts/generate_supported_ops.py          # rewrite the file
    .venv/bin/python scripts/generate_supported_ops.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgec.supported_ops import render_markdown, supported_ops

DOC = Path(__file__).resolve().parent.parent / "docs" / "supported-ops.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the committed file is current")
    args = parser.parse_args()
    text = render_markdown(supported_ops())
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is stale: run scripts/generate_supported_ops.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
