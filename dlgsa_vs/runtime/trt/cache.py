"""The on-disk cache of built TensorRT engines.

An engine is only valid for the exact network weights, graph shape, precision, GPU and
software versions it was built with, so every one of those goes into an ``EngineKey``; the
key's digest names the files of its entry:

    <digest>.ep     the saved engine (whatever ``build`` wrote)
    <digest>.json   the key's fields, when it was built, how long that took, its size

The cache does not know what an engine is: ``get_or_build(key, build, load)`` takes the
functions that write and read one. The TensorRT code (``engine.py``) passes
``torch_tensorrt`` ones; the tests pass ``torch.export`` ones, which exercise the same
logic with real files on a machine without TensorRT.

Entries appear atomically: ``build`` writes a temporary file that is renamed into place, and
the JSON file is written last, so an interrupted or failed build leaves no entry. An entry
that cannot be read (JSON missing or garbled, sizes that disagree, ``load`` raising) is
removed and rebuilt, with a warning naming the file.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from ..._version import __version__ as DLGSA_VERSION
from ..locks import exclusive
from ..settings import check_at_least, check_precision

T = TypeVar("T")

KEY_VERSION = 2
"""Bumped when the graph handed to TensorRT changes in a way the other fields do not show.

2: fp16/bf16 engines are exported in their own dtype on every torch-tensorrt version (version 1
built them in fp32 under torch-tensorrt 2.13+, whose first frame then failed), and dynamic TLC
graphs sum their windows with ``index_put`` instead of ``index_copy``. Every version-1 entry is
rebuilt; ``--clear --stale`` removes them."""

ENGINE_SUFFIX = ".ep"
META_SUFFIX = ".json"
META_FORMAT = "dlgsa-vs engine cache entry"

# the fields of a key that name software versions: what `clear(stale_only=True)` compares
VERSION_FIELDS = ("tensorrt_version", "torch_tensorrt_version", "torch_version", "dlgsa_version",
                  "key_version")


class EngineCacheError(RuntimeError):
    """The cache folder cannot be used, or an engine that was just built cannot be loaded."""


class EngineCacheWarning(UserWarning):
    """A cache entry was unreadable and has been removed (and is being rebuilt)."""


def default_cache_dir() -> Path:
    """$DLGSA_CACHE_DIR, else $XDG_CACHE_HOME/dlgsa-vs/engines, else ~/.cache/dlgsa-vs/engines."""
    if os.environ.get("DLGSA_CACHE_DIR"):
        return Path(os.environ["DLGSA_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dlgsa-vs" / "engines"


def _dist_version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "none"


def runtime_versions() -> dict[str, str | int]:
    """Versions of the software an engine depends on, read without importing TensorRT
    ("none" for a package that is not installed)."""
    return {
        "tensorrt_version": _dist_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
        "torch_tensorrt_version": _dist_version("torch-tensorrt", "torch_tensorrt"),
        "torch_version": _dist_version("torch"),
        "dlgsa_version": DLGSA_VERSION,
        "key_version": KEY_VERSION,
    }


def _hw(value: Any, name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"EngineKey.{name} must be a (height, width) pair of ints, got {value!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"EngineKey.{name} must be positive, got {(h, w)}")
    return h, w


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on. Equal keys may share an engine; any difference
    means another engine. Build-tuning options (workspace, optimisation level) are not in it:
    they change speed, not results, and ``--force`` rebuilds with other ones."""

    weights_sha256: str
    variant: str
    scale: int
    tlc: bool
    tlc_kernel: int
    batch: int
    dynamic: bool
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]
    precision: str
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    torch_tensorrt_version: str
    torch_version: str
    dlgsa_version: str = DLGSA_VERSION
    key_version: int = KEY_VERSION

    def __post_init__(self):
        for name in ("min_hw", "opt_hw", "max_hw"):
            object.__setattr__(self, name, _hw(getattr(self, name), name))
        check_precision(self.precision)
        check_at_least("batch", int(self.batch), 1)
        if not self.dynamic and not self.min_hw == self.opt_hw == self.max_hw:
            raise ValueError(f"a static EngineKey has one size: min_hw, opt_hw and max_hw must be equal, got "
                             f"{self.min_hw}, {self.opt_hw}, {self.max_hw}")
        if self.dynamic and not all(a <= b <= c for a, b, c in zip(self.min_hw, self.opt_hw, self.max_hw)):
            raise ValueError(f"EngineKey needs min <= opt <= max, got {self.min_hw}, {self.opt_hw}, {self.max_hw}")

    def fields(self) -> dict[str, Any]:
        """The key as plain JSON values (pairs as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def canonical_json(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of the canonical JSON of the fields: the name of the cache entry."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> "EngineKey":
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in data and n not in ("dlgsa_version", "key_version"))
        if missing:
            raise ValueError(f"engine key lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def shape_text(self) -> str:
        """The engine's LR size(s), WxH as the command lines write them (the key holds (H, W))."""
        def wxh(hw: tuple[int, int]) -> str:
            return f"{hw[1]}x{hw[0]}"

        if not self.dynamic:
            return wxh(self.opt_hw)
        return f"{wxh(self.min_hw)}..{wxh(self.max_hw)} (opt {wxh(self.opt_hw)})"

    def describe(self) -> str:
        """One line for logs: 'light x2 fp16 static 540x960 batch 1 TLC on NVIDIA ...'."""
        mode = "dynamic" if self.dynamic else "static"
        return (f"{self.variant} x{self.scale} {self.precision} {mode} {self.shape_text()} batch {self.batch} "
                f"TLC {'on' if self.tlc else 'off'}, {self.gpu_name} (sm {self.compute_capability})")


