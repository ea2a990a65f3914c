import math

import pytest

from app.assessor import chain_rule, scoring_nodes


def test_scoring_nodes_skip_the_prefix_all_labels_share():
    # "a b c" and "a b d e": node () and (a,) are shared with one child -> cancel; (a,b) branches
    conts = [[1, 2, 3], [1, 2, 4, 5]]
    nodes = scoring_nodes(conts)
    assert nodes == {(1, 2): {3, 4}, (1, 2, 4): {5}}
    # a single continuation of one token still needs nothing: everything is shared
    assert scoring_nodes([[7]]) == {}
    # no shared first token: the root is scored
    assert scoring_nodes([[1], [2, 3]]) == {(): {1, 2}, (2,): {3}}


def test_chain_rule_sums_the_scored_nodes():
    conts = [[1, 2, 3], [1, 2, 4, 5]]
    table = {(1, 2): {3: math.log(0.6), 4: math.log(0.3)}, (1, 2, 4): {5: math.log(0.5)}}
    a, b = chain_rule(conts, table)
    assert a == pytest.approx(math.log(0.6)) and b == pytest.approx(math.log(0.15))
