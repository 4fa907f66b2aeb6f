"""The place register shipped in ``knowledge/places.toml``, for handler tests."""

from __future__ import annotations

from cadrebot.handlers.places import PlaceRegister
from cadrebot.indexer.places_file import load_places, places_path
from tests.support.paths import REPO_KNOWLEDGE

SHIPPED_PLACES: PlaceRegister = load_places(places_path(REPO_KNOWLEDGE))
DATANGBU = "xf.datangbu"  # 信丰县大塘埠镇
JIADING = "xf.jiading"  # 信丰县嘉定镇
TANDONG = "rjxq.tandong"  # 蓉江新区潭东镇
