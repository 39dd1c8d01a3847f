"""The development click logs the benchmarks default to (data/README.md in ../shared): the
bundled Amazon Beauty log and, when this checkout sits beside ../shared, the Yelp log."""
from pathlib import Path
from typing import Dict, List


def development_logs(root: Path, given: List[str]) -> Dict[str, str]:
    """NAME -> clicks.csv: the --data NAME=PATH arguments when given, else the defaults."""
    data = dict(d.split("=", 1) for d in given)
    if not data:
        data["amazon-beauty"] = str(root / "data" / "amazon-beauty" / "clicks.csv")
        yelp = root.parent / "shared" / "data" / "yelp" / "clicks.csv"
        if yelp.exists():
            data["yelp"] = str(yelp)
    return data
