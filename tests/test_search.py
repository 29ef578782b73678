"""Archive and PUCT: hand-computed scores on small trees, lineage blocking, counts, caps, persistence."""

from __future__ import annotations

import json
import math

import pytest
from judged import failed, judged, ok

from kerneldisc.atomic import write_json
from kerneldisc.errors import ConfigError
from kerneldisc.search import Archive, normalise_code, rank_prior


def small_tree(c: float = 1.0) -> tuple[Archive, dict[str, str]]:
    """Root R (1.0) with correct children A (2.0), B (1.5) and one failed rollout."""
    archive = Archive(c=c)
    root = archive.add_root(ok("def custom_kernel(data):\n    return data\n", 1.0, 100.0))
    a, b, f = archive.record_rollouts(root.id, [ok("a = 1", 2.0), ok("b = 1", 1.5), failed()], step=0)
    assert f is None
    return archive, {"R": root.id, "A": a, "B": b}


def test_scores_match_hand_computation_on_a_small_tree():
    archive, ids = small_tree()
    # T = 3, n(R) = 3, n(A) = n(B) = 0; scale = 2.0 − 1.5; ranks A > B > R give P = 3/6, 2/6, 1/6.
    assert archive.total_expansions == 3
    assert archive.q(ids["R"]) == 2.0  # best direct child
    expected = {
        ids["R"]: 2.0 + 0.5 * (1 / 6) * math.sqrt(4) / 4,
        ids["A"]: 2.0 + 0.5 * (3 / 6) * math.sqrt(4) / 1,
        ids["B"]: 1.5 + 0.5 * (2 / 6) * math.sqrt(4) / 1,
    }
    assert archive.scores() == pytest.approx(expected, rel=1e-12)
    assert archive.score(ids["A"]) == pytest.approx(2.5)


def test_exploration_constant_scales_the_bonus():
    archive, ids = small_tree(c=3.0)
    assert archive.score(ids["B"]) == pytest.approx(1.5 + 3.0 * 0.5 * (2 / 6) * 2.0)


def test_selection_skips_ancestors_of_a_picked_state():
    archive, ids = small_tree()
    picked = [s.id for s in archive.select(3)]
    # A scores highest; R (2.04) outscores B (1.83) but is A's parent, so only A and B come back.
    assert picked == [ids["A"], ids["B"]]
    assert archive.pending == picked


def test_selection_skips_descendants_of_a_picked_state():
    # With c = 0 the score is Q alone: R's Q is its best child B (3.0) and beats everything.
    archive = Archive(c=0.0, top_children=3)
    r = archive.add_root(ok("r = 0", 5.0, 1.0))
    s = archive.add_root(ok("s = 0", 0.5, 1.0))
    a, b = archive.record_rollouts(r.id, [ok("a = 0", 1.0), ok("b = 0", 3.0)], step=0)
    (d,) = archive.record_rollouts(b, [ok("d = 0", 2.0)], step=1)
    assert archive.scores() == {r.id: 3.0, s.id: 0.5, a: 1.0, b: 2.0, d: 2.0}
    assert [x.id for x in archive.select(4)] == [r.id, s.id]


def test_score_ties_are_broken_by_creation_order():
    archive = Archive(c=0.0)
    first = archive.add_root(ok("x = 1", 1.0, 1.0))
    second = archive.add_root(ok("x = 2", 1.0, 1.0))
    assert [s.id for s in archive.select(2)] == [first.id, second.id]
    assert [s.id for s in archive.select(1)] == [first.id]


def test_failed_rollouts_count_as_expansions_of_the_parent_and_its_ancestors():
    archive, ids = small_tree()
    added = archive.record_rollouts(ids["A"], [failed(), failed("x = (")], step=1)
    assert added == [None, None]
    assert archive.states[ids["A"]].n == 2
    assert archive.states[ids["R"]].n == 5
    assert archive.states[ids["B"]].n == 0
    assert archive.total_expansions == 5
    assert archive.states[ids["A"]].children == []


def test_empty_root_is_valued_at_the_lowest_real_reward_never_above_it():
    # A generic reward (negative runtime): the published search valued the empty root at 0 here.
    archive = Archive()
    r = archive.add_root(ok("r = 0", -100.0, 100.0))
    e = archive.add_empty_root()
    a, b = archive.record_rollouts(r.id, [ok("a = 0", -50.0), ok("b = 0", -80.0)], step=0)
    assert archive.value(e.id) == -100.0
    # Ranks A > B > R > E (E below R at equal value): P = 4, 3, 2, 1 over 10; scale 30; T = 2.
    root3 = math.sqrt(3)
    expected = {
        r.id: -50.0 + 30 * 0.2 * root3 / 3,
        e.id: -100.0 + 30 * 0.1 * root3 / 1,
        a: -50.0 + 30 * 0.4 * root3 / 1,
        b: -80.0 + 30 * 0.3 * root3 / 1,
    }
    assert archive.scores() == pytest.approx(expected, rel=1e-12)


