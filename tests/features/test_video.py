import numpy as np
import pytest

from orze.features.video import VideoError, find_videos, pick_frames, sample_times, sample_video

from .conftest import write_video


def test_sample_times_alignments():
    assert np.allclose(sample_times(0, 3, 5, 4, "start"), [0, 0.2, 0.4, 0.6])
    assert np.allclose(sample_times(0, 3, 5, 4, "end"), [2.4, 2.6, 2.8, 3.0])
    assert np.allclose(sample_times(0, 3, 5, 4, "center"), [1.2, 1.4, 1.6, 1.8])
    with pytest.raises(ValueError, match="align"):
        sample_times(0, 3, 5, 4, "middle")
    with pytest.raises(ValueError, match="fps"):
        sample_times(0, 3, 0, 4, "start")


def test_pick_frames_takes_the_frame_on_screen():
    times = np.array([0.0, 0.1, 0.2, 0.3])
    assert pick_frames(times, np.array([-1.0, 0.0, 0.15, 0.2, 5.0])).tolist() == [0, 0, 1, 2, 3]


def _brightness(frames):
    # channel 2 of the bottom-right quadrant carries the frame's grey level (see write_video)
    return frames[:, -5, -5, 2].astype(int)


def test_samples_at_the_requested_rate(tmp_path):
    v = write_video(tmp_path / "v.mp4", n=30, rate=10, step=8)  # 3 s, frame i has level 8i
    s = sample_video(v, fps=5, count=5, align="start")
    assert s.frames.shape == (5, 40, 48, 3) and s.frames.dtype == np.uint8
    assert s.real == 5
    assert np.all(np.abs(_brightness(s.frames) - [0, 16, 32, 48, 64]) <= 6)
    end = sample_video(v, fps=5, count=5, align="end")  # last frame is 29 (level 232)
    assert np.all(np.abs(_brightness(end.frames) - [168, 184, 200, 216, 232]) <= 6)


def test_window_late_in_a_long_clip_seeks_and_still_picks_the_right_frames(tmp_path):
    v = write_video(tmp_path / "long.mp4", n=120, rate=20, step=2)  # 6 s: seek path
    s = sample_video(v, fps=4, count=4, align="end")  # frames 119, 114, 109, 104 at 20 fps
    assert np.all(np.abs(_brightness(s.frames) - [208, 218, 228, 238]) <= 6)


def test_short_clip_is_padded_and_counted(tmp_path):
    v = write_video(tmp_path / "short.mp4", n=5, rate=10, step=40)  # 0.5 s
    s = sample_video(v, fps=5, count=6, align="end")
    assert s.frames.shape[0] == 6
    assert s.real == 3  # instants 0.0, 0.2, 0.4 are inside the clip
    b = _brightness(s.frames)
    assert np.all(np.abs(b[:3] - b[0]) <= 6)  # instants before the clip show its first frame


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100,
                                     b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8])
def test_undecodable_files_raise_video_error_naming_the_file(tmp_path, content):
    p = tmp_path / "broken.mp4"
    p.write_bytes(content)
    with pytest.raises(VideoError, match="broken.mp4"):
        sample_video(p, 5, 4)


def test_find_videos_recursive_missing_and_ambiguous(tmp_path):
    write_video(tmp_path / "a.mp4", n=2)
    write_video(tmp_path / "x" / "b.mp4", n=2)
    found, missing = find_videos(tmp_path, ["a", "b", "c"])
    assert set(found) == {"a", "b"} and missing == ["c"]
    write_video(tmp_path / "y" / "a.mp4", n=2)
    with pytest.raises(VideoError, match="two videos"):
        find_videos(tmp_path, ["a"])
    with pytest.raises(VideoError, match="not a directory"):
        find_videos(tmp_path / "nope", ["a"])


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40, unique=True),
       st.lists(st.floats(-10, 110, allow_nan=False), min_size=1, max_size=30))
def test_pick_frames_is_the_latest_frame_not_after_the_target(times, targets):
    t = np.sort(np.asarray(times))
    q = np.asarray(targets)
    idx = pick_frames(t, q)
    for target, i in zip(q, idx):
        if target + 1e-6 < t[0]:  # pick_frames tolerates 1 µs of timestamp rounding
            assert i == 0  # before the clip: its first frame
        else:
            assert t[i] <= target + 1e-6
            assert i == len(t) - 1 or t[i + 1] > target + 1e-6
