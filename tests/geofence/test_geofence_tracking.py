from __future__ import annotations

import gc
import json
import math
import random
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.tracking import (
    Event,
    ImpossibleTravel,
    SiteEntered,
    SiteExited,
    TrackFix,
    TrackOutput,
    TrackState,
    advance,
    event_from_dict,
)

# places: (lon, lat, projects)
HOME = (113.945, 22.535, ())  # ~700 m from the sites
SITE_P = (113.95, 22.54, ("P",))
SITE_PQ = (113.951, 22.541, ("P", "Q"))
SITE_Q = (113.952, 22.542, ("Q",))
FAR = (114.30, 22.70, ())  # ~40 km from the others
PLACES = [HOME, SITE_P, SITE_PQ, SITE_Q, FAR]


def fix(
    msg: str, ts: float, place: tuple[float, float, tuple[str, ...]], acc: float | None = 10.0
) -> TrackFix:
    return TrackFix(msg, ts, place[0], place[1], acc, place[2])


def run(
    state: TrackState, batches: Iterable[Sequence[TrackFix]], **kw: float
) -> tuple[TrackState, dict[str, Event], list[TrackOutput]]:
    live: dict[str, Event] = {}
    outs = []
    for b in batches:
        state, out = advance(state, b, **kw)
        outs.append(out)
        for eid in out.retracted:
            assert eid in live, f"retracted {eid} never emitted"
            del live[eid]
        for e in out.events:
            assert e.id not in live, f"{e.id} emitted twice"
            live[e.id] = e
    return state, live, outs


def test_enter_stay_exit() -> None:
    fixes = [
        fix("a", 0, HOME),
        fix("b", 60, SITE_P),
        fix("c", 120, SITE_P),
        fix("d", 180, SITE_PQ),
        fix("e", 240, HOME),
    ]
    state, live, _ = run(TrackState("eng1"), [[f] for f in fixes])
    assert sorted(live) == ["enter:P:b", "enter:Q:d", "exit:P:e", "exit:Q:e"]
    e = live["enter:P:b"]
    assert (
        isinstance(e, SiteEntered)
        and e.engineer_id == "eng1"
        and e.ts == 60
        and e.project_id == "P"
    )
    assert isinstance(live["exit:Q:e"], SiteExited)
    assert state.on_site == frozenset()
    assert state.newest_ts == 240


def test_first_fix_on_site_enters() -> None:
    _, out = advance(TrackState(), [fix("a", 0, SITE_P)])
    assert [e.id for e in out.events] == ["enter:P:a"]


def test_inaccurate_ignored() -> None:
    state, out = advance(
        TrackState(),
        [
            fix("a", 0, SITE_P, acc=150.0),
            fix("b", 1, SITE_P, acc=100.0),
            fix("c", 2, HOME, acc=float("nan")),
        ],
    )
    assert out.ignored_inaccurate == ["a", "c"]
    assert [e.id for e in out.events] == ["enter:P:b"]
    _, out2 = advance(TrackState(), [fix("a", 0, SITE_P, acc=None)])
    assert [e.id for e in out2.events] == ["enter:P:a"]
    _, out3 = advance(TrackState(), [fix("a", 0, SITE_P, acc=50.0)], max_accuracy_m=20.0)
    assert out3.ignored_inaccurate == ["a"] and not out3.events


def test_too_late_and_boundary() -> None:
    state, _ = advance(TrackState(), [fix("a", 10_000, HOME)])
    state2, out = advance(
        state, [fix("late", 10_000 - 3600.001, SITE_P), fix("edge", 10_000 - 3600, SITE_P)]
    )
    assert out.too_late == ["late"]
    assert [e.id for e in out.events] == ["enter:P:edge", "exit:P:a"]
    assert [f.msg_id for f in state2.window] == ["edge", "a"]


def test_late_fix_retracts_and_replaces() -> None:
    s, out1 = advance(TrackState(), [fix("a", 0, SITE_P), fix("c", 200, HOME)])
    assert [e.id for e in out1.events] == ["enter:P:a", "exit:P:c"]
    s, out2 = advance(s, [fix("b", 100, HOME)])
    assert [e.id for e in out2.events] == ["exit:P:b"]
    assert out2.retracted == ["exit:P:c"]


def test_netting_within_batch() -> None:
    # 'c' would emit exit at c, then 'b' (earlier) moves it: only exit at b is reported
    s, _ = advance(TrackState(), [fix("a", 0, SITE_P)])
    _, out = advance(s, [fix("c", 200, HOME), fix("b", 100, HOME)])
    assert [e.id for e in out.events] == ["exit:P:b"] and out.retracted == []


