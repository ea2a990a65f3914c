import pytest
import torch

from training.entropy import stage_entropy_term, stage_means
from training.schedule import stage_betas


def test_term_value_by_hand():
    # sample 0: stage 0 tokens H=1,3 (mean 2), stage 1 token H=4, a tag token (-1) and padding
    # sample 1: stage 0 token H=6, stage 1 absent (counts as 0 in the batch mean)
    H = torch.tensor([[1.0, 3.0, 9.0, 4.0, 7.0], [6.0, 8.0, 5.0, 5.0, 5.0]])
    stage = torch.tensor([[0, 0, -1, 1, -1], [0, -1, -1, -1, -1]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    means, counts = stage_means(H, stage, mask, 2)
    assert means.tolist() == [[2.0, 4.0], [6.0, 0.0]]
    assert counts.tolist() == [[2.0, 1.0], [1.0, 0.0]]
    # beta_0 · (2 + 6)/2 + beta_1 · (4 + 0)/2 = 0.5·4 − 2·2
    assert stage_entropy_term(H, stage, mask, [0.5, -2.0]).item() == pytest.approx(2.0 - 4.0)


def test_masked_tokens_do_not_count():
    H = torch.tensor([[1.0, 100.0]])
    stage = torch.tensor([[0, 0]])
    assert stage_entropy_term(H, stage, torch.tensor([[1, 0]]), [1.0]).item() == pytest.approx(1.0)


def test_gradient_step_moves_early_entropy_up_and_late_entropy_down():
    # toy model: a learned logit vector per position (T=10, V=12), two positions per stage
    torch.manual_seed(0)
    model = torch.nn.Embedding(10, 12)
    with torch.no_grad():
        model.weight.mul_(2.0)
    stage = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]])
    mask = torch.ones(1, 10)

    def entropies():
        logp = torch.log_softmax(model(torch.arange(10)).unsqueeze(0), -1)  # (1, T, V)
        return -(logp.exp() * logp).sum(-1)  # (1, T)

    before = stage_means(entropies().detach(), stage, mask, 5)[0][0]
    loss = stage_entropy_term(entropies(), stage, mask, stage_betas())
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=5.0).step()
    after = stage_means(entropies().detach(), stage, mask, 5)[0][0]
    assert (after[:3] > before[:3]).all(), (before, after)  # beta < 0: exploration in early stages
    assert (after[3:] < before[3:]).all(), (before, after)  # beta > 0: confident late stages
