"""Upscale a video file with DLGSANet: decode, upscale and encode in one process (PyAV).

    dlgsa-upscale in.mp4                        -> in_x2.mp4 next to it
    dlgsa-upscale in.mkv -s 4 -o out.mkv -c libx265 --crf 20
    dlgsa-upscale in.mp4 --preview 100          -> in_x2_preview100.png (bicubic | network)
    dlgsa-upscale --make-sample sample.mp4      -> a 2 s test clip with audio, made here

Every other stream (audio, subtitles, attachments, chapters, metadata) is copied untouched
where the output container can hold it; what cannot be copied is said in one line. The
output is written to a hidden temporary file beside the final one and renamed when
complete, so an error or Ctrl-C never leaves a partial file. Exit status: 0 done, 1 the
run failed, 2 unusable options or input, 3 done but some frames could not be decoded
(listed with their timestamps), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a machine whose
# cores are busy with other work (or with this program's decoder and encoder threads), spinning
# threads made the network up to 10x slower here (19 s instead of 1.6 s per 160x90 frame on 2
# cores); when the cores are free, sleeping costs about 5%. Set OMP_WAIT_POLICY to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import av  # noqa: E402

from ..packaged import VIDEO_DEFAULT_MODEL  # noqa: E402
from ..settings import SettingsError  # noqa: E402
from ..video.errors import DamagedInput, Interrupted, VideoError  # noqa: E402
from .common import (OPTION_NAMES, add_device_options, add_encoding_options, add_model_options,  # noqa: E402
                     encoder_options, fail, model_label, settings_from_args, usage_message, weights_message)

PROG = "dlgsa-upscale"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("input", nargs="?", help="video file (anything FFmpeg reads: mp4, mkv, mov, webm, ts, ...)")
    ap.add_argument("-o", "--output", metavar="PATH",
                    help="output file; the extension picks the container "
                         "(default: <input>_x<scale> with the input's extension, .mkv for others)")
    add_model_options(ap, VIDEO_DEFAULT_MODEL)
    add_device_options(ap, streams_option=True)
    add_encoding_options(ap)
    g = ap.add_argument_group("range and output")
    g.add_argument("--start", metavar="TIME", help="start at this time: seconds (12.5) or [HH:]MM:SS(.ms); "
                                                   "the output then starts at 0")
    g.add_argument("--frames", type=int, metavar="N", help="upscale at most N frames")
    g.add_argument("--preview", type=int, metavar="N",
                   help="write a side-by-side PNG (bicubic | network) of frame N (from 0) and stop; "
                        "-o names the PNG")
    g.add_argument("--no-resume", action="store_true",
                   help="start over: drop the segments an interrupted run of this output left in "
                        "<output>.chunks/ (default: continue from them)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar, notes or summary")
    g.add_argument("-v", "--verbose", action="store_true", help="also show FFmpeg's own messages")
    g.add_argument("--make-sample", metavar="PATH",
                   help="make a short test clip (160x90, 2 s, 12 fps, with audio) at PATH and stop")
    from .ray import add_cluster_options  # --ray and its options (docs/cluster.md)

    add_cluster_options(ap)
    return ap


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _on_sigterm(signum, frame):
    raise Interrupted("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from ..video.probe import set_log_mode

        set_log_mode(args.verbose)
        return _main(args)
    except VideoError as exc:
        return fail(str(exc), exc.code)
    except SettingsError as exc:
        return fail(usage_message(exc), 2)
    except (KeyboardInterrupt, Interrupted) as exc:
        name = exc.signal_name if isinstance(exc, Interrupted) else "Ctrl-C"
        kept = ("; finished segments are kept: run the same command again to continue"
                if getattr(args, "segmented", False) else "")
        print(f"interrupted ({name}): stopped, the partial output was removed{kept}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours still gets one line (--verbose: the trace)
        if args.verbose:
            import traceback

            traceback.print_exc()
        text = " ".join(str(exc).split()) or type(exc).__name__
        return fail(f"unexpected {type(exc).__name__}: {text} (run with -v for the details, and "
                    f"please report it)", 1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args) -> int:
    from ..weights import WeightsError

    if args.make_sample:
        return _make_sample(args)
    if not args.input:
        raise VideoError("give a video file (or --make-sample PATH to make one)", code=2)
    settings = settings_from_args(args)
    if args.ray is not None:
        from .ray import run_from_args

        return run_from_args(args, settings, [args.input], args.ray)
    if args.frames is not None and args.frames < 1:
        raise VideoError(f"--frames must be >= 1, got {args.frames}", code=2)
    if args.preview is not None and args.preview < 0:
        raise VideoError(f"--preview takes a frame number from 0, got {args.preview}", code=2)
    enc_opts = encoder_options(args.encoder_option)
    start = None
    if args.start:
        from ..video.probe import parse_time

        start = parse_time(args.start)
    from ..backends import StreamRunner, create_backend_upscaler, select_backend

    backend = select_backend(settings)
    from ..video.probe import probe

    src = Path(args.input)
    info = probe(src)
    try:
        import torch

        if settings.threads:
            torch.set_num_threads(settings.threads)
        try:
            upscaler = create_backend_upscaler(settings, backend, input_hw=(info.height, info.width),
                                               log=None if args.quiet else lambda m: print(m, file=sys.stderr),
                                               names=OPTION_NAMES)
        except WeightsError as exc:
            raise VideoError(weights_message(exc), code=2) from None
        if settings.num_streams > 1 and backend.name == "cpu":
            if not args.quiet:
                print(f"note: --num-streams {settings.num_streams} is not used on the CPU (one pass at a "
                      f"time, on all its cores)", file=sys.stderr)
        elif settings.num_streams > 1:  # the pipeline keeps that many batches in flight
            upscaler = StreamRunner(upscaler, settings.num_streams)
        device = upscaler.plan.summary()
        model = model_label(settings)
        if args.preview is not None:
            return _preview(args, info, upscaler, src, model)
        if start is None and args.frames is None and _segmented(args, info):
            return _upscale_segments(args, info, upscaler, src, settings, enc_opts, device, model)
        return _upscale(args, info, upscaler, src, start, enc_opts, device, model)
    finally:
        info.container.close()


def _make_sample(args) -> int:
    from ..video.sample import make_sample

    path = Path(args.make_sample)
    if args.input:
        raise VideoError("--make-sample makes a clip and stops: give no input file with it", code=2)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise VideoError(f"folder {folder} does not exist", code=2)
    t = time.perf_counter()
    if path.suffix.lower() not in (".mp4", ".mkv", ".mov", ".m4v"):
        raise VideoError(f"the sample is H.264 with AAC audio: give it a .mp4, .mkv or .mov name, "
                         f"not {path.name}", code=2)
    try:
        make_sample(path)
    except av.FFmpegError as exc:
        from ..video.output import storage_error

        raise (storage_error(exc, path) or VideoError(f"cannot write {path}: {exc}")) from None
    if not args.quiet:
        print(f"wrote {path}: 24 frames of 160x90 (2.0 s at 12 fps, H.264) with AAC stereo audio "
              f"in {time.perf_counter() - t:.1f} s; now run: {PROG} {path}", file=sys.stderr)
    return 0


def _preview(args, info, upscaler, src: Path, model: str) -> int:
    from ..video.preview import preview

    out = Path(args.output) if args.output else src.with_name(
        f"{src.stem}_x{upscaler.scale}_preview{args.preview}.png")
    if out.suffix.lower() != ".png":
        raise VideoError(f"--preview writes a PNG: give -o a .png name, not {out.name}", code=2)
    if out.resolve() == src.resolve():
        raise VideoError(f"the output would overwrite the input {src}: choose another -o", code=2)
    path, t, seconds = preview(info, upscaler, args.preview, out)
    if not args.quiet:
        print(f"{src.name} frame {args.preview} (t={t:.3f} s, {info.width}x{info.height}) -> {path}: "
              f"bicubic | {model}, x{upscaler.scale}, network {seconds:.1f} s", file=sys.stderr)
    return 0


def _tile_note(upscaler, height: int, width: int) -> None:
    if upscaler.tile_for(height, width) != (0, 0):
        print(f"note: {upscaler.tile_summary(height, width)}", file=sys.stderr)


def _reuse_clause(upscaler) -> str:
    """"; reuse exact: N% of tiles ... reused" for the summary line ("" with reuse off)."""
    said = upscaler.reuse_summary() if hasattr(upscaler, "reuse_summary") else None
    return f"; {said}" if said else ""


def _segmented(args, info) -> bool:
    """Whole-file runs longer than one segment go through resumable segments (docs/video.md)."""
    return bool(info.duration) and float(info.duration) > args.chunk_seconds


def _upscale_segments(args, info, upscaler, src: Path, settings, enc_opts: dict, device: str, model: str) -> int:
    from ..segments.encode import JobSettings
    from ..segments.resume import run_segments
    from ..video.output import check_paths, default_output

    out = Path(args.output) if args.output else default_output(src, upscaler.scale)
    check_paths(src, out)
    job = JobSettings(settings.replace(scale=upscaler.scale), args.encoder, args.crf, args.pix_fmt, enc_opts)
    args.segmented = True
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    try:
        r = run_segments(src, out, upscaler, job, segment_seconds=args.chunk_seconds,
                         resume=not args.no_resume, keep=args.keep_chunks,
                         progress=False if args.quiet else None, log=log)
    except DamagedInput as exc:
        # Only the one-pass run counts a damaged file's frames (which are missing, exit 3).
        from ..segments.work import work_folder

        log(f"note: {exc}: the input is damaged there; upscaling it in one pass instead, which "
            f"lists every missing frame (an interrupted run of this file starts over)")
        shutil.rmtree(work_folder(out), ignore_errors=True)
        args.segmented = False
        return _upscale(args, info, upscaler, src, None, enc_opts, device, model)
    if not args.quiet:
        w, h, s = info.width, info.height, upscaler.scale
        _tile_note(upscaler, h, w)
        copied = f"; copied {len(r.join.copied)} other stream(s)" if r.join.copied else ""
        print(f"{src.name} -> {r.output}: {r.frames} frames {w}x{h} -> {w * s}x{h * s} (x{s}, {model}) in "
              f"{r.segments} segments ({r.computed} computed now, {r.kept} kept), in {r.seconds:.1f} s "
              f"(network {r.model_seconds:.1f} s on {device}; join {r.join.seconds:.2f} s), "
              f"{human_size(r.join.bytes)}{copied}{_reuse_clause(upscaler)}", file=sys.stderr)
    for label in r.join.not_copied:
        print(f"warning: not copied: {label}", file=sys.stderr)
    return 0


def _upscale(args, info, upscaler, src: Path, start: Fraction | None, enc_opts: dict, device: str,
             model: str) -> int:
    from ..video.job import upscale_video

    r = upscale_video(info, upscaler, args.output, start=start, frames=args.frames, encoder=args.encoder,
                      crf=args.crf, pix_fmt=args.pix_fmt, encoder_options=enc_opts,
                      progress=False if args.quiet else None)
    stats, problems, w, h, s = r.stats, r.problems, r.info.width, r.info.height, r.scale
    if not args.quiet:
        for note in r.out.notes:
            print(f"note: {note}", file=sys.stderr)
        _tile_note(upscaler, h, w)
        if r.info.colour.guessed:
            print(f"note: colour read as {r.info.colour.describe()}; the output is tagged with it",
                  file=sys.stderr)
        if problems.synthesized_timestamps:
            print(f"note: {problems.synthesized_timestamps} frames had no timestamp; they were given "
                  f"evenly spaced ones", file=sys.stderr)
        kinds: dict[str, int] = {}
        for label in r.out.copied:
            kind = label.split()[1]
            kinds[kind] = kinds.get(kind, 0) + 1
        if r.out.chapters:
            kinds["chapters"] = r.out.chapters
        copied = ("; copied " + ", ".join(f"{n} {k}" for k, n in kinds.items())) if kinds else ""
        print(f"{src.name} -> {r.output}: {stats.frames} frames {w}x{h} -> {w * s}x{h * s} "
              f"(x{s}, {model}, {r.encoder} {r.out.pix_fmt}), {r.seconds_of_video:.2f} s of video, in "
              f"{stats.seconds:.1f} s ({stats.fps:.2f} fps; network alone {stats.model_fps:.2f} fps on "
              f"{device}), {human_size(stats.out_bytes)}{copied}{_reuse_clause(upscaler)}",
              file=sys.stderr)
    for label in r.out.not_copied:
        print(f"warning: not copied: {label}", file=sys.stderr)
    if problems.concealed_frames:
        times = ", ".join(f"{float(t):.3f}" for t in problems.concealed_frames[:20])
        more = " ..." if len(problems.concealed_frames) > 20 else ""
        print(f"warning: {len(problems.concealed_frames)} frames were decoded with errors (damaged data, "
              f"concealed by the decoder, kept) at t = {times}{more} s", file=sys.stderr)
    if problems.missing_frames or problems.decoder_errors:
        lost = problems.missing_frames
        times = ", ".join(f"{float(t):.3f}" for t in lost[:20]) + (" ..." if len(lost) > 20 else "")
        print(f"warning: the decoder refused {problems.decoder_errors} video packet(s); "
              + (f"{len(lost)} frame(s) are missing from the output: t = {times} s" if lost else
                 "no frame is missing from the output"), file=sys.stderr)
        if lost:
            return 3
    return 0

if __name__ == "__main__":
    sys.exit(main())