def test_empty_root_alone_is_valued_zero_and_selectable():
    archive = Archive()
    e = archive.add_empty_root()
    assert archive.value(e.id) == 0.0
    assert [s.id for s in archive.select(2)] == [e.id]
    assert archive.best() is None


def test_rank_prior_is_linear_and_shares_weight_between_ties():
    assert rank_prior([(3.0,), (1.0,), (2.0,)]) == pytest.approx([3 / 6, 1 / 6, 2 / 6])
    assert rank_prior([(2.0,), (2.0,), (1.0,)]) == pytest.approx([2.5 / 6, 2.5 / 6, 1 / 6])


def test_children_are_deduplicated_by_normalised_code():
    archive = Archive(top_children=5)
    root = archive.add_root(ok("def f():\n    return 0\n", 1.0, 1.0))
    first = "def f():\n    return 1\n"
    same = "# faster\ndef f():  # tuned\n\n    return 1   \n"
    added = archive.record_rollouts(root.id, [ok(first, 2.0), ok(same, 3.0), ok(root.code, 4.0)], step=0)
    assert added[1:] == [None, None]
    assert archive.states[added[0]].code == first
    assert archive.total_expansions == 3
    assert normalise_code(same) == normalise_code(first) == "def f():\n    return 1"


def test_comment_marks_inside_strings_are_not_comments():
    assert normalise_code('x = "# not a comment"  # a comment\n') == 'x = "# not a comment"'


def test_parent_keeps_only_its_best_children():
    archive = Archive(top_children=2)
    root = archive.add_root(ok("r = 0", 1.0, 1.0))
    archive.record_rollouts(root.id, [ok("a = 0", 1.5), ok("b = 0", 4.0), ok("c = 0", 2.0)], step=0)
    archive.record_rollouts(root.id, [ok("d = 0", 3.0)], step=1)
    kept = [archive.states[i].reward for i in archive.states[root.id].children]
    assert sorted(kept) == [3.0, 4.0]
    assert archive.q(root.id) == 4.0


def test_a_child_with_children_of_its_own_is_not_dropped_by_the_top_k():
    archive = Archive(top_children=1)
    root = archive.add_root(ok("r = 0", 1.0, 1.0))
    (a,) = archive.record_rollouts(root.id, [ok("a = 0", 2.0)], step=0)
    (g,) = archive.record_rollouts(a, [ok("g = 0", 2.5)], step=1)
    archive.record_rollouts(root.id, [ok("b = 0", 3.0)], step=2)
    assert a in archive.states and g in archive.states
    assert [archive.states[i].code for i in archive.states[root.id].children] == ["a = 0", "b = 0"]


def test_size_cap_evicts_the_lowest_reward_leaves_and_keeps_roots():
    archive = Archive(top_children=10, max_size=4)
    root = archive.add_root(ok("r = 0", 0.1, 1.0))
    empty = archive.add_empty_root()
    added = archive.record_rollouts(root.id, [ok(f"x = {i}", float(i)) for i in (5, 1, 3, 4)], step=0)
    assert [archive.states[i].reward if i else None for i in added] == [5.0, None, None, 4.0]
    assert len(archive) == 4
    assert root.id in archive.states and empty.id in archive.states
    assert sorted(s.reward for s in archive.states.values() if not s.is_root) == [4.0, 5.0]
    assert archive.best().reward == 5.0


def test_size_cap_spares_start_states_of_the_step_in_progress():
    archive = Archive(top_children=10, max_size=3)
    root = archive.add_root(ok("r = 0", 1.0, 1.0))
    other = archive.add_root(ok("o = 0", 0.5, 1.0))
    low, _ = archive.record_rollouts(other.id, [ok("low = 0", 0.2), failed()], step=0)
    starts = archive.select(2)
    assert [s.id for s in starts] == [root.id, low]
    (hi,) = archive.record_rollouts(root.id, [ok("hi = 0", 9.0)], step=1)
    # Over the cap, but the lowest leaf still awaits its rollouts: nothing better is dropped.
    assert list(archive.states) == [root.id, other.id, low, hi]
    archive.record_rollouts(low, [failed()], step=1)
    assert list(archive.states) == [root.id, other.id, hi]


