"""Shape-profile presets for common video sizes (``profiles.toml`` next to this file).

Each preset names a static engine size and a dynamic range (min/opt/max), in LR pixels,
written "WxH" in the file (as on the command lines) and held as (height, width) here.
``dlgsa-build-engine --profile NAME`` and ``trt/build_profiles.py`` read them from here, so
the installed tool and the repository's script use one file. No torch here.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

PROFILES_FILE = "profiles.toml"


class ProfileError(ValueError):
    """A profile that is unknown, or a presets file that does not parse."""


@dataclass(frozen=True)
class Profile:
    """One preset: ``static`` is the static engine's size; min/opt/max the dynamic range."""

    name: str
    description: str
    static: tuple[int, int]
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]

    def shape_range(self):
        """The dynamic range as an ``export.ShapeRange`` (imports torch)."""
        from ..export import ShapeRange

        return ShapeRange(self.min_hw, self.opt_hw, self.max_hw)


def _hw(text: object, where: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", str(text).strip())
    if not m or min(int(m.group(1)), int(m.group(2))) < 2:
        raise ProfileError(f"{where} must be a size \"WxH\" of at least 2x2, got {text!r}")
    return int(m.group(2)), int(m.group(1))  # "WxH" -> (height, width)


def parse_profiles(text: str, source: str = PROFILES_FILE) -> dict[str, Profile]:
    """The presets of a TOML text: ``[profiles.NAME]`` tables of description, static, min, opt, max."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source} is not valid TOML: {exc}") from None
    table = data.get("profiles")
    if not isinstance(table, Mapping) or not table:
        raise ProfileError(f"{source} has no [profiles.NAME] tables")
    found = {}
    for name, entry in table.items():
        where = f"{source}: profile {name!r}"
        if not isinstance(entry, Mapping):
            raise ProfileError(f"{where} is not a table")
        unknown = sorted(set(entry) - {"description", "static", "min", "opt", "max"})
        missing = sorted({"static", "min", "opt", "max"} - set(entry))
        if unknown or missing:
            raise ProfileError(f"{where}: " + "; ".join(
                [f"unknown key(s) {', '.join(unknown)}"] * bool(unknown) + [f"missing {', '.join(missing)}"] * bool(missing)))
        sizes = {k: _hw(entry[k], f"{where} {k}") for k in ("static", "min", "opt", "max")}
        lo, opt, hi = sizes["min"], sizes["opt"], sizes["max"]
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise ProfileError(f"{where} needs min <= opt <= max, got {entry['min']}, {entry['opt']}, {entry['max']}")
        found[name] = Profile(name, str(entry.get("description", "")), sizes["static"], lo, opt, hi)
    return found


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """The presets of ``path`` (default: the packaged ``profiles.toml``)."""
    if path is not None:
        return parse_profiles(Path(path).read_text(encoding="utf-8"), str(path))
    text = resources.files(__package__).joinpath(PROFILES_FILE).read_text(encoding="utf-8")
    return parse_profiles(text)


def get_profile(name: str, profiles: Mapping[str, Profile] | None = None) -> Profile:
    """The preset ``name``; ProfileError naming the known ones otherwise."""
    profiles = load_profiles() if profiles is None else profiles
    if name not in profiles:
        raise ProfileError(f"is not a known profile: use one of {', '.join(profiles)}")
    return profiles[name]
