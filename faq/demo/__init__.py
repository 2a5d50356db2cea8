"""The demo shop the project ships: Petal & Stem, a small flower shop in Hamilton, New Jersey."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_FILE = Path(__file__).resolve().parent / "demo_shop.json"
DEMO_SHOP_NAME = "Petal & Stem"


def demo_data() -> dict:
    return json.loads(DEMO_FILE.read_text())
