"""rules.engineer_state: a stored head and the engineer's stored fixes give the track back
exactly, whatever arrived (late, inaccurate, repeated, too late) and however it was batched."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from geofence.tracking import TrackFix, TrackState, advance
from rules.day_close import EngineerClock
from rules.engineer_state import EngineerState, window_from

T0 = 1_772_000_000.0
LATENESS_S = 600.0
MAX_ACCURACY_M = 100.0
PLACES = [(114.05, 22.55, ("P1",)), (114.06, 22.55, ()), (116.40, 39.90, ("P2",))]

sent_fix = st.tuples(
    st.integers(0, 3000),  # seconds after T0: five lateness spans, so the window slides
    st.integers(0, 999_999),  # and microseconds
    st.integers(0, len(PLACES) - 1),
    st.sampled_from([None, 5.0, 500.0]),  # unknown, accurate, ignored
)


def _fixes(sent: list[tuple[int, int, int, float | None]]) -> list[TrackFix]:
    return [
        TrackFix(f"m{i}", round(T0 + s + us / 1e6, 6), *PLACES[p][:2], acc, PLACES[p][2])
        for i, (s, us, p, acc) in enumerate(sent)
    ]


def _rebuilt(state: EngineerState, stored: list[TrackFix]) -> EngineerState:
    """What store.engineer_states.load does: the head as JSON, the stored fixes from the
    window's earliest time on (with the store's slack)."""
    head = orjson.loads(orjson.dumps(state.head_dict()))
    since = window_from(head, LATENESS_S)
    read = [] if since is None else [f for f in stored if f.ts >= since - 1.0]
    return EngineerState.from_head(
        head, read, allowed_lateness_s=LATENESS_S, max_accuracy_m=MAX_ACCURACY_M
    )


@given(
    st.lists(sent_fix, max_size=40),
    st.lists(st.integers(0, 39), max_size=8),
    st.lists(st.integers(1, 10), max_size=6),
)
def test_a_track_is_its_head_and_its_stored_fixes(
    sent: list[tuple[int, int, int, float | None]], repeats: list[int], cuts: list[int]
) -> None:
    fixes = _fixes(sent)
    arrival = fixes + [fixes[r] for r in repeats if r < len(fixes)]
    stored: dict[str, TrackFix] = {}  # `fixes`: every fix written, the first of a msg_id
    state = EngineerState(TrackState(engineer_id="E1"), EngineerClock())
    start = 0
    for size in [*cuts, len(arrival)]:  # batches of the given sizes, then the rest
        batch = arrival[start : start + size]
        start += size
        track, _ = advance(
            state.track,
            batch,
            max_accuracy_m=MAX_ACCURACY_M,
            allowed_lateness_s=LATENESS_S,
        )
        for f in batch:
            stored.setdefault(f.msg_id, f)
        state = EngineerState(track, state.clock)
        assert _rebuilt(state, list(stored.values())) == state


def test_the_window_leaves_out_what_the_track_refused() -> None:
    ok, far, inaccurate, late = _fixes([(1000, 0, 0, 5.0), (1900, 0, 1, None), (1950, 0, 0, 500.0),
                                        (1200, 0, 0, 5.0)])  # fmt: skip
    track, out = advance(
        TrackState(engineer_id="E1"),
        [ok, far, inaccurate, late],
        max_accuracy_m=MAX_ACCURACY_M,
        allowed_lateness_s=LATENESS_S,
    )
    assert out.ignored_inaccurate == [inaccurate.msg_id] and out.too_late == [late.msg_id]
    state = EngineerState(track, EngineerClock())
    assert track.anchor == ok and track.window == (far,)
    assert _rebuilt(state, [ok, far, inaccurate, late]) == state
    # without the head's newest time the late fix would count: it is after the anchor
    head = {**state.head_dict(), "newest": None}
    assert window_from(head, LATENESS_S) is None


def test_a_window_stored_inline_still_loads() -> None:
    track, _ = advance(TrackState(engineer_id="E1"), _fixes([(0, 0, 0, 5.0), (10, 0, 2, None)]))
    state = EngineerState(track, EngineerClock())
    assert state.to_dict()["format"] == 2
    assert EngineerState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
