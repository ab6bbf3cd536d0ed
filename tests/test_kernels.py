"""The CPU kernels of helpers/kernels.py, each against the standard op it replaces."""
import pytest
import torch

from helpers.kernels import Dropout, dropout_mask, hashed_dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_mask_drops_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    m = dropout_mask(torch.Size((64, 128, 128)), p, torch.float32, torch.device("cpu"))  # 1M elements
    kept = m > 0
    values = m.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)
    assert abs((~kept).float().mean().item() - p) < 0.003  # 1M draws: the std of the rate is < 0.0005
    assert abs(m.mean().item() - 1.0) < 0.005
    # no structure: each of the 4 int16 lanes of a 64-bit draw drops at the same rate
    lanes = (~kept).reshape(-1, 4).float().mean(0)
    assert (lanes - p).abs().max() < 0.006
    torch.manual_seed(0)
    assert torch.equal(m, dropout_mask(torch.Size((64, 128, 128)), p, torch.float32, torch.device("cpu")))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_the_hashed_dropout_mask_drops_p_independently_and_follows_the_seed(p):
    shape, cpu = torch.Size((64, 128, 128)), torch.device("cpu")
    torch.manual_seed(0)
    m, m2 = (hashed_dropout_mask(shape, p, torch.float32, cpu) for _ in range(2))
    values = m.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-6)
    dropped, dropped2 = (m == 0).flatten(), (m2 == 0).flatten()
    assert abs(dropped.float().mean().item() - p) < 0.003  # 1M draws: the rate's std is < 0.0005
    # no structure: neighbours, elements a row apart and the next call's mask all drop together p^2 of
    # the time, as independent draws do (a weak hash or a repeated seed would not)
    for a, b in ((dropped[:-1], dropped[1:]), (dropped[:-128], dropped[128:]), (dropped, dropped2)):
        assert abs((a & b).float().mean().item() - p * p) < 0.003
    torch.manual_seed(0)
    assert torch.equal(m, hashed_dropout_mask(shape, p, torch.float32, cpu))


def test_compiled_dropout_on_a_cpu_hashes_the_same_mask_and_drops_p(monkeypatch):
    """In a compiled graph Dropout switches to the hash (the compiler's own per-element random numbers
    are slow on a CPU). The compiled integer arithmetic must give the eager mask bit for bit, and a
    compiled Dropout must drop p, differently on each call and the same again under the same seed."""
    from helpers.device import compile_problem

    if compile_problem("cpu") is not None:
        pytest.skip(compile_problem("cpu"))
    shape, cpu, seed = torch.Size((16, 4, 128, 128)), torch.device("cpu"), torch.tensor([-123457], dtype=torch.int32)
    compiled = torch.compile(hashed_dropout_mask, fullgraph=True)
    assert torch.equal(compiled(shape, 0.1, torch.float32, cpu, seed),
                       hashed_dropout_mask(shape, 0.1, torch.float32, cpu, seed))

    from helpers import kernels

    traced = []  # what the compiler traced through: the hash, not dropout_mask or F.dropout
    monkeypatch.setattr(kernels, "hashed_dropout_mask", lambda *a: traced.append(a[0]) or hashed_dropout_mask(*a))
    x = torch.randn(shape) + 10.0  # no zeros of its own
    drop = torch.compile(Dropout(0.1).train(), fullgraph=True)
    torch.manual_seed(3)
    y, y2 = drop(x), drop(x)
    assert traced and set(traced) == {shape}
    assert abs((y == 0).float().mean().item() - 0.1) < 0.003 and torch.allclose(y[y != 0], x[y != 0] / 0.9)
    assert abs(((y == 0) & (y2 == 0)).float().mean().item() - 0.01) < 0.002  # a new, independent mask
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)


def test_the_compiled_cpu_loss_gives_the_loss_and_gradient_of_cross_entropy():
    """In a compiled CPU graph TokenLoss uses _CrossEntropyFn, its gradient (softmax - onehot) / N
    written out. Its loss and bf16 gradient must be F.cross_entropy's, and the gradient must point at
    the targets (pull their logits up, the others down)."""
    from helpers.device import compile_problem
    from helpers.kernels import TokenLoss, _CrossEntropyFn

    if compile_problem("cpu") is not None:
        pytest.skip(compile_problem("cpu"))
    from torch._inductor.compile_fx import compile_fx

    graphs = []  # what the compiler traced, handed on to the usual backend (Inductor)

    def backend(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    torch.manual_seed(0)
    logits = (torch.randn(96, 97) * 3).bfloat16()
    y = torch.randint(97, (96,))
    want_x = logits.clone().requires_grad_()
    want = torch.nn.functional.cross_entropy(want_x.float(), y)
    want.backward()
    got_x = logits.clone().requires_grad_()
    got = torch.compile(TokenLoss(), backend=backend, fullgraph=True)(got_x, y)
    got.backward()
    assert len(graphs) == 1 and "autograd_function_apply" in graphs[0].code  # through _CrossEntropyFn
    assert "logsumexp" in graphs[0].fwd_body_0.code and "arange" in graphs[0].bwd_body_0.code
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), abs=1e-5)
    assert got_x.grad.dtype == torch.bfloat16
    assert torch.allclose(got_x.grad.float(), want_x.grad.float(), atol=1e-5, rtol=1e-2)
    rows = torch.arange(96)
    assert (got_x.grad[rows, y] < 0).all()  # the targets' logits go up
    others = got_x.grad.float().clone()
    others[rows, y] = 0
    assert (others >= 0).all() and got_x.grad.float().sum(1).abs().max() < 1e-4  # each row's gradient sums to 0
    # eagerly the module keeps F.cross_entropy (faster there); the Function agrees with it too
    assert TokenLoss()(logits, y).item() == pytest.approx(want.item(), abs=1e-5)
    assert _CrossEntropyFn.apply(logits.float(), y).item() == pytest.approx(want.item(), abs=1e-5)
