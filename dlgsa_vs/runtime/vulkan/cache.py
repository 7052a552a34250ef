"""Converted ncnn graphs on disk, in the TensorRT engine cache's discipline (``trt/cache.py``).

A graph is valid for the exact weights, input size, weight precision, dynamic-conv form and
converter/runtime versions it was made with; all of them are in an ``NcnnKey``, whose digest
names the entry's files:

    <digest>.param   the ncnn graph
    <digest>.bin     its weights
    <digest>.json    the key, when it was converted, how long that took, the two files' sizes

Entries appear atomically: the conversion writes temporary names that are renamed into place,
the JSON last, so an interrupted conversion leaves no entry. An entry that cannot be used (JSON
missing or garbled, sizes that disagree, ncnn failing to load it) is removed and converted
again, with one warning naming the file. Default folder: $DLGSA_CACHE_DIR/ncnn, else
$XDG_CACHE_HOME/dlgsa-vs/ncnn, else ~/.cache/dlgsa-vs/ncnn.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, TypeVar

from ..._version import __version__ as DLGSA_VERSION
from ..locks import exclusive

T = TypeVar("T")

KEY_VERSION = 1
"""Bumped when the graph handed to pnnx changes in a way the other fields do not show."""

META_FORMAT = "dlgsa-vs ncnn cache entry"


class NcnnCacheError(RuntimeError):
    """The cache folder cannot be used, or a graph just converted cannot be loaded."""


class NcnnCacheWarning(UserWarning):
    """A cache entry was unusable and has been removed (and is being converted again)."""


def default_cache_dir() -> Path:
    if os.environ.get("DLGSA_CACHE_DIR"):
        return Path(os.environ["DLGSA_CACHE_DIR"]).expanduser() / "ncnn"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dlgsa-vs" / "ncnn"


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


@dataclass(frozen=True)
class NcnnKey:
    """Everything a converted graph depends on; any difference means another graph."""

    weights_sha256: str
    variant: str
    scale: int
    tlc: bool
    tlc_kernel: int
    height: int
    width: int
    precision: str  # the weights' storage in the .bin: fp16 or fp32
    dynamic_conv: str
    ncnn_version: str
    pnnx_version: str
    torch_version: str
    dlgsa_version: str = DLGSA_VERSION
    key_version: int = KEY_VERSION

    @classmethod
    def with_versions(cls, **fields) -> "NcnnKey":
        """A key with the installed ncnn, pnnx and torch versions filled in."""
        return cls(**fields, ncnn_version=_dist_version("ncnn"), pnnx_version=_dist_version("pnnx"),
                   torch_version=_dist_version("torch"))

    def fields(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def describe(self) -> str:
        return (f"{self.variant} x{self.scale} {self.precision} {self.height}x{self.width} "
                f"TLC {'on' if self.tlc else 'off'}")


class NcnnCache:
    """A folder of converted graphs keyed by ``NcnnKey`` (default: :func:`default_cache_dir`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def paths(self, key: NcnnKey) -> tuple[Path, Path, Path]:
        """(param, bin, json) of the entry of ``key``."""
        digest = key.digest()
        return tuple(self.root / f"{digest}{suffix}" for suffix in (".param", ".bin", ".json"))

    def _problem(self, key: NcnnKey) -> str | None:
        """None for a sound entry, else what is wrong with it."""
        param, weights, meta_path = self.paths(key)
        for path in (meta_path, param, weights):
            if not path.is_file():
                return f"{path.name} is missing"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return f"{meta_path} is not readable JSON ({exc})"
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT or meta.get("key") != key.fields():
            return f"{meta_path} is not the entry of this key"
        sizes = {"param": param.stat().st_size, "bin": weights.stat().st_size}
        if meta.get("size_bytes") != sizes:
            return f"the files' sizes {sizes} are not the recorded {meta.get('size_bytes')} (truncated or replaced)"
        return None

    def _locked(self, digest: str) -> contextlib.AbstractContextManager:
        """One conversion of a key at a time across processes."""
        return exclusive(self.root / f".{digest}.lock")

    def get_or_convert(self, key: NcnnKey, convert: Callable[[Path, Path], None], load: Callable[[Path, Path], T],
                       log: Callable[[str], None] | None = None) -> T:
        """The loaded graph of ``key``: reused when its entry exists and loads, else converted.

        ``convert(param, bin)`` writes the two files (temporary names in the cache folder);
        ``load(param, bin)`` reads them (raising when it cannot).
        """
        log = log or (lambda _msg: None)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NcnnCacheError(f"cannot create the ncnn cache folder {self.root}: {exc}. Set DLGSA_CACHE_DIR "
                                 f"to a writable folder") from None
        param, weights, meta_path = self.paths(key)
        with self._locked(key.digest()):
            if param.exists() or weights.exists() or meta_path.exists():
                problem = self._problem(key)
                if problem is None:
                    try:
                        graph = load(param, weights)
                    except Exception as exc:  # whatever the loader raises: the entry is unusable
                        problem = f"ncnn cannot load it ({type(exc).__name__}: {exc})"
                    else:
                        log(f"dlgsa-vs: using the cached ncnn graph {param}")
                        return graph
                warnings.warn(f"ncnn cache entry {param} is unusable: {problem}; removing it and converting "
                              f"the network again", NcnnCacheWarning, stacklevel=3)
                self._remove(param, weights, meta_path)
            log(f"dlgsa-vs: converting {key.describe()} for ncnn into {param}")
            self._convert(key, convert, param, weights, meta_path, log)
            try:
                return load(param, weights)
            except Exception as exc:
                self._remove(param, weights, meta_path)
                raise NcnnCacheError(f"the ncnn graph just converted at {param} cannot be loaded "
                                     f"({type(exc).__name__}: {exc}); the entry was removed") from exc

    def _convert(self, key: NcnnKey, convert: Callable[[Path, Path], None], param: Path, weights: Path,
                 meta_path: Path, log: Callable[[str], None]) -> None:
        tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp = [self.root / f".{p.stem}.{tag}.part{p.suffix}" for p in (param, weights, meta_path)]
        start = time.monotonic()
        try:
            convert(tmp[0], tmp[1])
            sizes = {"param": tmp[0].stat().st_size, "bin": tmp[1].stat().st_size}
            seconds = time.monotonic() - start
            meta = {"format": META_FORMAT, "digest": key.digest(), "key": key.fields(),
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "convert_seconds": round(seconds, 3), "size_bytes": sizes}
            tmp[2].write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            os.replace(tmp[0], param)
            os.replace(tmp[1], weights)
            os.replace(tmp[2], meta_path)  # last: the entry exists from here on
        except BaseException:
            self._remove(*tmp, param, weights, meta_path)
            raise
        log(f"dlgsa-vs: converted {param.name} in {seconds:.1f} s ({sizes['bin'] / 2**20:.1f} MiB of weights)")

    @staticmethod
    def _remove(*paths: Path) -> None:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
