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

from ..runtime.packaged import VIDEO_DEFAULT_MODEL  # noqa: E402
from ..runtime.settings import SettingsError  # noqa: E402
from ..video.errors import DamagedInput, Interrupted, VideoError  # noqa: E402
from ..video.fields import MODES as DEINTERLACE_MODES  # noqa: E402
from ..video.progress import plural, rate_text  # noqa: E402
from .common import (OPTION_NAMES, Parser, add_device_options, add_encoding_options, add_model_options,  # noqa: E402
                     encoder_options, fail, model_label, settings_from_args, usage_message, weights_message)

PROG = "dlgsa-upscale"


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0],
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
    g.add_argument("--deinterlace", choices=DEINTERLACE_MODES, default="auto",
                   help="interlaced and telecined sources (docs/video.md): auto (default) deinterlaces "
                        "interlaced video at field rate with bwdif (29.97i -> 59.94p), inverse-telecines "
                        "telecined film (29.97 -> 23.976) and leaves progressive video as it is; "
                        "bwdif, bwdif-frame (frame rate) or ivtc force one; off upscales the frames as "
                        "stored. --frames counts output frames")
    g.add_argument("--preview", type=int, metavar="N",
                   help="write a side-by-side PNG (bicubic | network) of frame N (from 0) and stop; "
                        "-o names the PNG")
    g.add_argument("--no-resume", action="store_true",
                   help="start over: drop the segments an interrupted run of this output left in "
                        "<output>.chunks/ (default: continue from them)")
    g.add_argument("-y", "--overwrite", action="store_true",
                   help="replace an existing output (default: refuse, as FFmpeg does)")
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
    from ..runtime.weights import WeightsError

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
    if args.encoder:
        from ..video.encode import check_quality

        check_quality(args.encoder, args.crf)   # (the default encoder's: once it is chosen)
    start = None
    if args.start:
        from ..video.probe import parse_time

        start = parse_time(args.start)
    from ..runtime.backends import open_runner, select_backend
    from ..video.probe import probe

    select_backend(settings)  # a backend that cannot run here is said before the input is read

    src = Path(args.input)
    info = probe(src)
    try:
        if args.preview is None:
            _warn_not_copied(args, info, src)
        try:
            upscaler = open_runner(settings, (info.height, info.width),
                                   log=None if args.quiet else lambda m: print(m, file=sys.stderr),
                                   names=OPTION_NAMES)
        except WeightsError as exc:
            raise VideoError(weights_message(exc), code=2) from None
        if upscaler.num_streams < settings.num_streams and not args.quiet:
            print(f"note: --num-streams {settings.num_streams} is not used on the CPU (one pass at a "
                  f"time, on all its cores)", file=sys.stderr)
        # the summary line names the device short; the note says why, once
        device = upscaler.plan.brief()
        args.device_note = f"note: the network ran on {upscaler.plan.summary()}"
        model = model_label(settings)
        from ..video.fields import plan

        fields = plan(info, args.deinterlace, start)
        if args.preview is not None:
            return _preview(args, info, upscaler, src, model, fields)
        if start is None and args.frames is None and _segmented(args, info):
            if fields is None or not fields.active:
                return _upscale_segments(args, info, upscaler, src, settings, enc_opts, device, model)
            if not args.quiet:
                print(f"note: {fields.summary()}; deinterlaced runs go in one pass, not in resumable "
                      f"segments (not yet)", file=sys.stderr)
        return _upscale(args, info, upscaler, src, start, enc_opts, device, model, fields)
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
    from ..video.files import refuse_existing

    refuse_existing(path, args.overwrite)
    try:
        make_sample(path)
    except av.FFmpegError as exc:
        from ..video.files import storage_error

        raise (storage_error(exc, path) or VideoError(f"cannot write {path}: {exc}")) from None
    if not args.quiet:
        print(f"wrote {path}: 24 frames of 160x90 (2.0 s at 12 fps, H.264) with AAC stereo audio "
              f"in {time.perf_counter() - t:.1f} s; now run: {PROG} {path}", file=sys.stderr)
    return 0


def _preview(args, info, upscaler, src: Path, model: str, fields=None) -> int:
    from ..video.preview import preview

    out = Path(args.output) if args.output else src.with_name(
        f"{src.stem}_x{upscaler.scale}_preview{args.preview}.png")
    if out.suffix.lower() != ".png":
        raise VideoError(f"--preview writes a PNG: give -o a .png name, not {out.name}", code=2)
    if out.resolve() == src.resolve():
        raise VideoError(f"the output would overwrite the input {src}: choose another -o", code=2)
    from ..video.files import refuse_existing

    refuse_existing(out, args.overwrite)
    path, t, seconds = preview(info, upscaler, args.preview, out, fields)
    if not args.quiet:
        said = f"; {fields.summary()}" if fields is not None and fields.active else ""
        print(f"{src.name} frame {args.preview} (t={t:.3f} s, {info.width}x{info.height}) -> {path}: "
              f"bicubic | {model}, x{upscaler.scale}, network {seconds:.1f} s{said}", file=sys.stderr)
    return 0


def _warn_not_copied(args, info, src: Path) -> None:
    """The streams the output container cannot hold, said before the model even loads (the
    run goes on without them; docs/video.md). The end of the run does not repeat them."""
    from ..video.files import default_output
    from ..video.output import streams_not_copied

    suffix = Path(args.output).suffix if args.output else default_output(src, 2).suffix
    args.warned = streams_not_copied(info, suffix)
    for label in args.warned:
        print(f"warning: not copied: {label}", file=sys.stderr)


