"""The gate for video clips: what is read, what is refused, in one sentence, and what is written."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from gradcam.config import MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from gradcam.errors import InvalidVideoError, VideoTooLargeError, VideoTooLongError
from gradcam.video import ClipWriter, open_clip, sniff_video

from .videos import (
    EXAMPLES,
    corrupted,
    grey_frames,
    huge_frame,
    ten_hours_of_one_frame,
    timestamps_beyond_the_header,
    truncated,
    write_clip,
)


def _one_sentence(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message
    assert message.rstrip().endswith("."), message


# Sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, container",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "MP4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "MP4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "MOV"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "MOV"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", "WebM"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),  # an iPhone photo, not a clip
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n", None),  # a playlist would make FFmpeg fetch other files
        (b"", None),
    ],
)
def test_the_container_is_told_from_the_bytes(head, container):
    assert sniff_video(head) == container


def test_clips_of_the_three_containers_are_read(tmp_path):
    frames = grey_frames(6)
    clips = {
        "MP4": write_clip(tmp_path / "a.mp4", frames),
        "MOV": write_clip(tmp_path / "a.mov", frames, container="mov"),
        "WebM": write_clip(
            tmp_path / "a.webm",
            frames,
            codec="libvpx-vp9",
            container="webm",
            options={"deadline": "realtime", "cpu-used": "8"},
        ),
    }
    for container, path in clips.items():
        with open_clip(path.read_bytes()) as clip:
            assert clip.info.container == container
            assert (clip.info.width, clip.info.height) == (64, 48)
            read = list(clip.frames())
        assert [f.index for f in read] == list(range(6))
        assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in read)
        # lossy, but the pictures are the ones written
        assert np.abs(read[3].image.astype(int) - frames[3].astype(int)).mean() < 12


def test_a_file_named_like_a_clip_is_read_by_its_content(tmp_path):
    photo = tmp_path / "holiday.mp4"
    photo.write_bytes((EXAMPLES / "chelsea.png").read_bytes())
    with pytest.raises(InvalidVideoError, match="not a video we can read") as refused:
        open_clip(photo)
    _one_sentence(str(refused.value))
    clip = write_clip(tmp_path / "clip.mp4", grey_frames(3))
    renamed = tmp_path / "clip.png"
    renamed.write_bytes(clip.read_bytes())
    with open_clip(renamed) as opened:
        assert opened.info.container == "MP4"


@pytest.mark.parametrize("content", [b"", b"hello, this is text, not a video\n" * 10, bytes(range(256)) * 4])
def test_what_is_not_a_video_is_refused_in_one_sentence(content):
    with pytest.raises(InvalidVideoError) as refused:
        open_clip(content)
    _one_sentence(str(refused.value))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidVideoError, match="is not a file"):
        open_clip(tmp_path / "nowhere.mp4")


# Hostile clips: refused in bounded time -------------------------------------------------------


def test_ten_hours_of_one_frame_is_refused_from_its_header(tmp_path):
    path = ten_hours_of_one_frame(tmp_path / "long.mp4")
    assert path.stat().st_size < 5_000  # a tiny file
    with pytest.raises(VideoTooLongError, match=f"10 hours; we explain clips of up to {MAX_VIDEO_SECONDS} seconds"):
        open_clip(path)  # nothing is decoded


def test_timestamps_past_the_limit_stop_the_reading_at_that_frame(tmp_path):
    path = timestamps_beyond_the_header(tmp_path / "live.webm")
    with open_clip(path) as clip:
        assert clip.info.duration <= MAX_VIDEO_SECONDS  # the header does not say
        read = []
        with pytest.raises(VideoTooLongError, match="lasts 40 seconds") as refused:
            for frame in clip.frames():
                read.append(frame.index)
    assert read == [0]  # the second frame, at 40 s, is where it stops
    _one_sentence(str(refused.value))


@pytest.mark.slow
def test_frames_of_more_than_4k_are_refused_from_the_header(tmp_path):
    path = huge_frame(tmp_path / "huge.mp4")
    with pytest.raises(VideoTooLargeError, match="4100 x 2200 pixels") as refused:
        open_clip(path)
    _one_sentence(str(refused.value))


def test_more_frames_than_the_limit_are_refused(tmp_path):
    path = write_clip(tmp_path / "fast.mp4", grey_frames(MAX_VIDEO_FRAMES + 1, (16, 16)), fps=100)
    with pytest.raises(VideoTooLongError, match=f"more than {MAX_VIDEO_FRAMES} frames"):
        open_clip(path)


def test_a_corrupt_stream_is_refused_in_one_sentence(tmp_path):
    path = corrupted(tmp_path / "noise.mp4")
    with open_clip(path) as clip, pytest.raises(InvalidVideoError) as refused:
        list(clip.frames())
    _one_sentence(str(refused.value))


def test_a_truncated_clip_is_refused(tmp_path):
    whole = write_clip(tmp_path / "whole.mp4", grey_frames(30))
    with pytest.raises(InvalidVideoError, match="damaged or incomplete"):
        open_clip(truncated(tmp_path / "half.mp4", whole))


def test_a_clip_of_sound_only_is_refused(tmp_path):
    path = tmp_path / "song.mp4"
    out = av.open(str(path), "w", format="mp4")
    stream = out.add_stream("aac", rate=8000)
    for i in range(4):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, i * 1024
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    with pytest.raises(InvalidVideoError, match="holds no video"):
        open_clip(path)


def test_a_codec_outside_the_allowed_ones_is_named(tmp_path):
    path = write_clip(tmp_path / "raw.mov", grey_frames(3), codec="png", container="mov", pix_fmt="rgb24")
    with pytest.raises(InvalidVideoError, match="stored as 'png', which we do not read"):
        open_clip(path)


def test_frames_too_small_to_say_anything_about_are_refused(tmp_path):
    path = write_clip(tmp_path / "tiny.mp4", grey_frames(3, (6, 6)))
    with pytest.raises(InvalidVideoError, match="only 6 x 6 pixels"):
        open_clip(path)


def test_a_deadline_stops_the_reading(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", grey_frames(10))
    with open_clip(path) as clip, pytest.raises(InvalidVideoError, match="takes far too long"):
        list(clip.frames(deadline=0.0))


# Frames handed over ---------------------------------------------------------------------------


def test_frames_are_shrunk_to_even_sides(tmp_path):
    path = write_clip(tmp_path / "wide.mp4", grey_frames(2, (250, 100)))
    with open_clip(path) as clip:
        assert clip.info.size(None) == (250, 100)
        assert clip.info.size(101) == (100, 40)  # 101 x 40.4, made even
        assert next(iter(clip.frames(101))).image.shape == (40, 100, 3)


def test_timestamps_and_durations_are_the_clips(tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 100, 200, 400, 500, 900]  # a variable frame rate
    path = write_clip(tmp_path / "vfr.mp4", grey_frames(6), time_base=tb, pts=pts, options={"bf": "0"})
    with open_clip(path) as clip:
        seen = [round(frame.time(clip.info.time_base), 3) for frame in clip.frames()]
    assert seen == [p / 1000 for p in pts]


# Writing ------------------------------------------------------------------------------------


def test_the_written_clip_is_h264_in_mp4_with_its_index_first_and_exact_timing(tmp_path):
    tb = Fraction(1, 1000)
    frames = grey_frames(6)
    pts, durations = [0, 100, 200, 400, 500, 900], [100, 100, 200, 100, 400, 3000]
    with ClipWriter(tmp_path / "out.mp4", 64, 48, tb, Fraction(10)) as writer:
        for rgb, start, shown in zip(frames, pts, durations):
            writer.write(rgb, start, shown)
    data = (tmp_path / "out.mp4").read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "the index is not at the front: a browser must load it all"
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.duration * stream.time_base) == pytest.approx(3.9, abs=1e-3)  # 900 ms + 3 s
        decoded = [(round(float(f.time), 3), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert [t for t, _ in decoded] == [p / 1000 for p in pts]
    assert np.abs(decoded[4][1].astype(int) - frames[4].astype(int)).mean() < 12


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), ClipWriter(target, 64, 48, Fraction(1, 10), Fraction(10)) as writer:
        writer.write(grey_frames(1)[0], 0, 1)
        raise RuntimeError("stop")
    assert not target.exists()


def test_the_writer_checks_its_frames(tmp_path):
    with pytest.raises(ValueError, match="even frame sides"):
        ClipWriter(tmp_path / "odd.mp4", 63, 48, Fraction(1, 10), Fraction(10))
    with ClipWriter(tmp_path / "ok.mp4", 64, 48, Fraction(1, 10), Fraction(10)) as writer:
        with pytest.raises(ValueError, match="Expected an RGB uint8 frame"):
            writer.write(np.zeros((48, 64), np.uint8), 0, 1)
        writer.write(grey_frames(1)[0], 0, 1)