def test_impossible_travel() -> None:
    # 40 km in 60 s -> ~2400 km/h
    s, out = advance(TrackState("e"), [fix("a", 0, HOME), fix("b", 60, FAR)])
    (ev,) = [e for e in out.events if isinstance(e, ImpossibleTravel)]
    assert ev.id == "travel:a:b" and ev.ts == 60 and ev.from_ts == 0
    assert 35_000 < ev.distance_m < 50_000
    assert ev.speed_kmh == pytest.approx(ev.distance_m / 1000 / (60 / 3600))
    # slow enough: 40 km in 1 hour
    _, out2 = advance(TrackState(), [fix("a", 0, HOME), fix("b", 3600, FAR)])
    assert not [e for e in out2.events if isinstance(e, ImpossibleTravel)]
    # zero time difference over > 5 km -> infinite speed
    _, out3 = advance(TrackState(), [fix("a", 0, HOME), fix("b", 0, FAR)])
    (ev3,) = [e for e in out3.events if isinstance(e, ImpossibleTravel)]
    assert math.isinf(ev3.speed_kmh) and ev3.to_dict()["speed_kmh"] is None
    assert event_from_dict(json.loads(json.dumps(ev3.to_dict()))) == ev3


def test_short_jump_never_travel() -> None:
    # ~1 km apart at the same instant: below min_jump_m
    _, out = advance(TrackState(), [fix("a", 0, HOME), fix("b", 0, (113.954, 22.535, ()))])
    assert not out.events


def test_travel_only_between_consecutive_accurate_fixes() -> None:
    # the inaccurate far fix in between does not count
    _, out = advance(
        TrackState(), [fix("a", 0, HOME), fix("x", 30, FAR, acc=500.0), fix("b", 60, HOME)]
    )
    assert not out.events
    # a late fix between a and b replaces travel a->b by a->m and m->b
    s, out1 = advance(TrackState(), [fix("a", 0, HOME), fix("b", 120, FAR)])
    assert [e.id for e in out1.events] == ["travel:a:b"]
    _, out2 = advance(s, [fix("m", 60, (114.10, 22.60, ()))])
    assert sorted(e.id for e in out2.events) == ["travel:a:m", "travel:m:b"]
    assert out2.retracted == ["travel:a:b"]


def test_duplicates_and_idempotence() -> None:
    fixes = [fix("a", 0, HOME), fix("b", 60, SITE_P), fix("c", 120, FAR)]
    s1, out1 = advance(TrackState(), fixes)
    s2, out2 = advance(s1, fixes)
    assert s2 == s1
    assert not out2.events and not out2.retracted
    assert out2.duplicates == ["a", "b", "c"]
    s3, out3 = advance(s1, [fix("b", 60, SITE_P), fix("b", 60, SITE_P)])
    assert s3 == s1 and out3.duplicates == ["b", "b"]


def test_window_slides_and_events_become_final() -> None:
    s, _ = advance(TrackState(), [fix("a", 0, SITE_P)])
    s, out = advance(s, [fix("b", 5000, HOME)])
    assert s.anchor is not None and s.anchor.msg_id == "a"
    assert [f.msg_id for f in s.window] == ["b"]
    assert [e.id for e in out.events] == ["exit:P:b"]
    # a fix before the anchor is too late even with a longer lateness
    _, out2 = advance(s, [fix("old", -1, HOME)], allowed_lateness_s=10_000)
    assert out2.too_late == ["old"]


def test_state_round_trip_json() -> None:
    s, _ = advance(
        TrackState("eng"),
        [fix("a", 0, SITE_PQ), fix("b", 5000, SITE_P), fix("c", 5100, FAR, acc=None)],
    )
    d = json.loads(json.dumps(s.to_dict()))
    s2 = TrackState.from_dict(d)
    assert s2 == s
    assert d["on_site"] == []
    nxt = [fix("d", 5050, SITE_Q)]
    assert advance(s, nxt) == advance(s2, nxt)
    with pytest.raises(ValueError):
        TrackState.from_dict({**d, "version": 99})


def test_output_and_events_json_safe() -> None:
    _, out = advance(TrackState("e"), [fix("a", 0, SITE_P), fix("b", 10, FAR)])
    d = json.loads(json.dumps(out.to_dict()))
    assert [event_from_dict(e) for e in d["events"]] == out.events


