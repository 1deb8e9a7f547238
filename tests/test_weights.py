"""The shipped model: it loads, matches its recorded hash, refuses damaged copies, classifies faces."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fer_mine.amacnn.catalog import CARD_FILE, shipped_model_dir
from fer_mine.amacnn.model import networks_of
from fer_mine.amacnn.weights import load_model
from fer_mine.cli import main
from fer_mine.errors import FerMineError
from fer_mine.labels import EMOTIONS
from fer_mine.media.hashing import sha256_of

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_shipped_weights_load_and_match_their_card():
    folder = shipped_model_dir()
    card = json.loads((folder / CARD_FILE).read_text())
    assert sha256_of(folder / card["weights_file"]) == card["sha256"]
    model, loaded = load_model()
    assert loaded.labels == EMOTIONS
    assert loaded.metrics["fer2013/test"]["PrivateTest"]["accuracy"] > 0.6
    cfg = model.config
    with torch.no_grad():
        probs = model(torch.zeros(2, cfg.in_channels, cfg.input_size, cfg.input_size)).softmax(1)
    assert probs.shape == (2, 7) and torch.allclose(probs.sum(1), torch.ones(2))


@pytest.mark.parametrize("name", ["amacnn-fer2013", "amacnn-fer2013-fast", "amacnn-ferplus"])
def test_the_inference_form_keeps_every_probability(name):
    """`run`, `evaluate` and `explain` classify float32 with the dead channels dropped and BatchNorm
    folded into the convolutions (1.14x faster each); the probabilities must be those of the weights
    as trained."""
    fast, card = load_model(name)
    plain, _ = load_model(name, inference=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    # the last block's inner width: 256 as trained, under 160 live in every shipped network
    for trained, folded in zip(networks_of(plain), networks_of(fast), strict=True):
        assert trained.blocks[-1].conv1.out_channels == 256 > 160 > folded.blocks[-1].conv1.out_channels
    cfg = card.config
    faces = card.preprocess.normalize(torch.rand(16, cfg.in_channels, cfg.input_size, cfg.input_size))
    with torch.no_grad():
        a, b = fast(faces).softmax(1), plain(faces).softmax(1)
    assert (a - b).abs().max() < 1e-5


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(shipped_model_dir(), target)
    return target


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:-10] + b"0123456789"),  # tampered
        lambda p: torch.save({"evil": 1}, p),  # a foreign (pickle) file in its place
    ],
    ids=["truncated", "tampered", "foreign"],
)
def test_damaged_weights_are_refused_before_loading(copy, damage):
    damage(copy / "model.safetensors")
    with pytest.raises(FerMineError, match="does not match its model card"):
        load_model(copy)


def test_a_foreign_file_with_a_matching_card_is_still_refused(copy):
    weights = copy / "model.safetensors"
    weights.write_bytes(b"\x00" * 64)
    card = json.loads((copy / CARD_FILE).read_text())
    card["sha256"] = sha256_of(weights)
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(FerMineError, match="not a fer-mine AMACNN weights file"):
        load_model(copy)


def test_model_info_names_the_shipped_model_and_its_accuracy():
    result = CliRunner().invoke(main, ["model-info"])
    assert result.exit_code == 0, result.output
    card = json.loads((shipped_model_dir() / CARD_FILE).read_text())
    assert card["name"] in result.output and card["sha256"][:12] in result.output
    assert "PrivateTest" in result.output
    assert "detector yunet-n (default of `run`): sha256 25a606a145a5" in " ".join(result.output.split())
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert card["sha256"][:12] in help_text


def test_the_shipped_model_classifies_the_bundled_sample_faces(tmp_path):
    result = CliRunner().invoke(main, ["run", "--quiet", "--input", str(SAMPLES), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    import duckdb

    con = duckdb.connect()
    files = [str(p) for p in (tmp_path / "faces").glob("*.parquet")]
    faces = con.execute("SELECT count(*), count(DISTINCT emotion) FROM read_parquet(?)", [files]).fetchone()
    assert faces[0] >= 10  # the samples hold 14 pasted faces
    # Eileen Collins smiles in the source photo: most of her faces should read as happy
    happy = con.execute("SELECT count(*) FROM read_parquet(?) WHERE emotion = 'happy'", [files]).fetchone()[0]
    assert happy >= 3


def _faces_of(folder: Path) -> dict:
    import duckdb

    files = [str(p) for p in (folder / "faces").glob("*.parquet")]
    rows = (
        duckdb.connect()
        .execute(
            "SELECT path, face_index, emotion, precision, "
            + ", ".join(f"p_{e}" for e in EMOTIONS)
            + " FROM read_parquet(?)",
            [files],
        )
        .fetchall()
    )
    return {(r[0], r[1]): r[2:] for r in rows}


def test_int8_on_the_cpu_labels_the_sample_faces_as_float32_does(tmp_path):
    """`run --precision int8` (the CPU's default where a card keeps its int8 network) and a user
    comparing with --precision float32 see the same labels but on near-ties, each probability
    within a few points, and each table says which arithmetic made it."""
    for precision in ("int8", "float32"):
        args = ["run", "--quiet", "--input", str(SAMPLES), "--output", str(tmp_path / precision)]
        result = CliRunner().invoke(main, [*args, "--precision", precision])
        assert result.exit_code == 0, result.output
    int8, float32 = _faces_of(tmp_path / "int8"), _faces_of(tmp_path / "float32")
    assert int8.keys() == float32.keys() and len(int8) >= 10
    assert {f[1] for f in int8.values()} == {"int8"} and {f[1] for f in float32.values()} == {"float32"}
    assert sum(int8[k][0] == float32[k][0] for k in int8) >= len(int8) - 2
    for k in int8:  # a label may change only on a near-tie: float32 gave it 80% of its own top
        probabilities = dict(zip(EMOTIONS, float32[k][2:], strict=True))
        assert probabilities[int8[k][0]] >= 0.8 * max(probabilities.values()), k
    assert max(abs(a - b) for k in int8 for a, b in zip(int8[k][2:], float32[k][2:], strict=True)) < 0.1


def test_damaged_or_missing_int8_state_is_refused_and_float32_still_loads(copy):
    from fer_mine.amacnn.int8 import INT8_FILE

    state = copy / INT8_FILE
    state.write_bytes(state.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(FerMineError, match="does not match"):
        load_model(copy, precision="int8")
    state.unlink()
    with pytest.raises(FerMineError, match="int8 state missing"):
        load_model(copy, precision="int8")
    card = json.loads((copy / CARD_FILE).read_text())
    card["int8"]["kept"] = True  # then `auto` means int8 on the CPU, and needs the file too
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(FerMineError, match="int8 state missing"):
        load_model(copy, precision="auto")
    assert load_model(copy, precision="float32")[1].sha256  # the float weights are untouched
    del card["int8"]
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(FerMineError, match="fer-mine quantize"):
        load_model(copy, precision="int8")
    assert load_model(copy, precision="auto")[0].config  # auto falls back to float32


def test_int8_rebuilt_from_the_stored_calibration_is_the_calibrated_network(tmp_path):
    """The shipped file holds observer state, not a network: rebuilding must give exactly the
    network that was calibrated, or `run` would not classify as `fer-mine quantize` measured."""
    from copy import deepcopy

    from fer_mine.amacnn import int8, quantize
    from fer_mine.amacnn.model import build_model

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    cfg = model.config
    images = torch.randn(64, cfg.in_channels, cfg.input_size, cfg.input_size)
    state = quantize.observe_ranges(model, images)
    quantize.save_int8_state(state, tmp_path / "int8.safetensors")
    calibrated = int8.convert(deepcopy(model), state)
    rebuilt = int8.convert(deepcopy(model), int8.load_int8_state(tmp_path / "int8.safetensors"))
    faces = torch.randn(16, cfg.in_channels, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        assert torch.equal(calibrated(faces), rebuilt(faces))
        assert (rebuilt(faces).softmax(1) - model(faces).softmax(1)).abs().max() < 0.1  # and near float32


def test_qat_int8_survives_dead_channels_and_is_rebuilt_from_its_stored_state(tmp_path):
    """Quantisation-aware fine-tuning on a network whose BatchNorm zeroed some channels (as weight
    decay does: 293 of amacnn-fer2013's 1,440) still gives int8 faces close to float32, and the
    int8 network `run` rebuilds from the stored file (float16 weights) is the fine-tuned one."""
    from copy import deepcopy

    from fer_mine.amacnn import int8, quantize
    from fer_mine.amacnn.model import build_model
    from fer_mine.transforms.preprocess import Preprocess

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    cfg = model.config
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight[::4] = 0.0  # dead channels: QAT's conv-BN folding divides by these
    preprocess = Preprocess(size=cfg.input_size, channels=cfg.in_channels)
    images = torch.randint(0, 256, (256, cfg.in_channels, cfg.input_size, cfg.input_size), dtype=torch.uint8)
    seen = []
    state = quantize.fine_tune(
        model, images, preprocess, steps=6, progress=lambda done, total: seen.append(done)
    )
    assert seen == [1, 2, 3, 4, 5, 6]
    quantize.save_int8_state(state, tmp_path / "int8.safetensors")
    fine_tuned = int8.convert(deepcopy(model), state, "qat")
    rebuilt = int8.convert(deepcopy(model), int8.load_int8_state(tmp_path / "int8.safetensors"), "qat")
    faces = preprocess.normalize(images[:32])
    with torch.no_grad():
        expected = model(faces).softmax(1)
        got = rebuilt(faces).softmax(1)
        assert torch.isfinite(got).all()
        assert (got - fine_tuned(faces).softmax(1)).abs().max() < 0.02  # float16 storage
        assert (got - expected).abs().max() < 0.1  # and near float32
        assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.9


def test_the_same_weights_saved_by_two_processes_have_one_sha256(tmp_path):
    """`run` recognises a model by its weights' sha256: saving the same weights again, in another
    process, must not make it another model."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from pathlib import Path; from fer_mine.amacnn.model import build_model; "
        "from fer_mine.amacnn.presets import PRESETS; from fer_mine.amacnn.weights import ModelCard, save_model; "
        "from fer_mine.transforms.preprocess import Preprocess; torch.manual_seed(0); m = build_model('tiny'); "
        "c = m.config; card = ModelCard('same', c, Preprocess(size=c.input_size, channels=c.in_channels), "
        "tuple(f'l{i}' for i in range(c.num_classes)), preset='tiny'); "
        "print(save_model(m, card, Path(sys.argv[1])).sha256)"
    )
    hashes = {
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"m{i}")], capture_output=True, text=True,
                       check=True).stdout.strip()
        for i in range(6)  # two metadata keys in a random order: six agree by chance 1 time in 32
    }  # fmt: skip
    assert len(hashes) == 1