@dataclass
class CacheEntry:
    """One entry found on disk; ``problem`` says why it is unusable when it is."""

    digest: str
    engine_path: Path
    meta_path: Path
    size_bytes: int
    meta: dict | None
    problem: str | None = None

    @property
    def key(self) -> EngineKey | None:
        try:
            return EngineKey.from_fields(self.meta["key"]) if self.meta else None
        except (KeyError, TypeError, ValueError):
            return None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class EngineCache:
    """A folder of engines keyed by ``EngineKey`` (default: :func:`default_cache_dir`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"EngineCache({str(self.root)!r})"

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.digest()}{ENGINE_SUFFIX}"

    def meta_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.digest()}{META_SUFFIX}"

    # --- reading ---

    def _read_meta(self, meta_path: Path, engine_path: Path) -> tuple[dict | None, str | None]:
        """(meta, None) for a sound entry, else (meta or None, what is wrong)."""
        if not meta_path.is_file():
            return None, f"{meta_path.name} is missing"
        if not engine_path.is_file():
            return None, f"{engine_path.name} is missing"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"{meta_path} is not readable JSON ({exc})"
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT or not isinstance(meta.get("key"), dict):
            return None, f"{meta_path} is not a dlgsa-vs cache entry"
        size = engine_path.stat().st_size
        if meta.get("size_bytes") != size:
            return meta, (f"{engine_path} has {size} bytes but {meta_path.name} records "
                          f"{meta.get('size_bytes')} (truncated or replaced)")
        return meta, None

    def list(self) -> list[CacheEntry]:
        """Every entry in the folder, sound or not, oldest first."""
        if not self.root.is_dir():
            return []
        digests = {p.name[:-len(ENGINE_SUFFIX)] for p in self.root.glob(f"*{ENGINE_SUFFIX}") if not p.name.startswith(".")}
        digests |= {p.name[:-len(META_SUFFIX)] for p in self.root.glob(f"*{META_SUFFIX}") if not p.name.startswith(".")}
        entries = []
        for digest in digests:
            ep, mp = self.root / f"{digest}{ENGINE_SUFFIX}", self.root / f"{digest}{META_SUFFIX}"
            meta, problem = self._read_meta(mp, ep)
            if meta is not None and problem is None:
                key = CacheEntry(digest, ep, mp, 0, meta).key
                if key is None:
                    problem = f"{mp} holds no valid engine key"
                elif key.digest() != digest:
                    problem = f"{mp} holds the key of another entry ({key.digest()[:12]})"
            size = ep.stat().st_size if ep.is_file() else 0
            entries.append(CacheEntry(digest, ep, mp, size, meta, problem))
        return sorted(entries, key=lambda e: ((e.meta or {}).get("created", ""), e.digest))

    # --- building ---

    def _locked(self, digest: str) -> contextlib.AbstractContextManager:
        """Serialise builds of one key across processes (two would both spend minutes)."""
        return exclusive(self.root / f".{digest}.lock")

    def _remove(self, *paths: Path) -> None:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def get_or_build(self, key: EngineKey, build: Callable[[Path], None], load: Callable[[Path], T], *,
                     force: bool = False, log: Callable[[str], None] | None = _stderr) -> T:
        """The loaded engine of ``key``: reused when its entry exists and loads, else built.

        ``build(path)`` must write the engine to ``path`` (a temporary name in the cache
        folder); ``load(path)`` reads one back. ``force`` rebuilds even a sound entry.
        """
        log = log or (lambda _msg: None)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineCacheError(f"cannot create the engine cache folder {self.root}: {exc}. Set "
                                   f"DLGSA_CACHE_DIR to a writable folder") from None
        digest = key.digest()
        ep, mp = self.engine_path(key), self.meta_path(key)
        with self._locked(digest):
            if ep.exists() or mp.exists():
                meta, problem = self._read_meta(mp, ep)
                if problem is None and meta["key"] != key.fields():
                    problem = f"{mp} records another key"
                if problem is None and not force:
                    try:
                        engine = load(ep)
                    except Exception as exc:  # whatever the loader raises: the entry is unusable
                        problem = f"{ep} cannot be loaded ({type(exc).__name__}: {_first_line(exc)})"
                    else:
                        log(f"dlgsa-vs: using cached TensorRT engine {ep}")
                        return engine
                if problem is not None:
                    warnings.warn(f"engine cache entry {ep} is unusable: {problem}; removing it and "
                                  f"building it again", EngineCacheWarning, stacklevel=2)
                self._remove(ep, mp)
            log(f"dlgsa-vs: building {key.describe()} into {ep} (this can take minutes)")
            self._build(key, build, ep, mp, log)
            try:
                return load(ep)
            except Exception as exc:
                self._remove(ep, mp)
                raise EngineCacheError(f"the engine just built at {ep} cannot be loaded "
                                       f"({type(exc).__name__}: {_first_line(exc)}); the entry was removed") from exc

    def _build(self, key: EngineKey, build: Callable[[Path], None], ep: Path, mp: Path,
               log: Callable[[str], None]) -> None:
        tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp_engine = self.root / f".{ep.stem}.{tag}.part{ENGINE_SUFFIX}"
        tmp_meta = self.root / f".{mp.stem}.{tag}.part{META_SUFFIX}"
        start = time.monotonic()
        try:
            build(tmp_engine)
            if not tmp_engine.is_file() or tmp_engine.stat().st_size == 0:
                raise EngineCacheError(f"the engine build wrote nothing to {tmp_engine}")
            seconds = time.monotonic() - start
            size = tmp_engine.stat().st_size
            meta = {"format": META_FORMAT, "digest": key.digest(), "key": key.fields(),
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "build_seconds": round(seconds, 3), "size_bytes": size, "engine_file": ep.name}
            tmp_meta.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            os.replace(tmp_engine, ep)
            os.replace(tmp_meta, mp)  # last: the entry exists from here on
        except BaseException:
            self._remove(tmp_engine, tmp_meta, ep, mp)
            raise
        log(f"dlgsa-vs: built {ep.name} in {seconds:.1f} s ({size / 2**20:.1f} MiB)")

    # --- removing ---

    def is_stale(self, entry: CacheEntry, current: Mapping[str, Any] | None = None) -> bool:
        """Unusable, or built with software versions other than ``current`` (default: these)."""
        if entry.problem is not None or entry.key is None:
            return True
        current = runtime_versions() if current is None else current
        key = entry.key.fields()
        return any(key.get(name) != current[name] for name in VERSION_FIELDS if name in current)

    def clear(self, *, stale_only: bool = False, current: Mapping[str, Any] | None = None) -> list[CacheEntry]:
        """Remove every entry (or only the stale ones, see :meth:`is_stale`) and leftovers of
        interrupted builds; returns the entries removed."""
        removed = [e for e in self.list() if not stale_only or self.is_stale(e, current)]
        for entry in removed:
            self._remove(entry.engine_path, entry.meta_path)
        if self.root.is_dir():
            for p in self.root.glob(".*.part*"):
                if not _pid_alive(_part_pid(p)):  # a build in progress elsewhere keeps its file
                    self._remove(p)
            for p in self.root.glob(".*.lock"):
                _remove_unheld_lock(p)
        return removed


def _part_pid(path: Path) -> int:
    # .<digest>.<pid>.<random>.part.ep
    parts = path.name.split(".")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else -1


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_unheld_lock(path: Path) -> None:
    try:
        import fcntl
    except ImportError:
        return
    try:
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
    except OSError:  # held by a build in progress, or already gone
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
