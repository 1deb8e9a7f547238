import pytest
import torch

from fer_mine.amacnn.model import (
    PRESETS,
    build_model,
    count_macs,
    count_parameters,
    drop_dead_channels,
    fold_batchnorm,
)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_gives_logits_and_an_attention_map_in_0_1(preset):
    model = build_model(preset).eval()
    cfg = model.config
    x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        logits, attention = model.forward_with_attention(x)
    assert logits.shape == (2, 7)
    assert attention.shape[:2] == (2, 1)
    assert attention.shape[2] == attention.shape[3] > 0
    assert attention.min() >= 0 and attention.max() <= 1
    assert torch.allclose(model(x), logits)


def test_presets_follow_the_paper_structure():
    paper = build_model("paper")
    assert paper.config.input_size == 128 and paper.config.in_channels == 3
    stem = paper.stem.streams
    assert [s[0].kernel_size for s in stem] == [(3, 3), (5, 5), (7, 7)]
    assert all(s[0].out_channels == 64 and s[0].stride == (1, 1) for s in stem)
    assert len(paper.blocks) == 3
    assert paper.head[2].out_features == 256 and paper.head[4].p == 0.4


def test_cpu_preset_is_much_cheaper_than_paper():
    cpu, paper = build_model("cpu"), build_model("paper")
    assert count_macs(cpu) * 5 < count_macs(paper)
    assert count_parameters(cpu) < count_parameters(paper)


def test_resolution_schedule_is_configurable():
    no_pool = build_model("tiny", stem_pool=1, block_strides=(1, 1, 1)).eval()
    with torch.no_grad():
        _, attention = no_pool.forward_with_attention(torch.randn(1, 1, 32, 32))
    assert attention.shape[-1] == 32
    assert count_macs(no_pool) > count_macs(build_model("tiny"))


def test_dropping_dead_channels_keeps_the_outputs_and_cuts_the_work():
    """A residual block's inner channels with all-zero weights into its second convolution (what
    Adam's weight decay left in the shipped models) are removed for inference: the same logits and
    attention map, fewer multiply-accumulates. Live channels stay."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    for module in model.modules():  # BatchNorm statistics away from the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    last = model.blocks[-1]
    dead = [0, 3, 7, 8, 20]
    with torch.no_grad():
        last.conv2.weight[:, dead] = 0
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        logits, attention = model.forward_with_attention(x)
    before = count_macs(model)
    width = last.conv1.out_channels
    drop_dead_channels(model)
    assert not any(m.training for m in model.modules())  # still an inference network
    assert model.blocks[-1].conv1.out_channels == width - len(dead)
    assert [b.conv1.out_channels for b in model.blocks[:-1]] == list(model.config.block_widths[:-1])
    with torch.no_grad():
        after_logits, after_attention = model.forward_with_attention(x)
    assert torch.allclose(logits, after_logits, atol=1e-6)
    assert torch.allclose(attention, after_attention, atol=1e-6)
    assert count_macs(model) < before
    fold_batchnorm(model)  # and the BatchNorm that follows still folds
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-5)
