"""Checkpoint files: read them safely, deduce the network from the tensors, save safetensors.

The network (``arch``) never knows how it is loaded. Here a state dict is read from an
authors' BasicSR ``.pth`` (``params`` / ``params_ema`` wrappers, optional ``module.``
prefix), a plain state dict, or ``.safetensors``; its hyper-parameters (channels, groups,
blocks, scale, heads, window) are deduced from key names and shapes, so users pass just a
path. ``.pth`` files are read with ``torch.load(weights_only=True)``: no arbitrary unpickling.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..arch import DLGSANet, VARIANTS, default_tlc_kernel
from .packaged import DEFAULT_MODEL, MODELS, MODELS_DIR, packaged_file



class WeightsError(ValueError):
    """A checkpoint file that cannot be used, with the reason and what to do."""


def default_model_path(name: str, scale: int) -> Path:
    """Where the packaged weights of a model name (``packaged.MODELS``) and scale live."""
    return packaged_file(name, scale, MODELS_DIR)


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file (BasicSR .pth, plain state dict, safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    if path.stat().st_size == 0:
        raise WeightsError(f"model file is empty: {path}")
    metadata: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = dict(fh.metadata() or {})
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is not a readable safetensors file (truncated or corrupt?): {exc}") from None
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds here: pickle, zip, EOF, unsafe globals
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "weights_only" in str(exc) or "Unsupported global" in str(exc):
                raise WeightsError(f"{path} holds Python objects besides tensors, which are not loaded "
                                   f"for safety (torch.load weights_only=True): {msg}. Save just the "
                                   f"state dict, e.g. torch.save(model.state_dict(), path)") from None
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {msg}") from None
        state = _unwrap(obj, path)
    return _strip_prefix(state), metadata


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise WeightsError(f"{path} holds no state dict: expected tensors by name, or a BasicSR file "
                       f"with 'params_ema' or 'params'; found {type(obj).__name__}"
                       + (f" with keys {sorted(obj)[:8]}" if isinstance(obj, dict) else ""))


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


_GROUP_KEY = re.compile(r"deep_feature_extraction\.(\d+)\.body\.(\d+)\.")


def detect_config(state: dict[str, torch.Tensor], source: str = "state dict") -> dict:
    """Constructor keywords of the DLGSANet that produced ``state``, read from its shapes."""
    embed = state.get("overlap_embed.0.proj.weight")
    upsample = state.get("upsample.0.weight")
    if embed is None or upsample is None:
        sample = ", ".join(sorted(state)[:5]) or "no tensors"
        raise WeightsError(f"{source} is not a DLGSANet checkpoint: it lacks "
                           f"'overlap_embed.0.proj.weight' / 'upsample.0.weight' (first keys: {sample})")
    dim, in_chans = embed.shape[:2]
    body: dict[int, set[int]] = {}
    for key in state:
        m = _GROUP_KEY.match(key)
        if m:
            body.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not body:
        raise WeightsError(f"{source} has no 'deep_feature_extraction.<g>.body.<i>' tensors: not DLGSANet")
    groups = max(body) + 1
    blocks = max(body[0]) // 2  # body = B x (local, global) blocks, then the closing conv
    out_ch = upsample.shape[0]
    scale = round((out_ch / in_chans) ** 0.5)
    if in_chans * scale * scale != out_ch:
        raise WeightsError(f"{source}: upsample.0.weight has {out_ch} output channels, "
                           f"not {in_chans} x scale^2 for any integer scale")

    def shape(key: str) -> torch.Size:
        if key not in state:
            raise WeightsError(f"{source} is incomplete: missing '{key}'")
        return state[key].shape

    p = "deep_feature_extraction.0.body."
    window = shape(p + "0.IDynamicDWConv.conv.conv1.1.weight")[-1]
    kernel_planes = shape(p + "0.IDynamicDWConv.conv.conv2.0.weight")[0]
    idyn_heads = dim * window * window // kernel_planes
    attn_heads = shape(p + "1.restormer_attn.temperature")[0]
    ffn_local = shape(p + "0.IDynamic_ffn.project_in.weight")[0] / (2 * dim)
    ffn_global = shape(p + "1.restormer_ffn.project_in.weight")[0] / (2 * dim)
    return dict(in_chans=in_chans, dim=dim, groups=groups, blocks=blocks, window_size=window,
                idynamic_num_heads=idyn_heads, idynamic_ffn_expansion_factor=ffn_local,
                restormer_num_heads=attn_heads, restormer_ffn_expansion_factor=ffn_global,
                upscale=scale, tlc_kernel=default_tlc_kernel(scale))


def variant_name(config: dict) -> str:
    """'tiny' / 'light' / 'full' when the shape matches a published variant, else 'custom'."""
    for name, v in VARIANTS.items():
        if all(config.get(k) == val for k, val in v.items()) and config.get("window_size") == 7:
            return name
    return "custom"


def model_from_state_dict(state: dict[str, torch.Tensor], source: str = "state dict",
                          tlc: bool = True) -> DLGSANet:
    """Build the network that ``state`` describes and load it strictly, with precise errors."""
    config = detect_config(state, source)
    model = DLGSANet(**config, tlc_flag=tlc)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
        raise WeightsError(f"{source} does not match a DLGSANet with C={config['dim']}, "
                           f"G={config['groups']}, B={config['blocks']}, x{config['upscale']}: "
                           + "; ".join(parts) + ". Is the file truncated or of another network?")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.eval()


def load_model(path: str | os.PathLike | None = None, variant: str | None = None,
               scale: int | None = None, tlc: bool = True) -> DLGSANet:
    """The network in eval mode.

    Without ``path``: the packaged weights of ``variant``, a model name of ``packaged.MODELS``
    (default "light"; "light-video" for compressed video), at ``scale`` (default 2). With
    ``path``: the architecture and scale are read from the file; if the caller also names a
    variant or scale, a file that disagrees is an error rather than a surprise.
    """
    path, state = _checked_weights(path, variant, scale)
    return model_from_state_dict(state, source=str(path), tlc=tlc)


def model_scale(path: str | os.PathLike | None = None, variant: str | None = None,
                scale: int | None = None) -> int:
    """The factor the weights ``load_model`` would load upscale by, read from the file's tensor
    shapes without building the network (the same errors as ``load_model``)."""
    path, state = _checked_weights(path, variant, scale)
    return detect_config(state, str(path))["upscale"]


def _checked_weights(path, variant: str | None, scale: int | None) -> tuple[Path, dict[str, torch.Tensor]]:
    """The weights file of ``load_model``'s arguments and its state dict, checked against the
    variant and scale asked for."""
    if variant is not None and variant not in MODELS:
        raise WeightsError(f"unknown variant {variant!r}: choose one of {', '.join(MODELS)}")
    if path is None:
        variant = variant or DEFAULT_MODEL
        scale = scale or 2
        path = default_model_path(variant, scale)
        if not path.is_file():
            shipped = sorted(p.name for p in MODELS_DIR.glob("*.safetensors")) or ["none"]
            raise WeightsError(f"no packaged weights for {variant} x{scale}: {path} is missing "
                               f"(packaged: {', '.join(shipped)}). Pass a model file with model_path, "
                               f"or reinstall dlgsa-vs if the file was deleted")
    state, _ = read_state_dict(path)
    config = detect_config(state, str(path))
    if scale is not None and config["upscale"] != scale:
        raise WeightsError(f"{path} is a x{config['upscale']} model but scale={scale} was asked: "
                           f"pass scale={config['upscale']} or a x{scale} model file")
    if variant is not None and variant_name(config) != MODELS[variant].variant:
        raise WeightsError(f"{path} holds a DLGSANet-{variant_name(config)} but variant={variant!r} was asked: "
                           f"drop the variant argument or pass a {MODELS[variant].variant} model file")
    return Path(path), state


def save_safetensors(model_or_state, path: str | os.PathLike, **metadata: str) -> Path:
    """Write weights as safetensors with metadata (variant, scale, date, ...), atomically."""
    from safetensors.torch import save_file

    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    config = detect_config(state)
    meta = {"format": "pt", "network": "DLGSANet", "variant": variant_name(config),
            "scale": str(config["upscale"]), "date": datetime.date.today().isoformat()}
    meta.update({k: str(v) for k, v in metadata.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; weights are for everyone to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def weights_digest(weights: Any, as_dtype: Any = None) -> str:
    """sha256 of a state dict's content: tensor names, dtypes, shapes and bytes, in sorted
    name order. ``weights`` is a state dict or an ``nn.Module`` (its ``state_dict()``).

    Where the tensors came from (file name, path, .pth or .safetensors) does not enter it.
    ``as_dtype``: hash the floating-point tensors cast to this dtype, i.e. the weights an
    engine of that precision holds (an fp32 model and its fp16 copy give one fp16 engine).
    """
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    h = hashlib.sha256(b"dlgsa-vs weights v1\0")
    for name in sorted(state):
        t = state[name].detach().to("cpu")
        if as_dtype is not None and t.is_floating_point():
            t = t.to(as_dtype)
        t = t.contiguous().reshape(-1)
        raw = t.view(torch.uint8) if t.dtype != torch.uint8 else t  # bytes, any dtype
        header = f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(state[name].shape)}\0{raw.numel()}\0"
        h.update(header.encode())
        h.update(raw.numpy().tobytes())
    return h.hexdigest()
