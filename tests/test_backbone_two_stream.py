"""Two-stream network (layers/two_stream.py, models/two_stream.py): the views against direct
computations, the late fusion against the average of the two streams' softmax outputs, the
encoder (odd lengths, gradients, padding) and short real-data runs as a classifier and as the
encoder of SimCLR and TS2Vec."""
from __future__ import annotations


import pytest
import torch

from layers.encoders import build_encoder
from layers.two_stream import TwoStreamEncoder, first_difference, spectrogram
from models.two_stream import TwoStreamClassifier
from tests.helpers import assert_padding_ignored, finite_scores, run_paths, read_metrics, require_ucr, run_experiment


def test_first_difference_and_spectrogram_views():
    x = torch.randn(2, 9, 2)
    d = first_difference(x)
    assert torch.allclose(d[:, 1:], x[:, 1:] - x[:, :-1]) and torch.equal(d[:, 0], x[:, 0])
    spec = spectrogram(x, 4)                                   # bands 0..2 of each channel
    assert spec.shape == (2, 9, 2 * 3)
    window = torch.hann_window(4, periodic=True)
    frame = torch.stack([x[1, 3, 1], x[1, 4, 1], x[1, 5, 1], x[1, 6, 1]])   # steps 5-2 .. 5+1
    direct = torch.log1p(torch.fft.rfft(frame * window).abs())
    assert torch.allclose(spec[1, 5, 3:], direct, atol=1e-6)


def test_the_fused_score_is_the_average_of_the_two_streams_softmax_outputs():
    torch.manual_seed(0)
    model = TwoStreamClassifier(2, 4, widths=[8, 8], kernel_sizes=[5, 3], extra_features=3).eval()
    x, side = torch.randn(3, 30, 2), torch.randn(3, 3)
    # direct: each stream's CNN, mean over time, its own linear softmax
    raw = model.raw(x, torch.ones(3, 30, dtype=torch.bool)).mean(1)
    second = model.second(first_difference(x), torch.ones(3, 30, dtype=torch.bool)).mean(1)
    p_raw = model.raw_head(torch.cat([raw, side], -1)).softmax(-1)
    p_second = model.second_head(torch.cat([second, side], -1)).softmax(-1)
    out = model(x, side)
    assert torch.allclose(out.exp(), (p_raw + p_second) / 2, atol=1e-6)
    assert torch.allclose(out.log_softmax(-1), out, atol=1e-6)    # cross-entropy takes it as is
    with pytest.raises(ValueError, match="no 'features'"):
        model(x)


def test_the_classifier_trains_both_streams_with_a_spectrogram_view():
    torch.manual_seed(0)
    model = TwoStreamClassifier(1, 3, view="spectrogram", widths=[8], kernel_sizes=[3], n_fft=8)
    out = model(torch.randn(4, 21, 1))
    torch.nn.functional.nll_loss(out, torch.tensor([0, 1, 2, 0])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("view", ["difference", "spectrogram"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("length", [37, 1])
def test_encoder_shapes_for_odd_lengths(view, channels, length):
    torch.manual_seed(0)
    enc = TwoStreamEncoder(channels, 16, view=view, widths=[8, 8], kernel_sizes=[5, 3], n_fft=8)
    h = enc(torch.randn(2, length, channels))
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()


def test_gradients_reach_every_encoder_parameter():
    torch.manual_seed(0)
    enc = TwoStreamEncoder(3, 16, widths=[8, 8], kernel_sizes=[5, 3])
    enc(torch.randn(2, 37, 3)).square().mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("view", ["difference", "spectrogram"])
def test_padded_steps_do_not_change_the_observed_steps(view):
    torch.manual_seed(0)
    enc = TwoStreamEncoder(2, 16, view=view, widths=[8, 8], kernel_sizes=[5, 3], n_fft=8).eval()
    x = torch.randn(2, 37, 2)
    padded, mask, _ = assert_padding_ignored(enc, x, row=1, length=23)
    model = TwoStreamClassifier(2, 3, view=view, widths=[8], kernel_sizes=[3], n_fft=8).eval()
    assert torch.allclose(model(padded, mask=mask)[1], model(x[1:, :23])[0], atol=1e-5)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="view='flow'"):
        build_encoder("two_stream", 1, 8, view="flow")
    with pytest.raises(ValueError, match="same length"):
        build_encoder("two_stream", 1, 8, widths=[8, 8], kernel_sizes=[3])
    with pytest.raises(ValueError, match="must be odd"):
        TwoStreamClassifier(1, 2, kernel_sizes=[4, 3, 3])
    with pytest.raises(ValueError, match="n_fft=1"):
        build_encoder("two_stream", 1, 8, n_fft=1)
    with pytest.raises(ValueError, match="model.encoder_kwargs"):
        build_encoder("two_stream", 1, 8, depth=3)


# --- short runs on real data (UCR ECG200) ------------------------------------------------------
TINY = "{widths:[8,8],kernel_sizes:[5,3]}"


def test_classification_on_ecg200(data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    run_experiment(["task=classification", "model=two_stream", "data=ucr", "data.name=ECG200",
                    "trainer.max_epochs=1", "model.widths=[8,8]", "model.kernel_sizes=[5,3]",
                    "model.view=spectrogram", *run_paths(data_dir, cache_dir)], tmp_path)
    assert finite_scores(read_metrics(tmp_path)["test"])
