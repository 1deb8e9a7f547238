import pytest
import torch

from fer_mine.amacnn.model import PRESETS, build_model, count_macs, count_parameters


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