def _late_warnings(args, labels: list[str]) -> None:
    for label in labels:
        if label not in getattr(args, "warned", ()):
            print(f"warning: not copied: {label}", file=sys.stderr)


def _tile_note(upscaler, height: int, width: int) -> None:
    if upscaler.tile_for(height, width) != (0, 0):
        print(f"note: {upscaler.tile_summary(height, width)}", file=sys.stderr)


def _reuse_clause(upscaler) -> str:
    """"; reuse exact: N% of tiles ... reused" for the summary line ("" with reuse off)."""
    said = upscaler.reuse_summary()
    return f"; {said}" if said else ""


def _segmented(args, info) -> bool:
    """Whole-file runs longer than one segment go through resumable segments (docs/video.md)."""
    length = info.duration or (info.container_end - info.start_time if info.container_end else None)
    return bool(length) and float(length) > args.chunk_seconds


def _upscale_segments(args, info, upscaler, src: Path, settings, enc_opts: dict, device: str, model: str) -> int:
    from ..segments.encode import JobSettings
    from ..segments.resume import run_segments
    from ..video.files import check_paths, default_output, refuse_existing

    out = Path(args.output) if args.output else default_output(src, upscaler.scale)
    check_paths(src, out)
    refuse_existing(out, args.overwrite)   # an interrupted run left no output: it resumes
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
        print(args.device_note, file=sys.stderr)
        _tile_note(upscaler, h, w)
        copied = f"; copied {plural(len(r.join.copied), 'other stream')}" if r.join.copied else ""
        print(f"{src.name} -> {r.output}: {plural(r.frames, 'frame')} {w}x{h} -> {w * s}x{h * s} (x{s}, {model}) "
              f"in {plural(r.segments, 'segment')} ({r.computed} computed now, {r.kept} kept), in "
              f"{r.seconds:.1f} s (network {r.model_seconds:.1f} s on {device}; join {r.join.seconds:.2f} s), "
              f"{human_size(r.join.bytes)}{copied}{_reuse_clause(upscaler)}", file=sys.stderr)
    _late_warnings(args, r.join.not_copied)
    return 0


def _upscale(args, info, upscaler, src: Path, start: Fraction | None, enc_opts: dict, device: str,
             model: str, fields=None) -> int:
    from ..video.job import upscale_video
    from ..video.files import check_paths, default_output, refuse_existing

    out = Path(args.output) if args.output else default_output(src, upscaler.scale)
    check_paths(src, out)
    refuse_existing(out, args.overwrite)
    r = upscale_video(info, upscaler, out, start=start, frames=args.frames, encoder=args.encoder,
                      crf=args.crf, pix_fmt=args.pix_fmt, encoder_options=enc_opts,
                      progress=False if args.quiet else None, deinterlace=fields or "off")
    stats, problems, w, h, s = r.stats, r.problems, r.info.width, r.info.height, r.scale
    if not args.quiet:
        for note in r.out.notes:
            print(f"note: {note}", file=sys.stderr)
        print(args.device_note, file=sys.stderr)
        _tile_note(upscaler, h, w)
        if r.info.colour.guessed:
            print(f"note: colour read as {r.info.colour.describe()}; the output is tagged with it",
                  file=sys.stderr)
        if problems.synthesized_timestamps:
            n = problems.synthesized_timestamps
            print(f"note: {plural(n, 'frame')} had no timestamp; {'it was' if n == 1 else 'they were'} "
                  f"given evenly spaced ones", file=sys.stderr)
        kinds: dict[str, int] = {}
        for label in r.out.copied:
            kind = label.split()[1]
            kinds[kind] = kinds.get(kind, 0) + 1
        if r.out.chapters:
            kinds["chapters"] = r.out.chapters
        copied = ("; copied " + ", ".join(f"{n} {k}" for k, n in kinds.items())) if kinds else ""
        fields = f"{r.fields.summary()}; " if r.fields is not None and r.fields.worth_saying else ""
        print(f"{src.name} -> {r.output}: {plural(stats.frames, 'frame')} {w}x{h} -> {w * s}x{h * s} "
              f"(x{s}, {model}, {r.encoder} {r.out.pix_fmt}), {fields}{r.seconds_of_video:.2f} s of video, in "
              f"{stats.seconds:.1f} s ({rate_text(stats.frames, stats.seconds)}; network alone "
              f"{rate_text(stats.frames, stats.model_seconds)} on {device}), "
              f"{human_size(stats.out_bytes)}{copied}{_reuse_clause(upscaler)}", file=sys.stderr)
    _late_warnings(args, r.out.not_copied)
    if problems.concealed_frames:
        times = ", ".join(f"{float(t):.3f}" for t in problems.concealed_frames[:20])
        more = " ..." if len(problems.concealed_frames) > 20 else ""
        n = len(problems.concealed_frames)
        print(f"warning: {plural(n, 'frame')} {'was' if n == 1 else 'were'} decoded with errors (damaged "
              f"data, concealed by the decoder, kept) at t = {times}{more} s", file=sys.stderr)
    if problems.missing_frames or problems.decoder_errors:
        lost = problems.missing_frames
        times = ", ".join(f"{float(t):.3f}" for t in lost[:20]) + (" ..." if len(lost) > 20 else "")
        print(f"warning: the decoder refused {plural(problems.decoder_errors, 'video packet')}; "
              + (f"{plural(len(lost), 'frame')} {'is' if len(lost) == 1 else 'are'} missing from the "
                 f"output: t = {times} s" if lost else "no frame is missing from the output"), file=sys.stderr)
        if lost:
            return 3
    return 0

if __name__ == "__main__":
    sys.exit(main())