def test_trackfix_validation() -> None:
    with pytest.raises(ValueError):
        TrackFix("x", float("nan"), 1.0, 1.0)
    with pytest.raises(ValueError):
        TrackFix("x", 1.0, float("inf"), 1.0)
    with pytest.raises(ValueError, match="lat"):
        TrackFix("x", 1.0, 1.0, float("nan"))
    f = TrackFix("x", 1, 2, 3, None, ("b", "a", "b"))
    assert f.project_ids == ("a", "b") and isinstance(f.ts, float)
    g = TrackFix("x", 1.0, 2.0, 3.0, 5, ["a"])  # type: ignore[arg-type]
    assert g.project_ids == ("a",) and type(g.acc_m) is float
    assert TrackFix("x", True, 2.0, 3.0).ts == 1.0
    for given_ids in [("b", "a"), ("a", "a"), ("a", "b"), ("c", "b", "a"), ("b",), ()]:
        assert TrackFix("x", 1.0, 2.0, 3.0, None, given_ids).project_ids == tuple(
            sorted(set(given_ids))
        )


def test_unknown_event_type() -> None:
    with pytest.raises(ValueError):
        event_from_dict({"type": "nope"})


# --- properties ----------------------------------------------------------------------

track_fix = st.tuples(st.integers(0, 3000), st.sampled_from(range(len(PLACES))), st.booleans())


def _make(raw: list[tuple[int, int, bool]]) -> list[TrackFix]:
    return [
        fix(f"m{i:03d}", ts, PLACES[p], acc=10.0 if ok else 500.0)
        for i, (ts, p, ok) in enumerate(raw)
    ]


def _reference(fixes: Sequence[TrackFix]) -> dict[str, Event]:
    _, live, _ = run(TrackState("e"), [[f] for f in sorted(fixes, key=lambda f: (f.ts, f.msg_id))])
    return live


@settings(max_examples=150, deadline=None)
@given(st.lists(track_fix, min_size=0, max_size=12), st.randoms(use_true_random=False))
def test_order_independent_within_lateness(
    raw: list[tuple[int, int, bool]], rnd: random.Random
) -> None:
    fixes = _make(raw)
    expected = _reference(fixes)
    arrival = list(fixes)
    rnd.shuffle(arrival)
    # random batching of the shuffled arrival order
    batches: list[list[TrackFix]] = []
    for f in arrival:
        if not batches or rnd.random() < 0.5:
            batches.append([])
        batches[-1].append(f)
    state, live, outs = run(TrackState("e"), batches)
    assert not any(o.too_late for o in outs)
    assert {k: v for k, v in live.items()} == expected
    assert state == run(TrackState("e"), [sorted(fixes, key=lambda f: (f.ts, f.msg_id))])[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20_000), st.sampled_from(range(len(PLACES))), st.booleans()),
        max_size=15,
    ),
    st.randoms(use_true_random=False),
)
def test_order_independent_long_tracks(
    raw: list[tuple[int, int, bool]], rnd: random.Random
) -> None:
    """Span longer than the lateness: arrival = ts + jitter in [0, L] never makes a fix too late."""
    lateness = 3600.0
    fixes = _make(raw)
    expected = _reference(fixes)
    arrival = sorted(fixes, key=lambda f: f.ts + rnd.uniform(0, lateness))
    state, live, outs = run(TrackState("e"), [[f] for f in arrival], allowed_lateness_s=lateness)
    assert not any(o.too_late for o in outs)
    assert live == expected
    newest = max((f.ts for f in fixes if f.acc_m == 10.0), default=None)
    if newest is not None:
        assert all(f.ts >= newest - lateness for f in state.window)


@settings(max_examples=150, deadline=None)
@given(st.lists(track_fix, max_size=15))
def test_no_transition_without_state_change(raw: list[tuple[int, int, bool]]) -> None:
    live = _reference(_make(raw))
    per_project: dict[str, list[str]] = {}
    for e in sorted(live.values(), key=lambda e: (e.ts, e.id.split(":")[-1], e.id)):
        if isinstance(e, SiteEntered | SiteExited):
            per_project.setdefault(e.project_id, []).append(
                "in" if isinstance(e, SiteEntered) else "out"
            )
    for seq in per_project.values():
        assert seq[0] == "in"
        assert all(a != b for a, b in zip(seq, seq[1:], strict=False)), seq


