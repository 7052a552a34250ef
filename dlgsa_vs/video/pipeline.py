"""Decode, upscale and encode at the same time: three threads joined by bounded queues.

    reader thread:  demux + decode (FFmpeg threads) + YUV -> RGB (numpy)  --q_in-->
    main thread:    the network, in batches (or num_streams batches at once) --q_out-->
    writer thread:  RGB -> YUV (numpy) + encode + mux, and the copied packets

With the network on a CUDA GPU the colour conversions run there instead (``on_device``,
:mod:`.colour_torch`): the reader hands over the decoded sample planes, the main thread
uploads them as integers, converts, upscales and converts back on the GPU, and the writer
gets sample planes to encode; the CPU threads only decode and encode.

The network runs in the main thread, so Ctrl-C reaches it between two operations; the
queues are bounded, so memory stays flat whatever the length of the video; every blocking
call wakes up on a shared stop event, so an error in any thread stops the others at once.
The packets of copied streams travel through the same queues, in file order, so the muxer
interleaves them with the video packets as the input had them.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import av
import numpy as np
import torch

from ..runtime.inference import OutOfMemory
from . import colour_torch
from .colour import Colour, frame_to_rgb, read_planes, rgb_to_planes, tag_frame, write_planes
from .errors import Interrupted, VideoError
from .encode import DecodeTimestamps
from .files import storage_error
from .output import Output
from .probe import InputInfo, Source, ffmpeg_reason, fmt_time

END = ("end",)


class FrameItem(NamedTuple):
    """One frame in the queues. picture: from the reader, R'G'B' float32 (3, H, W), or (sample
    planes, their layout) when colours are converted on the device; to the writer, R'G'B' or
    the output's sample planes. pts and duration: in the input's time base."""

    picture: Any
    pts: int
    duration: int


class Batch(NamedTuple):
    """Frames being computed together by a stream worker, in arrival order with the packets."""

    frames: list[FrameItem]
    future: Future


class _Stopped(Exception):
    """Raised inside a thread when another thread asked everyone to stop."""


@dataclass
class Stats:
    frames: int = 0              # frames encoded
    seconds: float = 0.0         # wall clock of the pipeline (first frame read -> file complete)
    model_seconds: float = 0.0   # time spent inside the network
    model_waits: float = 0.0     # time the network waited for decoded frames
    packets_copied: int = 0
    out_bytes: int = 0
    batches: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds else 0.0

    @property
    def overlap(self) -> float:
        """End-to-end fps over model-only fps: 1.0 = decode and encode cost nothing."""
        return self.model_seconds / self.seconds if self.seconds else 0.0


def read_until_first_frame(source: Source):
    """Run the source until its first frame; return (events so far, event iterator)."""
    events = source.events()
    pending = []
    for ev in events:
        pending.append(ev)
        if ev[0] == "frame":
            return pending, events
    return pending, events


class Pipeline:
    """Decoded events -> network -> encoder, in three threads: ``events`` yields ("frame", frame,
    pts) and ("packet", packet) in file order (a ``probe.Source``, or any iterator of them),
    ``timing`` gives their time base and rate. ``on_device``: convert colours where the network
    runs (default: when that is a CUDA GPU)."""

    def __init__(self, timing: InputInfo, events: Iterable[tuple], upscaler, output: Output, colour: Colour,
                 batch: int = 1, progress=None, queue_frames: int | None = None, on_device: bool | None = None):
        self.device = torch.device(getattr(upscaler, "device", "cpu"))
        self.on_device = self.device.type == "cuda" if on_device is None else on_device
        self.events = events
        self.upscaler = upscaler
        self.output = output
        self.colour = colour
        self.batch = batch  # the Upscaler's, validated with the run settings
        self.progress = progress
        depth = queue_frames or (2 * self.batch + 2)
        # Packets of copied streams share the queues with frames: leave them room.
        self.q_in: queue.Queue = queue.Queue(maxsize=depth + 64)
        self.q_out: queue.Queue = queue.Queue(maxsize=depth + 64)
        self._frames_in = threading.Semaphore(depth)     # frames (not packets) in q_in
        self._frames_out = threading.Semaphore(depth)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.stats = Stats()
        self._stats_lock = threading.Lock()  # stream workers add their timings
        self.in_tb = timing.time_base
        self.dts = DecodeTimestamps(output.video.codec_context.name, self.in_tb, timing.rate)

    # --- queue helpers that give up when another thread failed ------------------------------
    def _put(self, q: queue.Queue, item, sem: threading.Semaphore | None = None) -> None:
        if sem is not None:
            while not sem.acquire(timeout=0.1):
                if self.stop.is_set():
                    raise _Stopped
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, _Stopped):
            self.errors.append(exc)
        self.stop.set()

    # --- reader ---------------------------------------------------------------------------------
    def _reader(self) -> None:
        try:
            copy = self.output.copy_map
            for ev in self.events:
                if self.stop.is_set():
                    raise _Stopped
                if ev[0] == "frame":
                    _, frame, pts = ev
                    pixels = read_planes(frame) if self.on_device else frame_to_rgb(frame, self.colour)
                    self._put(self.q_in, FrameItem(pixels, pts, frame.duration or 0), self._frames_in)
                elif ev[1].stream.index in copy:
                    self._put(self.q_in, ev[1])  # the packet
            self._put(self.q_in, END)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._fail(exc)

    # --- writer ---------------------------------------------------------------------------------
    def _writer(self) -> None:
        out = self.output
        mux = out.container.mux
        tb = self.in_tb
        try:
            while True:
                item = self._get(self.q_out)
                if isinstance(item, FrameItem):
                    self._frames_out.release()
                    pixels, pts, duration = item
                    # sample planes (converted on the device), or R'G'B' to convert here
                    planes = pixels if isinstance(pixels, list) else rgb_to_planes(pixels, out.layout, out.colour)
                    frame = write_planes(planes, out.layout, planes[0].shape[1], planes[0].shape[0])
                    if out.pix_fmt != out.layout.name:
                        frame = frame.reformat(format=out.pix_fmt, src_color_range=out.colour.range,
                                               dst_color_range=out.colour.range)
                    tag_frame(frame, out.colour, out.layout)
                    frame.pts = pts
                    frame.time_base = tb
                    if duration:
                        frame.duration = duration
                    self._mux(mux, self._encode(frame, pts))
                    self.stats.frames += 1
                    if self.progress is not None:
                        self.progress.update(1)
                elif isinstance(item, av.Packet):
                    packet = item
                    packet.stream = out.copy_map[packet.stream.index]
                    self._mux(mux, packet)
                    self.stats.packets_copied += 1
                else:  # end
                    self._mux(mux, self._encode(None, None))
                    return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)

    def _encode(self, frame, pts):
        try:
            return self.dts(self.output.video.encode(frame))
        except av.FFmpegError as exc:
            err = storage_error(exc, self.output.tmp)
            if err:
                raise err from None
            where = "flushing the encoder" if frame is None else fmt_time(pts * self.in_tb)
            raise VideoError(f"the encoder {self.output.video.codec_context.name} failed at {where}: "
                             f"{exc}") from None

    def _mux(self, mux, packets) -> None:
        try:
            mux(packets)
        except av.FFmpegError as exc:
            err = storage_error(exc, self.output.tmp)
            if err:
                raise err from None
            raise VideoError(f"writing the output {self.output.final} failed: {ffmpeg_reason(exc)}") from None
        except OSError as exc:
            err = storage_error(exc, self.output.tmp)
            raise (err or exc) from None

    # --- signals ---------------------------------------------------------------------------------
    # Python raises KeyboardInterrupt (and our SIGTERM handler its exception) wherever the main
    # thread happens to be, also inside a queue's or semaphore's internals, which can leave a
    # lock held that the reader or writer then waits on forever (a Ctrl-C that was seen to hang).
    # While the threads run, a signal only sets the stop flag; every thread leaves at its next
    # queue operation, and run() raises ``Interrupted`` once they are all out. A second Ctrl-C
    # gets Python's default: an immediate KeyboardInterrupt.
    def _on_signal(self, signum, frame) -> None:
        self.interrupted = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.stop.set()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _catch_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}  # an embedding application's thread: its signals are its own business
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    # --- the network, in this (the main) thread -----------------------------------------------
    def run(self) -> Stats:
        t0 = time.perf_counter()
        reader = threading.Thread(target=self._reader, name="dlgsa-read", daemon=True)
        writer = threading.Thread(target=self._writer, name="dlgsa-write", daemon=True)
        self.interrupted: str | None = None
        previous = self._catch_signals()
        try:
            reader.start()
            writer.start()
            try:
                self._infer()
            except _Stopped:
                pass
            except BaseException as exc:
                self._fail(exc)
            finally:
                if self.errors or self.stop.is_set():
                    self.stop.set()
                _join(reader)
                _join(writer)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.interrupted:
            raise Interrupted(self.interrupted)
        if self.errors:
            raise self.errors[0]
        self.stats.seconds = time.perf_counter() - t0
        return self.stats

    def _infer(self) -> None:
        """Batches of frames through the network, results to the writer in input order.

        With an upscaler that has ``num_streams`` > 1 (a ``backends.StreamRunner``), that many
        batches are computed at once by worker threads, each on its own CUDA stream; frames
        and the packets that arrived between them still leave in arrival order.
        """
        streams = getattr(self.upscaler, "num_streams", 1)
        pool = ThreadPoolExecutor(streams, thread_name_prefix="dlgsa-stream") if streams > 1 else None
        in_flight: deque = deque()  # Batch and av.Packet, in arrival order
        batch: list[FrameItem] = []
        try:
            while True:
                t = time.perf_counter()
                item = self._get(self.q_in)
                self.stats.model_waits += time.perf_counter() - t
                if isinstance(item, FrameItem):
                    self._frames_in.release()
                    batch.append(item)
                    if len(batch) >= self.batch:
                        self._submit(batch, pool, in_flight)
                        batch = []
                elif isinstance(item, av.Packet):
                    if in_flight:
                        in_flight.append(item)  # behind the frames before it
                    else:
                        self._put(self.q_out, item)
                else:
                    if batch:
                        self._submit(batch, pool, in_flight)
                    self._hand_over(in_flight, keep=0)
                    self._put(self.q_out, END)
                    return
                self._hand_over(in_flight, keep=streams - 1)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, batch: list[FrameItem], pool: ThreadPoolExecutor | None, in_flight: deque) -> None:
        if pool is None:
            self._put_frames(batch, self._compute(batch, self.upscaler))
        else:
            in_flight.append(Batch(batch, pool.submit(self.upscaler.apply,
                                                      lambda upscaler: self._compute(batch, upscaler))))

    def _hand_over(self, in_flight: deque, keep: int) -> None:
        """Pass the head of ``in_flight`` to the writer while it is ready (a packet, a computed
        batch); wait for the oldest batch while more than ``keep`` are being computed."""
        while in_flight:
            head = in_flight[0]
            if isinstance(head, Batch):
                future = head.future
                if not future.done() and sum(isinstance(h, Batch) for h in in_flight) <= keep:
                    return
                while True:
                    if self.stop.is_set():
                        raise _Stopped
                    try:
                        results = future.result(timeout=0.1)
                        break
                    except FutureTimeout:
                        continue
                in_flight.popleft()
                self._put_frames(head.frames, results)
            else:
                in_flight.popleft()
                self._put(self.q_out, head)

    def _put_frames(self, batch: list[FrameItem], results: list) -> None:
        for item, picture in zip(batch, results):
            self._put(self.q_out, item._replace(picture=picture), self._frames_out)

    def _device_rgb(self, batch: list[FrameItem]) -> torch.Tensor:
        """The batch's sample planes, uploaded and converted to R'G'B' on the device (frames
        of one layout converted together)."""
        parts, start = [], 0
        while start < len(batch):
            planes_of = [item.picture[0] for item in batch]
            layout = batch[start].picture[1]
            end = start + 1
            while end < len(batch) and batch[end].picture[1] == layout:
                end += 1
            planes = [np.stack([frame[i] for frame in planes_of[start:end]]) for i in range(len(planes_of[start]))]
            parts.append(colour_torch.planes_to_rgb(colour_torch.upload(planes, self.device), layout, self.colour))
            start = end
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _compute(self, batch: list[FrameItem], upscaler) -> list:
        """The batch's output frames (sample planes, or R'G'B' arrays for the writer to convert);
        in a worker thread when streams overlap, the whole of it on that worker's stream."""
        x = self._device_rgb(batch) if self.on_device else torch.from_numpy(np.stack([item.picture for item in batch]))
        t = time.perf_counter()
        try:
            y = upscaler(x)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise _memory_error(x, exc) from None
        except RuntimeError as exc:
            if "memory" in str(exc).lower() or "alloc" in str(exc).lower():
                raise _memory_error(x, exc) from None
            raise
        dt = time.perf_counter() - t
        with self._stats_lock:
            self.stats.model_seconds += dt
            self.stats.batches.append(dt)
        if not bool(torch.isfinite(y).all()):
            when = fmt_time(batch[0].pts * self.in_tb)
            # (half precision never gets here: the Upscaler redoes such a batch in a wider type)
            raise VideoError(f"the network produced NaN/inf values at {when}")
        if self.on_device:
            out = self.output
            planes = colour_torch.download(colour_torch.rgb_to_planes(y, out.layout, out.colour), out.layout)
            return [[p[i] for p in planes] for i in range(len(batch))]
        return list(y.numpy())


def _memory_error(x: torch.Tensor, exc: BaseException) -> VideoError:
    """The Upscaler already halved its tiles down to the smallest (``OutOfMemory`` says so);
    anything else ran out around the network (the input or output of a batch)."""
    if isinstance(exc, OutOfMemory):
        return VideoError(str(exc))
    n, _, h, w = x.shape
    return VideoError(f"out of memory upscaling {n} frame(s) of {w}x{h}: use --batch 1 and free "
                      f"memory ({str(exc).splitlines()[0][:120]})")


def _join(thread: threading.Thread) -> None:
    while thread.is_alive():
        thread.join(timeout=0.2)


