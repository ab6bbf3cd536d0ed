import numpy as np
import pytest
import tiktoken
import torch

from helpers.augment import DocShuffler, TokenSplitter, merge_parents
from helpers.config import TrainConfig
from helpers.memmap import get_batch, load_data


def _tiny_encoding() -> tiktoken.Encoding:
    # "ab" and "bc" are both merges, "abc" the third: BPE merges the lower-ranked "ab" first, so
    # "abc" was made from "ab" + "c", not "a" + "bc"
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"ab": 256, b"bc": 257, b"abc": 258})
    return tiktoken.Encoding(name="tiny", pat_str=r"\S+|\s+", mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 259})


def test_parents_follow_the_merge_order():
    parents = merge_parents(_tiny_encoding())
    assert parents.shape == (260, 2)
    assert parents[256].tolist() == [ord("a"), ord("b")]
    assert parents[257].tolist() == [ord("b"), ord("c")]
    assert parents[258].tolist() == [256, ord("c")]
    assert (parents[:256] == -1).all() and (parents[259] == -1).all()  # bytes and <|endoftext|>


def test_every_trained_token_splits_into_two_earlier_tokens_with_its_bytes(prepared):
    enc = load_data(prepared).tokenizer
    parents = merge_parents(enc)
    merged = range(256, enc.n_vocab - 1)
    assert all(parents[t, 0] >= 0 for t in merged)
    for t in merged:
        a, b = (int(i) for i in parents[t])
        assert a < t and b < t
        assert enc.decode_single_token_bytes(a) + enc.decode_single_token_bytes(b) == enc.decode_single_token_bytes(t)


def test_splitting_keeps_the_bytes_and_the_row_length():
    parents = merge_parents(_tiny_encoding())
    split = TokenSplitter(parents, p=0.5)
    win = np.array([[258, ord("x"), 258, 256], [ord("x"), ord("y"), ord("z"), 257]])
    everything = split(win, np.zeros(win.shape))  # every draw below p: every splittable token splits
    assert everything.tolist() == [[256, ord("c"), ord("x"), 256], [ord("x"), ord("y"), ord("z"), ord("b")]]
    assert split(win, np.ones(win.shape)).tolist() == win.tolist()  # no draw below p: nothing changes
    rng = np.random.default_rng(0)
    enc = _tiny_encoding()
    for _ in range(20):
        w = rng.choice([256, 257, 258, ord("x")], size=(3, 12))
        out = split(w, rng.random(w.shape))
        assert out.shape == w.shape
        for row_in, row_out in zip(w, out):  # the split row spells the start of the same bytes
            assert enc.decode_bytes(row_in.tolist()).startswith(enc.decode_bytes(row_out.tolist()))


def test_split_rate_matches_p(prepared):
    data = load_data(prepared)
    parents = merge_parents(data.tokenizer)
    gen = torch.Generator().manual_seed(0)
    arr = data.tokens("train")
    plain = get_batch(arr, 64, 32, torch.Generator().manual_seed(0))[0]
    x, y = get_batch(arr, 64, 32, gen, splitter=TokenSplitter(parents, 0.2))
    assert torch.equal(x[:, 1:], y[:, :-1])  # still next-token pairs
    assert not torch.equal(x, plain)
    # the first token of each window splits with probability p if it can
    first_plain = plain[:, 0].numpy()
    can = parents[first_plain, 0] >= 0
    changed = (x[:, 0].numpy() != first_plain) & can
    assert 0 < changed.sum() < can.sum()
    # over many windows the share of split first tokens is close to p
    big = get_batch(arr, 4000, 8, torch.Generator().manual_seed(1), splitter=TokenSplitter(parents, 0.2))[0]
    ref = get_batch(arr, 4000, 8, torch.Generator().manual_seed(1))[0][:, 0].numpy()
    can = parents[ref, 0] >= 0
    rate = ((big[:, 0].numpy() != ref) & can).sum() / can.sum()
    assert 0.17 < rate < 0.23


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_a_split_probability_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match="token_split"):
        TrainConfig(token_split=p)
    with pytest.raises(ValueError, match="probability"):
        TokenSplitter(np.full((4, 2), -1), p)


# three documents, each opening with the separator 0: [0 1 2 3] [0 4 5] [0 6 7 8 9]
STREAM = np.array([0, 1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9])


def test_a_window_inside_one_document_is_unchanged():
    shuffle = DocShuffler(STREAM, eot=0)
    assert shuffle.n_docs == 3
    out = shuffle(STREAM, np.array([8, 1]), 3, np.array([[0], [0]]))
    assert out.tolist() == [[6, 7, 8], [1, 2, 3]]


def test_a_window_leaving_its_document_goes_on_in_the_picked_one_from_its_start():
    shuffle = DocShuffler(STREAM, eot=0)
    # from "2" in document 0: "2 3", then document 2 from its start, then (picks used up) document 0
    out = shuffle(STREAM, np.array([2, 5]), 8, np.array([[2], [1]]))
    assert out[0].tolist() == [2, 3, 0, 6, 7, 8, 9, 0]
    # from "4" in document 1: "4 5", document 1 again, then the one after it in the stream
    assert out[1].tolist() == [4, 5, 0, 4, 5, 0, 6, 7]


def test_picking_the_next_document_every_time_gives_the_plain_windows(prepared):
    data = load_data(prepared)
    train = data.tokens("train")
    shuffle = DocShuffler(train, data.meta["eot_id"])
    assert shuffle.n_docs > 10
    rng = np.random.default_rng(0)
    ix, L = rng.integers(0, len(train) - 200, size=64), 200
    doc = np.searchsorted(shuffle.starts, ix, side="right") - 1
    following = (doc[:, None] + 1 + np.arange(4)) % shuffle.n_docs  # the stream's own order
    assert (shuffle(train, ix, L, following) == train[ix[:, None] + np.arange(L)]).all()
    # and picked at random, every window still starts where it was asked to and stays in the vocabulary
    out = shuffle(train, ix, L, rng.integers(0, shuffle.n_docs, size=(64, 4)))
    assert (out[:, 0] == train[ix]).all() and out.max() < data.vocab_size
    crossing = (doc + 1 < shuffle.n_docs) & (ix + L > shuffle.ends[doc])
    assert crossing.any() and (out[crossing] != train[ix[crossing, None] + np.arange(L)]).any()


def test_shuffled_batches_keep_their_offsets_and_targets(prepared):
    data = load_data(prepared)
    train = data.tokens("train")
    shuffle = DocShuffler(train, data.meta["eot_id"])
    x0, _ = get_batch(train, 8, 64, torch.Generator().manual_seed(3))
    x, y = get_batch(train, 8, 64, torch.Generator().manual_seed(3), shuffler=shuffle)
    assert (x[:, 0] == x0[:, 0]).all()  # the same window offsets are drawn first
    assert (x[:, 1:] == y[:, :-1]).all()  # targets are the inputs shifted by one