def test_size_cap_never_evicts_the_best_kernel():
    archive = Archive(top_children=10, max_size=2)
    root = archive.add_root(ok("r = 0", 1.0, 1.0))
    (a,) = archive.record_rollouts(root.id, [ok("a = 0", 2.0)], step=0)
    assert list(archive.states) == [root.id, a]
    (b,) = archive.record_rollouts(a, [ok("b = 0", 3.0)], step=1)
    # A has a child now and B is the best: both stay although the cap is 2.
    assert list(archive.states) == [root.id, a, b]
    assert archive.best().id == b


def test_best_and_lineage_follow_parent_links():
    archive, ids = small_tree()
    (deeper,) = archive.record_rollouts(ids["A"], [ok("a2 = 1", 7.0)], step=1)
    assert archive.best().id == deeper
    assert [s.id for s in archive.lineage(deeper)] == [ids["R"], ids["A"], deeper]


def test_failed_root_is_not_best_and_its_evaluation_is_not_an_expansion():
    archive = Archive()
    root = archive.add_root(judged("broken", 0.0, None, "compile_error", "SyntaxError"))
    assert archive.total_expansions == 0 and root.n == 0
    assert archive.best() is None


def test_a_state_keeps_the_code_hash_and_speedup_of_its_rollout():
    archive, ids = small_tree()
    rollout = ok("m = 1", 3.0, 5.0)
    (child_id,) = archive.record_rollouts(ids["B"], [rollout], step=1)
    child = archive.states[child_id]
    assert child.extra == {"code_hash": rollout.code_hash, "speedup": 3.0}
    assert child.runtime_us == 5.0 and child.step == 1 and child.message == "passed"


def test_load_restores_every_state_and_the_statistics_exactly(tmp_path):
    path = tmp_path / "archive.json"
    archive, ids = small_tree(c=1.7)
    archive.add_empty_root()
    archive.select(2)
    archive.record_rollouts(ids["A"], [ok("a2 = 1", 2.0 + 1 / 3), failed()], step=1)
    write_json(path, archive.to_dict())
    loaded = Archive.load(path)
    assert loaded.to_dict() == archive.to_dict()
    assert loaded.states == archive.states
    assert loaded.total_expansions == archive.total_expansions == 5
    assert loaded.scores() == archive.scores()
    assert [loaded.q(i) for i in loaded.states] == [archive.q(i) for i in archive.states]
    assert [s.id for s in loaded.select(3)] == [s.id for s in archive.select(3)]
    # Deduplication survives the reload too.
    assert loaded.record_rollouts(ids["B"], [ok("a2 = 1  # again", 9.0)], step=2) == [None]


def test_the_archive_writes_no_file_of_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archive, ids = small_tree()
    archive.record_rollouts(ids["B"], [failed()], step=1)
    archive.select(1)
    assert list(tmp_path.iterdir()) == []  # the run folder persists it (RunFolder.commit_step)


def test_load_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "c": 1.0}')
    with pytest.raises(ConfigError, match="bad.json"):
        Archive.load(bad)
    with pytest.raises(ConfigError, match="no archive file"):
        Archive.load(tmp_path / "missing.json")
    (tmp_path / "old.json").write_text(json.dumps({"version": 0}))
    with pytest.raises(ConfigError, match="format version 0"):
        Archive.load(tmp_path / "old.json")


def test_q_counts_a_resubmission_of_code_already_in_the_archive_as_published():
    """A child whose code is already kept (here: the other root's) becomes no new state, but its
    measured reward still counts towards its parent's Q, as in the published search."""
    archive = Archive(c=0.0)
    fast = archive.add_root(ok("fast = 1", 3.0))
    slow = archive.add_root(ok("slow = 1", 1.0))
    (added,) = archive.record_rollouts(slow.id, [ok("fast = 1  # the same code again", 3.2)], step=1)
    assert added is None and len(archive) == 2  # no duplicate state
    assert archive.q(slow.id) == 3.2 and archive.states[slow.id].n == 1
    assert archive.q(fast.id) == 3.0  # its own value: nothing was sampled from it


def test_there_are_as_many_roots_as_groups_so_every_group_of_every_step_is_filled():
    archive = Archive(c=1.0)
    start = archive.add_root(ok("start = 1", 1.0))
    empty = archive.add_empty_root()
    archive.ensure_roots(5)
    roots = [s for s in archive.states.values() if s.is_root]
    assert len(roots) == 5
    assert [s.code for s in roots] == [start.code, "", start.code, "", start.code]  # in turn
    assert {s.id for s in roots} >= {start.id, empty.id}
    for step in range(1, 6):  # however the tree grows, five lineages are always there to pick
        picked = archive.select(5)
        assert len(picked) == 5
        for state in picked:
            archive.record_rollouts(state.id, [ok(f"k{step}_{state.id} = 1", 1.0 + step), failed()], step)
    archive.ensure_roots(5)
    assert len([s for s in archive.states.values() if s.is_root]) == 5  # already enough: unchanged
