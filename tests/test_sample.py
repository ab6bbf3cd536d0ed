import torch

from helpers import checkpoint as C
from helpers import evaluate as E
from helpers import sample
from helpers.sample import SampleSettings


def test_generate_and_stream_agree_and_stop_at_end_of_text(tiny_run):
    ck = C.load(tiny_run)
    s = SampleSettings(max_new_tokens=40, seed=3)
    [text] = sample.generate(ck, "Title:", 1, s)
    streamed = "Title:" + "".join(sample.stream(ck, "Title:", s))
    assert text == streamed and text.startswith("Title:")
    assert "<|endoftext|>" not in text


def test_padded_vocabulary_ids_are_never_sampled(tiny_run):
    from dataclasses import replace

    from helpers.model import GPT

    real = C.load(tiny_run)
    n = real.tokenizer.n_vocab
    model = GPT(replace(real.config, vocab_size=n + 64)).eval()  # as train pads e.g. 50257 -> 50304
    with torch.no_grad():  # make the padding ids overwhelmingly likely
        model.lm_head.weight[n:] = 5.0
    ck = C.Checkpoint(model, real.tokenizer, {}, tiny_run)
    texts = sample.generate(ck, "", 4, SampleSettings(max_new_tokens=20, temperature=2.0, top_k=None, seed=0))
    assert len(texts) == 4  # decoding would fail on an id the tokenizer does not have


def test_next_token_probabilities(tiny_run):
    ck = C.load(tiny_run)
    top = sample.next_token_probs(ck, "Title: The", k=8)
    probs = [p for _, p in top]
    assert len(top) == 8 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_repetition_and_novelty_scores():
    assert E.repetition("the vampire bites the vampire bites the vampire bites") >= 0.5
    assert E.repetition("a b c d e f g h") == 0.0
    idx = E.NoveltyIndex("the old sailor walks to the harbour every morning and sings to the gulls")
    copied = idx.score("then the old sailor walks to the harbour every morning and dances")
    assert copied["longest_copied_words"] == 10 and copied["copied_8gram_share"] > 0
    assert copied["longest_copied_text"] == "the old sailor walks to the harbour every morning and"
    fresh = idx.score("a young pilot flies over the desert at night looking for her brother")
    assert fresh["copied_8gram_share"] == 0.0 and fresh["longest_copied_words"] <= 2


def test_full_loss_agrees_with_the_mean_of_window_losses(tiny_run, prepared):
    from helpers.dataset import load_data

    ck = C.load(tiny_run)
    data = load_data(prepared)
    full = E.full_loss(ck.model, data, "val")
    assert full["tokens"] == data.meta["splits"]["val"]["tokens"] - 1
    assert abs(full["bpb"] - E.bits_per_byte(full["loss"], data.meta["splits"]["val"]["bytes"] / full["tokens"])) < 1e-9
    assert 0.5 < full["bpb"] < 4


def test_made_up_words_are_lowercase_words_the_training_text_never_has():
    text = "The detective's dog doesn't bark. Ferreyra rents a flat in town."
    assert E.lowercase_words(text) == ["detective", "dog", "doesn't", "bark", "rents", "flat", "in", "town"]
    known = E.known_words(text)  # every word, lowercased: "the" and "ferreyra" are known, "a" too
    assert known == {"the", "detective", "dog", "doesn't", "bark", "ferreyra", "rents", "a", "flat", "in", "town"}
    sample = "Lucía's dog rents a strancase flat in didentery town, and the detective's dog’s doesn't bark"
    r = E.made_up_words([sample], known)
    # judged: dog rents strancase flat in didentery town and the detective dog doesn't bark (13 words)
    assert r["words"] == 13 and r["examples"] == ["strancase", "didentery", "and"]
    assert r["made_up"] == 3 and abs(r["made_up_rate"] - 3 / 13) < 1e-12
    assert E.made_up_words(["Names Only Here"], known) == {"made_up_rate": 0.0, "words": 0, "made_up": 0,
                                                         "examples": []}


def test_judge_samples_reports_every_yardstick_over_the_samples():
    idx = E.NoveltyIndex("the old sailor walks to the harbour every morning and sings to the gulls")
    j = E.judge_samples(["then the old sailor walks to the harbour every morning and dances",
                         "the gulls gulls gulls gulls gulls sing"], idx)
    assert j["samples"] == 2 and j["longest_copied_words"] == 10
    assert j["made_up_examples"] == ["then", "dances", "sing"]
    assert abs(j["made_up_word_rate"] - 3 / 19) < 1e-12
    assert j["repetition_4gram"] == (0.0 + 1 / 4) / 2  # the second: 4 four-grams, one repeats