def test_close_calls_go_to_float32_and_only_they():
    """int8 with its close calls in float32: faces whose int8 top two are nearer than the margin
    get float32's probabilities, the others keep int8's; margin 0 is int8, a margin of 1 float32."""
    from copy import deepcopy

    from fer_mine.amacnn import int8, quantize
    from fer_mine.amacnn.model import build_model, class_probabilities

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    cfg = model.config
    images = torch.randn(64, cfg.in_channels, cfg.input_size, cfg.input_size)
    quantised = int8.convert(deepcopy(model), quantize.observe_ranges(model, images))
    faces = torch.randn(32, cfg.in_channels, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        p8 = class_probabilities(quantised, faces, tta=True, temperature=0.7)
        p32 = class_probabilities(model, faces, tta=True, temperature=0.7)
        top = p8.topk(2, dim=1).values
        margin = float((top[:, 0] - top[:, 1]).median())
        both = int8.CloseCallsInFloat32(quantised, model, margin)
        got = class_probabilities(both, faces, tta=True, temperature=0.7)
        close = (top[:, 0] - top[:, 1]) < margin
        assert 0 < both.refined == int(close.sum()) < len(faces) and both.seen == len(faces)
        assert torch.allclose(got[close], p32[close]) and torch.equal(got[~close], p8[~close])
        assert torch.equal(
            class_probabilities(int8.CloseCallsInFloat32(quantised, model, 0.0), faces, True, 0.7), p8
        )
        assert torch.allclose(
            class_probabilities(int8.CloseCallsInFloat32(quantised, model, 1.0), faces, True, 0.7), p32
        )


def test_the_refine_margin_is_the_smallest_that_gives_every_face_float32s_label():
    from fer_mine.amacnn.quantize import refine_margin

    float32 = np.array([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1]])
    int8 = np.array([[0.48, 0.52], [0.2, 0.8], [0.9, 0.1]])  # the first face flips, 0.04 apart
    assert refine_margin(float32, int8) == 0.05
    assert refine_margin(float32, float32) == 0.0
    assert refine_margin(float32, np.array([[0.1, 0.9], [0.3, 0.7], [0.9, 0.1]])) is None  # a sure flip


