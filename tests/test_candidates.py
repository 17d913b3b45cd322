"""Ranking candidate fits: the neighbour graph, the edges a partition cuts, and the choice."""

from types import SimpleNamespace

import numpy as np
import pytest

from vaegmm.candidates import (UNSETTLED_DISAGREEMENT, boundary_fraction, choose_candidate, components_phrase, disagreement,
                               rounds_phrase, unsettled_advice)
from vaegmm.clustering import neighbour_graph


def test_neighbour_graph_and_boundary_fraction_match_brute_force():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 2))
    labels = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    neighbours = neighbour_graph(X, 5)
    dist = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    expected = np.argsort(dist, axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(neighbours, axis=1), np.sort(expected, axis=1))
    assert boundary_fraction(labels, neighbours) == pytest.approx(np.mean(labels[expected] != labels[:, None]))
    assert boundary_fraction(np.zeros(300, int), neighbours) == 0.0


def test_border_through_the_gap_cuts_fewer_edges_than_one_through_a_cluster(blobs):
    X, y = blobs
    neighbours = neighbour_graph(X, 10)
    through_cluster = np.where(X[:, 1] > 0, 1, 0)  # splits the left blob in two
    assert boundary_fraction(y, neighbours) < boundary_fraction(through_cluster, neighbours) / 5


@pytest.mark.parametrize("slack, expected", [(0, "a"), (1, "b"), (2, "b"), (4, "c")])
def test_choose_candidate_trades_labelled_points_for_cleaner_borders_only_within_the_slack(slack, expected):
    # As on a real draw: "a" keeps 14 of 15 labelled points, "b" 13 with a much cleaner border.
    candidates = [
        SimpleNamespace(name="a", labelled_agreement=14 / 15, boundary_fraction=0.0068, lower_bound=-3.0),
        SimpleNamespace(name="b", labelled_agreement=13 / 15, boundary_fraction=0.0042, lower_bound=-3.1),
        SimpleNamespace(name="c", labelled_agreement=10 / 15, boundary_fraction=0.0010, lower_bound=-3.2),
        SimpleNamespace(name="d", labelled_agreement=13 / 15, boundary_fraction=0.0042, lower_bound=-3.3),
    ]
    assert choose_candidate(candidates, n_labelled=15, label_slack=slack).name == expected


def test_disagreement_is_the_median_share_the_other_candidates_classify_otherwise():
    chosen = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    same = chosen.copy()
    one_off = chosen.copy()
    one_off[0] = 1  # 10% of the points
    odd = np.roll(chosen, 3)  # one odd candidate, far from the rest
    assert disagreement(chosen, [same]) == 0.0
    assert disagreement(chosen, [one_off]) == pytest.approx(0.1)
    # the median: one odd candidate does not make a settled fit look unsettled
    assert disagreement(chosen, [same, one_off, odd]) == pytest.approx(0.1)
    assert np.mean(odd != chosen) > 0.5
    assert disagreement(chosen, []) is None


def test_unsettled_advice_points_a_small_latent_to_a_larger_one_and_stays_quiet_otherwise():
    assert unsettled_advice(None, latent_dim=2) is None
    assert unsettled_advice(UNSETTLED_DISAGREEMENT, latent_dim=2) is None
    low = unsettled_advice(0.45, latent_dim=2)
    assert "unsettled" in low and "45.0%" in low and "2-D latent" in low and "--latent-dim 10" in low
    assert unsettled_advice(0.45, latent_dim=9) is not None
    # from the suggested size up the figure is recorded, never warned about
    assert unsettled_advice(0.45, latent_dim=10) is None


def test_components_phrase_names_the_settled_number_and_is_empty_for_old_summaries():
    assert components_phrase({"components_per_class": 1}) == "1 component per class, "
    assert components_phrase({"components_per_class": 4}) == "4 components per class, "
    assert components_phrase({"chosen": {}}) == ""  # a GMM file or run.json written before the number was recorded


def test_rounds_phrase_is_singular_for_the_once_schedules_one_round():
    assert rounds_phrase({"partition_rounds": 1}) == "1 round of per-class EM"
    assert rounds_phrase({"partition_rounds": 7}) == "7 rounds of per-class EM"
