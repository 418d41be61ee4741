"""RowBuffer: batches' per-sample outputs written into one tensor per key (utils/row_buffer.py)."""
import pytest
import torch

from utils.row_buffer import RowBuffer


def batches(n: int, size: int):
    g = torch.Generator().manual_seed(0)
    for start in range(0, n, size):
        b = min(size, n - start)
        yield {"pred": torch.randn(b, 3, 2, generator=g).to(torch.bfloat16),
               "index": torch.arange(start, start + b),
               "y": torch.empty(0),                   # a placeholder, not one row per sample
               "name": "not a tensor"}, b


def test_rows_equal_the_concatenation_in_order_floats_as_float32():
    buf = RowBuffer(11)
    seen = list(batches(11, 4))
    for i, (outputs, b) in enumerate(seen):
        buf.add(outputs, b)
        if i == 0:
            first = buf.buffers["pred"].data_ptr()
    assert buf.buffers["pred"].data_ptr() == first               # allocated once, at the first batch
    out = buf.tensors()
    assert torch.equal(out["pred"], torch.cat([o["pred"].float() for o, _ in seen]))
    assert out["pred"].dtype == torch.float32 and out["index"].dtype == torch.int64
    assert torch.equal(out["index"], torch.arange(11))
    assert out["y"].numel() == 0 and "name" not in out
    arrays = buf.arrays()
    assert arrays["pred"].shape == (11, 3, 2) and arrays["index"].tolist() == list(range(11))


def test_fewer_rows_than_allocated_are_cut_and_overflow_is_refused():
    buf = RowBuffer(10)
    buf.add({"v": torch.ones(3, 2)}, 3)
    assert buf.tensors()["v"].shape == (3, 2)
    with pytest.raises(ValueError, match="overflows"):
        buf.add({"v": torch.ones(8, 2)}, 8)
    with pytest.raises(ValueError, match="one row per sample"):
        buf.add({"v": torch.ones(2, 2)}, 3)


def test_device_argument_places_the_buffer():
    buf = RowBuffer(4, device=torch.device("cpu"))
    buf.add({"h": torch.randn(4, 5, dtype=torch.float64)}, 4)
    assert buf.tensors()["h"].device.type == "cpu" and buf.tensors()["h"].dtype == torch.float32