@settings(max_examples=100, deadline=None)
@given(st.lists(track_fix, max_size=12))
def test_reapplying_is_idempotent(raw: list[tuple[int, int, bool]]) -> None:
    fixes = _make(raw)
    s1, _ = advance(TrackState(), fixes)
    s2, out = advance(s1, fixes)
    assert s2 == s1 and not out.events and not out.retracted


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 20_000), st.sampled_from(range(len(PLACES))), st.booleans()),
        max_size=20,
    ),
    st.lists(st.integers(0, 19), max_size=8),
    st.randoms(use_true_random=False),
)
def test_a_state_carried_on_answers_as_one_read_back(
    raw: list[tuple[int, int, bool]], resent: list[int], rnd: random.Random
) -> None:
    """The msg_ids a state carries on from the state before (`advance` keeps them up to date
    as the window slides) are those of its anchor and window: every batch, fixes sent again
    included, has the same outcome on it as on the same state read back from its dict."""
    fixes = _make(raw)
    arrival = sorted(fixes, key=lambda f: f.ts + rnd.uniform(0, 3600))
    arrival += [fixes[i] for i in resent if i < len(fixes)]
    state = TrackState("e")
    for k in range(0, len(arrival), 3):
        batch = arrival[k : k + 3]
        read_back = TrackState.from_dict(state.to_dict())
        state, out = advance(state, batch, allowed_lateness_s=3600.0)
        expected_state, expected = advance(read_back, batch, allowed_lateness_s=3600.0)
        assert (state, out) == (expected_state, expected)
        assert state.msg_ids() == TrackState.from_dict(state.to_dict()).msg_ids()


def test_a_window_leaves_the_collector() -> None:
    """A track keeps its fixes as plain tuples of strings and floats, which CPython's collector
    stops tracking, and the window's parts with them: an hour's window costs no collection
    anything. A fix kept as an object (or a named tuple), or msg_ids in a set, would stay
    tracked."""
    state = TrackState("e")
    for i in range(50):
        state, _ = advance(state, [fix(f"m{i}", i * 10.0, PLACES[i % len(PLACES)])])
    for _ in range(3):  # a collection untracks a tuple once what it holds is untracked
        gc.collect()
    assert len(state.kept_window) == 50 and state.msg_ids()
    tracked, todo, seen = [], [*gc.get_referents(state)], set()
    while todo:
        o = todo.pop()
        if id(o) in seen or isinstance(o, type):
            continue
        seen.add(id(o))
        if gc.is_tracked(o):
            tracked.append(o)
        todo.extend(gc.get_referents(o))
    assert tracked == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 9_000), st.sampled_from(range(len(PLACES))), st.booleans()),
        min_size=20,
        max_size=120,
    ),
    st.sampled_from([1, 2, 5, 16]),
    st.randoms(use_true_random=False),
)
def test_a_window_in_two_parts_answers_as_one_tuple(
    raw: list[tuple[int, int, bool]], recent_max: int, rnd: random.Random
) -> None:
    """`advance` keeps a window as a shared settled part and a short recent one: however the
    parts were split (a late fix inside the settled part, fixes sliding out of it, either part
    renewed), every batch has the same outcome, and gives the same state, as on the same
    window made into one tuple."""
    import geofence.tracking as tracking

    fixes = _make(raw)
    arrival = sorted(fixes, key=lambda f: f.ts + rnd.uniform(0, 1800))
    arrival += [rnd.choice(fixes) for _ in range(len(fixes) // 10)]  # sent again
    state = TrackState("e")
    old_max = tracking.RECENT_MAX
    tracking.RECENT_MAX = recent_max
    try:
        k = 0
        while k < len(arrival):
            batch = arrival[k : k + rnd.choice([1, 1, 1, 2, 4])]
            k += len(batch)
            whole = TrackState(state.engineer_id, state.kept_anchor, state.kept_window)
            state, out = advance(state, batch, allowed_lateness_s=1200.0)
            expected_state, expected = advance(whole, batch, allowed_lateness_s=1200.0)
            assert (state, out) == (expected_state, expected)
            assert state.newest_ts == expected_state.newest_ts
            assert state.on_site == expected_state.on_site
            assert state.msg_ids() == TrackState.from_dict(state.to_dict()).msg_ids()
    finally:
        tracking.RECENT_MAX = old_max


def test_a_state_pickles_and_copies_as_its_window() -> None:
    """A state is immutable, yet pickles and copies (as its engineer, anchor and window)."""
    import copy
    import pickle

    state = TrackState("e")
    for i in range(40):
        state, _ = advance(state, [fix(f"m{i}", i * 10.0, PLACES[i % len(PLACES)])])
    for again in (pickle.loads(pickle.dumps(state)), copy.copy(state), copy.deepcopy(state)):
        assert again == state and again.msg_ids() == state.msg_ids()
    with pytest.raises(AttributeError):
        state.engineer_id = "f"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del state.kept_anchor


def test_a_stored_window_with_a_fix_twice_reads_back() -> None:
    """A stored window holding one fix twice (corrupt storage) reads back instead of failing
    on comparing an unknown accuracy with a known one."""
    a = fix("a", 0, HOME, acc=None).to_dict()
    b = fix("a", 0, HOME, acc=5.0).to_dict()
    state = TrackState.from_dict({"engineer_id": "e", "anchor": None, "window": [a, b]})
    assert [f.msg_id for f in state.window] == ["a", "a"]