def test_the_int8_network_is_kept_in_the_cache_and_classifies_as_rebuilt(tmp_path, monkeypatch):
    """A run's start loads the int8 network from the user's cache (TorchScript) instead of
    rebuilding it; the cached copy gives exactly the rebuilt network's outputs, and a damaged
    cache file is made again."""
    from fer_mine.amacnn import int8
    from fer_mine.amacnn.model import class_probabilities
    from fer_mine.amacnn.weights import read_card

    monkeypatch.setenv(int8.CACHE_ENV, str(tmp_path))
    card, weights = read_card("amacnn-ferplus")
    rebuilt = int8.convert(load_model("amacnn-ferplus", inference=False)[0],
                           int8.load_int8_state(weights.with_name(int8.INT8_FILE)), card.int8_method)  # fmt: skip
    first = load_model("amacnn-ferplus", precision="int8")[0]
    (kept,) = tmp_path.glob("int8-*.pt")
    again = load_model("amacnn-ferplus", precision="int8")[0]
    faces = torch.randn(16, 1, 48, 48)
    with torch.no_grad():
        expected = class_probabilities(rebuilt, faces, True)
        assert torch.equal(class_probabilities(first, faces, True), expected)
        assert torch.equal(class_probabilities(again, faces, True), expected)
    kept.write_bytes(b"not torchscript")
    with torch.no_grad():
        assert torch.equal(
            class_probabilities(load_model("amacnn-ferplus", precision="int8")[0], faces, True), expected
        )
    assert kept.stat().st_size > 1000
