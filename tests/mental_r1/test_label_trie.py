import math

import pytest

from mental_r1.label_trie import branch_nodes, constrained_logprobs


# ------------------------------------------------------------------------------------ branch-point math
def test_branch_nodes_are_the_nodes_with_more_than_one_child():
    # "a b c" and "a b d e": () and (a,) have one child, (a,b) branches, (a,b,d) has one child again
    assert branch_nodes([[1, 2, 3], [1, 2, 4, 5]]) == {(1, 2): (3, 4)}
    # three labels parting at two depths: the root, then under token 1
    assert branch_nodes([[1, 2], [1, 3], [4, 5]]) == {(): (1, 4), (1,): (2, 3)}
    # a single label: nothing to choose, nothing to score
    assert branch_nodes([[7, 8]]) == {}


@pytest.mark.parametrize("conts", [[[1, 2], [1, 2, 3]], [[5, 1], [5, 1, 2], [5, 3]]])
def test_a_continuation_that_ends_where_another_goes_on_is_refused(conts):
    with pytest.raises(ValueError, match="strict prefix"):
        branch_nodes(conts)


def test_an_empty_or_repeated_continuation_is_refused():
    with pytest.raises(ValueError, match="empty label continuation"):
        branch_nodes([[], [1]])
    with pytest.raises(ValueError, match="same token sequence"):
        branch_nodes([[1, 2], [1, 2]])


def test_constrained_logprobs_renormalise_over_each_nodes_children_and_chain():
    # a = (1, 2), b = (1, 3), c = (4, 5). Root children: P(1) = .5, P(4) = .2 → constrained 5/7, 2/7;
    # node (1,): P(2) = .3, P(3) = .1 → 3/4, 1/4; node (4,) has one child (5): probability 1.
    # a = 5/7 · 3/4 = 15/28, b = 5/7 · 1/4 = 5/28, c = 2/7 = 8/28
    conts = [[1, 2], [1, 3], [4, 5]]
    table = {(): {1: math.log(0.5), 4: math.log(0.2)}, (1,): {2: math.log(0.3), 3: math.log(0.1)}}
    got = constrained_logprobs(conts, table)
    assert got == pytest.approx([math.log(15 / 28), math.log(5 / 28), math.log(8 / 28)])
    assert sum(map(math.exp, got)) == pytest.approx(1.0)
    # only differences within a node matter: shifting one node's log-probs changes nothing, and tokens that
    # are not children (vLLM's sampled token, listed beside the requested ones) do not count
    shifted = {(): {t: v - 3.0 for t, v in table[()].items()}, (1,): {**table[(1,)], 99: math.log(0.6)}}
    assert constrained_logprobs(conts, shifted) == pytest.approx(got)


def test_one_branching_node_is_a_softmax_over_its_children():
    conts = [[9, 1, 7], [9, 2, 7]]  # shared start, one choice, shared end
    (node,) = branch_nodes(conts)
    a, b = constrained_logprobs(conts, {node: {1: -1.2, 2: -2.9}})
    assert a == pytest.approx(-1.2 - math.log(math.exp(-1.2) + math.exp(-2.9)))
    assert math.exp(a) + math.exp(b) == pytest.approx(1.0)
