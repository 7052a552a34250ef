"""Command line of the cluster mode: ``dlgsa-upscale in.mkv --ray [ADDRESS]`` and
``dlgsa-upscale-ray IN... [--address ADDRESS]`` (several files or folders in one queue).

The video is cut at keyframes into chunks of about --chunk-seconds, each chunk is upscaled
and encoded by a Ray task (one GPU each where the cluster has GPUs, else --cpus-per-task
CPUs), and the chunks are joined by stream copy with the input's audio, subtitles and other
streams. Work is kept in <output>.chunks/ (shared storage: every node must see the input
and the output folder at the same path); a re-run after a crash resumes from it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runtime.settings import RunSettings, SettingsError

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".mov", ".m4v", ".webm", ".ts", ".m2ts", ".avi", ".mxf", ".nut"}
RAY_BACKENDS = ("auto", "cuda", "vulkan", "cpu")   # trt engines are not built on Ray workers yet


def add_cluster_options(ap: argparse.ArgumentParser, ray_flag: bool = True) -> None:
    g = ap.add_argument_group("cluster (Ray)")
    if ray_flag:
        g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="upscale in chunks as Ray tasks on the cluster at ADDRESS (host:port of "
                            "`ray start --head`), or without ADDRESS the one RAY_ADDRESS or `ray start` "
                            "names, else a new local one; see docs/cluster.md")
    else:
        g.add_argument("--address", default="", metavar="ADDRESS",
                       help="Ray cluster address (default: RAY_ADDRESS, the `ray start` cluster of "
                            "this machine, else a new local one)")
    g.add_argument("--chunk-seconds", type=float, default=60.0, metavar="S",
                   help="chunk length: cut at the first keyframe at least S seconds after the last "
                        "cut (default 60)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="new local cluster only: its CPU slots (default: all cores)")
    g.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N",
                   help="CPUs a chunk task takes on a cluster without GPUs (default 1)")
    g.add_argument("--retries", type=int, default=3, metavar="N",
                   help="times a chunk whose worker died is started again (default 3)")
    g.add_argument("--keep-chunks", action="store_true",
                   help="keep <output>.chunks/ (chunk files and manifest) after success")


def build_parser() -> argparse.ArgumentParser:
    from ..runtime.packaged import VIDEO_DEFAULT_MODEL
    from .common import Parser, add_device_options, add_encoding_options, add_model_options

    ap = Parser(prog="dlgsa-upscale-ray", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="video files and/or folders of them")
    ap.add_argument("-o", "--output", metavar="PATH",
                    help="one input: the output file; several: an existing folder for the outputs "
                         "(default: <input>_x<scale> next to each input)")
    add_model_options(ap, VIDEO_DEFAULT_MODEL)
    add_device_options(ap, backends=RAY_BACKENDS, compile_options=False)
    add_encoding_options(ap)
    ap.add_argument("-y", "--overwrite", action="store_true",
                    help="replace existing outputs (default: refuse, as FFmpeg does)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per worker every few seconds")
    ap.add_argument("--deinterlace", choices=("auto", "off"), default="auto",
                    help="auto (default): refuse interlaced and telecined inputs, which Ray runs do not "
                         "deinterlace yet (dlgsa-upscale without --ray does); off: upscale their frames as "
                         "stored")
    add_cluster_options(ap, ray_flag=False)
    return ap


def _inputs(names: list[str]) -> list[Path]:
    from ..video.errors import VideoError

    out: list[Path] = []
    for name in names:
        p = Path(name)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS
                           and ".part-" not in f.name)
            if not found:
                raise VideoError(f"folder {p} holds no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})",
                                 code=2)
            out.extend(found)
        elif not p.exists():
            raise VideoError(f"input not found: {p}", code=2)
        else:
            out.append(p)
    return out


def _refuse_fields(files: list[Path], mode: str) -> None:
    """Chunks are upscaled as stored: an input that needs deinterlacing is refused (one line)."""
    from ..video.errors import VideoError
    from ..video.fields import plan
    from ..video.probe import probe

    if mode == "off":
        return
    if mode != "auto":
        raise VideoError(f"--deinterlace {mode} is not available with --ray yet: run without --ray", code=2)
    for f in files:
        info = probe(f)
        try:
            found = plan(info, mode)
        finally:
            info.container.close()
        if found.active:
            raise VideoError(f"{f} is {found.kind} ({found.evidence}): Ray runs do not deinterlace yet; "
                             f"upscale it without --ray, or add --deinterlace off to upscale its frames "
                             f"as stored", code=2)


def run_from_args(args, settings: RunSettings, inputs: list[str], address: str | None) -> int:
    """Both front ends end here; returns the exit status (errors raise VideoError)."""
    from .common import encoder_options, weights_message
    from ..video.errors import VideoError
    from ..video.files import default_output, refuse_existing
    from ..runtime.weights import WeightsError, model_scale

    for flag in ("start", "frames", "preview", "compile", "cuda_graphs"):
        if getattr(args, flag, None):
            raise VideoError(f"--{flag.replace('_', '-')} is not available with --ray", code=2)
    if settings.backend not in RAY_BACKENDS:
        raise VideoError(f"--backend {settings.backend} is not available with --ray yet: use cuda, vulkan or auto", code=2)
    try:
        import ray  # noqa: F401
    except ImportError:
        from ..cluster.run import INSTALL_HINT

        raise VideoError(INSTALL_HINT, code=2) from None
    from ..cluster import run
    from ..segments.encode import JobSettings
    from ..segments.work import describe, plan_job

    files = _inputs(inputs)
    _refuse_fields(files, getattr(args, "deinterlace", "off"))
    try:
        scale = model_scale(settings.model_path, variant=settings.variant, scale=settings.scale)
    except WeightsError as exc:
        raise VideoError(weights_message(exc), code=2) from None
    out_dir = None
    if len(files) > 1 and args.output:
        out_dir = Path(args.output)
        if not out_dir.is_dir():
            raise VideoError(f"with several inputs -o names an existing folder; {out_dir} is not one", code=2)
    # the workers get plain data: the run settings (scale and threads filled in) and the encoder's
    # (device_index 0: Ray gives each task its GPU as the only visible one)
    run_settings = settings.replace(scale=scale, device_index=0,
                                    threads=settings.threads or max(1, int(args.cpus_per_task)))
    job_settings = JobSettings(run_settings, args.encoder, args.crf, args.pix_fmt,
                               encoder_options(args.encoder_option)).to_dict()
    jobs = []
    for f in files:
        if out_dir is not None:
            out = out_dir / default_output(f, scale).name
        elif args.output:
            out = Path(args.output)
        else:
            out = default_output(f, scale)
        refuse_existing(out, args.overwrite)   # an interrupted job has no output yet: it resumes
        jobs.append(plan_job(f, out, job_settings, args.chunk_seconds))
    run.connect(address or None, args.workers)
    run.run_jobs(jobs, cpus_per_task=args.cpus_per_task, max_retries=args.retries,
                 keep_chunks=args.keep_chunks, verbose=args.verbose, progress=not args.quiet)
    status = 0
    for job in jobs:
        if job.failed:
            print(f"error: {job.input.name}: {job.failed}; finished chunks are kept in {job.work} "
                  f"(run again to resume)", file=sys.stderr)
            status = 1
        elif not args.quiet:
            print(describe(job), file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    from .common import fail, settings_from_args, usage_message
    from ..video.errors import VideoError

    args = build_parser().parse_args(argv)
    try:
        return run_from_args(args, settings_from_args(args), args.inputs, args.address)
    except SettingsError as exc:
        return fail(usage_message(exc), 2)
    except VideoError as exc:
        return fail(str(exc), exc.code)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): finished chunks are kept; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
