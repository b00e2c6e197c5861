"""Loading GPT-2 checkpoints, checked against transformers' own GPT2LMHeadModel."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from gpt2course import pretrained
from gpt2course.files import CheckpointError
from gpt2course.model import GPT
from gpt2course.pretrained import load_pretrained
from gpt2course.workshop import offline

transformers = pytest.importorskip("transformers")
from safetensors.torch import save_file  # noqa: E402

TINY = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=101, n_positions=64)


def hf_model(seed: int = 0, **kw):
    """A random transformers GPT-2 (dropout off), the independent reference."""
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(**{**TINY, **kw}, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg.bos_token_id = cfg.eos_token_id = None
    return transformers.GPT2LMHeadModel(cfg).eval()


def assert_same_logits(ours, hf, vocab: int, T: int = 20) -> None:
    torch.manual_seed(1)
    idx = torch.randint(0, vocab, (2, T))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


def hub_layout_file(hf, path: Path) -> Path:
    """The hub file's layout: no 'transformer.' prefix, the mask buffers in, no lm_head."""
    sd = {}
    for k, v in hf.state_dict().items():
        if k == "lm_head.weight":
            continue
        sd[k.removeprefix("transformer.")] = v.contiguous()
    n = hf.config.n_positions
    for i in range(hf.config.n_layer):
        sd[f"h.{i}.attn.bias"] = torch.ones(n, n).tril().view(1, 1, n, n)
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(sd, str(path), metadata={"format": "pt"})
    return path


def fake_hub_cache(root: Path, hf, repo: str = "openai-community/gpt2") -> Path:
    """huggingface_hub's cache layout: models--org--name/{blobs,snapshots/<rev>,refs/main}."""
    rev = "a" * 40
    base = root / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / rev
    snap.mkdir(parents=True)
    hub_layout_file(hf, snap / "model.safetensors")
    (snap / "config.json").write_text(json.dumps(hf.config.to_dict()))
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(rev)
    return snap


def test_from_transformers_matches_logits():
    hf = hf_model()
    ours = pretrained.from_transformers(hf)
    assert ours.lm_head.weight is ours.wte.weight
    assert_same_logits(ours, hf, TINY["vocab_size"])


def test_save_pretrained_folder_loads_exactly(tmp_path):
    hf = hf_model(seed=2)
    hf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path)
    assert not ours.training
    assert_same_logits(ours, hf, TINY["vocab_size"])


def test_hub_layout_file_loads_exactly(tmp_path):
    hf = hf_model(seed=3)
    path = hub_layout_file(hf, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf.config.to_dict()))
    assert_same_logits(load_pretrained(path), hf, TINY["vocab_size"])


def test_hub_layout_without_config_needs_one_for_unpublished_sizes(tmp_path):
    path = hub_layout_file(hf_model(seed=4), tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match="put the model's config.json next to"):
        load_pretrained(path)


def test_load_in_half_precision_is_close(tmp_path):
    hf = hf_model(seed=5)
    hf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path, dtype=torch.bfloat16)
    assert ours.wte.weight.dtype == torch.bfloat16
    assert torch.equal(ours.wte.weight, hf.transformer.wte.weight.to(torch.bfloat16))


def test_standin_checkpoint_reads_in_transformers(tmp_path):
    path = pretrained.write_standin_checkpoint(tmp_path / "standin", n_layer=1, n_head=2, n_embd=16)
    ours = load_pretrained(path)
    assert ours.is_standin
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = transformers.GPT2LMHeadModel.from_pretrained(path).eval()
    assert_same_logits(ours, hf, 50257, T=8)


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def learner_converter(sd: dict, bug: str | None = None) -> dict:
    """A learner's convert_hf_state_dict, right or with one of the usual bugs."""
    out = {}
    for key, t in sd.items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if bug == "drop_biases" and name.endswith(".bias"):
            continue  # every bias, the LayerNorms' too: load_state_dict(strict=False) is quiet
        if bug == "swap_ln":
            name = name.replace("ln_1", "#").replace("ln_2", "ln_1").replace("#", "ln_2")
        square = bug == "square_untransposed" and name.endswith("attn.c_proj.weight")
        out[name] = t.t() if name.endswith(CONV1D) and not square else t
    return out


@pytest.fixture(scope="module")
def course_standin(tmp_path_factory):
    """The stand-in at the course's size, as part 7 loads it, and transformers' view of it."""
    path = pretrained.write_standin_checkpoint(tmp_path_factory.mktemp("standin"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = transformers.GPT2LMHeadModel.from_pretrained(path).eval()
    st = pretrained.SafetensorsFile(path / "model.safetensors")
    return path, hf, {k: st.read(k) for k in st.keys_in_file_order()}


def _part7_difference(model, hf) -> tuple[float, float]:
    """Part 7's comparison: the largest logit difference, and the limit it must stay under."""
    ids = torch.randint(0, 50257, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = hf(ids).logits
        diff = (model.eval()(ids) - expected).abs().max().item()
    return diff, 1e-4 * max(1.0, expected.abs().max().item())


@pytest.mark.parametrize("bug", [None, "drop_biases", "swap_ln", "square_untransposed"])
def test_the_standin_catches_a_broken_converter(course_standin, bug):
    path, hf, sd = course_standin
    model = GPT(pretrained.config_from_hf(json.loads((path / "config.json").read_text())))
    model.load_state_dict(learner_converter(sd, bug), strict=False)
    diff, limit = _part7_difference(model, hf)
    assert (diff < limit) == (bug is None), (bug, diff, limit)


@pytest.mark.parametrize("bug", ["erf_gelu", "eps_1e-6"])
def test_the_standin_catches_a_model_with_another_gelu_or_eps(course_standin, bug):
    path, hf, _ = course_standin
    model = load_pretrained(path)
    for m in model.modules():
        if bug == "eps_1e-6" and isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-6
        if bug == "erf_gelu" and hasattr(m, "act"):
            m.act = torch.nn.GELU()  # the exact (erf) form
    diff, limit = _part7_difference(model, hf)
    assert diff > limit, (bug, diff, limit)


def test_the_standin_is_the_same_on_every_write_and_says_what_it_is(course_standin, tmp_path):
    path, _, _ = course_standin
    again = pretrained.write_standin_checkpoint(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()
    assert json.loads((again / "config.json").read_text())["gpt2course_standin"]


def test_convert_state_dict_transposes_conv1d():
    hf = hf_model()
    sd = pretrained.convert_state_dict(hf.state_dict())
    w = hf.transformer.h[0].attn.c_proj.weight  # square: only the values tell
    assert torch.equal(sd["h.0.attn.c_proj.weight"], w.t())
    assert torch.equal(sd["h.0.attn.c_attn.bias"], hf.transformer.h[0].attn.c_attn.bias)
    assert "lm_head.weight" not in sd


# ---------------------------------------------------------------- bad checkpoints


def _write(sd, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_missing_tensor_is_named(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    sd = {
        k: v
        for k, v in hf.state_dict().items()
        if k != "transformer.h.1.mlp.c_fc.bias" and k != "lm_head.weight"
    }
    _write(sd, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing 1 tensor.*h\.1\.mlp\.c_fc\.bias"):
        load_pretrained(tmp_path)


def test_extra_tensor_is_named(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    sd = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    sd["transformer.h.0.attn.rotary.weight"] = torch.zeros(3)
    _write(sd, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected.*h\.0\.attn\.rotary\.weight"):
        load_pretrained(tmp_path)


def test_misshapen_tensor_is_named(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    sd = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"].t()
    _write(sd, tmp_path / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"h\.0\.mlp\.c_fc\.weight: shape \(128, 32\).*transposed"
    ):
        load_pretrained(tmp_path)


def test_config_that_does_not_fit_the_weights(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_layer"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"missing 12 tensor.*h\.2\."):
        load_pretrained(tmp_path)


def test_unsupported_variant_is_refused(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["activation_function"] = "relu"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="activation_function='relu'"):
        load_pretrained(tmp_path)


def test_truncated_file(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00" * 4,
        b"garbage that is not safetensors at all",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}!!!!!",
    ],
)
def test_corrupt_file(tmp_path, content):
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="not a valid .safetensors"):
        load_pretrained(tmp_path)


def test_pickle_is_never_loaded(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="pickle"):
        load_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_pretrained(tmp_path / "pytorch_model.bin")


def test_unknown_name_lists_the_names():
    with pytest.raises(CheckpointError, match=re.escape("gpt2, gpt2-medium, gpt2-large, gpt2-xl")):
        load_pretrained("gpt3")


# ---------------------------------------------------------------- hub cache, offline


def test_offline_load_by_name_from_hub_cache(offline_cache):
    hf = hf_model(seed=6)
    fake_hub_cache(offline_cache, hf)
    ours = load_pretrained("gpt2")
    assert ours.source == "gpt2"
    assert_same_logits(ours, hf, TINY["vocab_size"])


def test_offline_not_cached_says_how_to_get_weights(offline_cache):
    with pytest.raises(
        CheckpointError, match=r"not in the local hub cache and HF_HUB_OFFLINE.*assets seed"
    ):
        load_pretrained("gpt2-medium")


def test_corrupt_cached_download_is_removed(offline_cache):
    snap = fake_hub_cache(offline_cache, hf_model())
    f = snap / "model.safetensors"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated.*removed from the hub cache"):
        load_pretrained("gpt2")
    assert not f.exists()


def test_bundle_then_seed_roundtrip(offline_cache, tmp_path, monkeypatch):
    # A tiny model stands in for gpt2 here, so the check against the published hash is off.
    monkeypatch.setattr(offline, "PUBLISHED_WEIGHTS_SHA256", {})
    hf = hf_model(seed=7)
    fake_hub_cache(offline_cache, hf)
    written = offline.bundle_models(["gpt2"], tmp_path / "bundle")
    assert (tmp_path / "bundle" / "gpt2" / "manifest.json") in written
    fresh = tmp_path / "fresh-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(fresh))
    assert offline.seed_models(tmp_path / "bundle") == ["gpt2"]
    assert_same_logits(load_pretrained("gpt2"), hf, TINY["vocab_size"])


def test_seed_refuses_a_corrupt_bundle_and_writes_nothing(offline_cache, tmp_path, monkeypatch):
    fake_hub_cache(offline_cache, hf_model())
    offline.bundle_models(["gpt2"], tmp_path / "bundle")
    f = tmp_path / "bundle" / "gpt2" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    fresh = tmp_path / "fresh-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(fresh))
    with pytest.raises(CheckpointError, match="model.safetensors missing or corrupt"):
        offline.seed_models(tmp_path / "bundle")
    assert not fresh.exists()


# ---------------------------------------------------------------- the real size


@pytest.mark.slow
def test_real_gpt2_shape_loads_exactly(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)  # gpt2's shape
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = load_pretrained(tmp_path)
    assert ours.num_params() == 124_439_808
    assert_same_logits(ours, hf, 50257, T=32)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return pretrained.write_standin_checkpoint(
        tmp_path_factory.mktemp("standin"), n_layer=1, n_head=2, n_embd=16
    )


# ---------------------------------------------------------------- the notebook's check

CONV = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _learner(
    *,
    prefix=True,
    buffers=True,
    transpose=CONV,
    skip=(".attn.bias", ".attn.masked_bias"),
    all_2d=False,
):
    """A convert_hf_state_dict with one of the usual mistakes switched on."""

    def convert(sd):
        out = {}
        for key, t in sd.items():
            name = key.removeprefix("transformer.") if prefix else key
            if name == "lm_head.weight" or (buffers and name.endswith(skip)):
                continue
            if name.endswith(transpose) or (all_2d and t.dim() == 2):
                t = t.t()
            out[name] = t
        return out

    return convert


@pytest.mark.parametrize(
    "learner, message",
    [
        (_learner(), "✓ convert_hf_state_dict"),
        (_learner(transpose=()), "Conv1D layer, which stores its weight as (in, out)"),
        (
            _learner(transpose=("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")),
            "attn.c_proj.weight is square",
        ),
        (_learner(prefix=False), "strip that prefix"),
        (_learner(buffers=False), "buffers were kept"),
        (
            _learner(skip=("attn.bias", "attn.masked_bias")),
            "attn.c_attn.bias is missing: it is a real parameter",
        ),
        (_learner(all_2d=True), "wte.weight is not a Conv1D weight"),
    ],
)
def test_convert_check_names_the_bug(learner, message, capsys, monkeypatch):
    from gpt2course.checks import check_convert_hf_state_dict

    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)
    result = check_convert_hf_state_dict(learner)
    out = capsys.readouterr().out
    assert message in out, out
    assert (result is learner) == message.startswith("✓")


def test_convert_check_not_done_falls_back(capsys):
    from gpt2course.checks import check_convert_hf_state_dict

    def stub(sd):
        raise NotImplementedError

    assert check_convert_hf_state_dict(stub) is pretrained.convert_state_dict
    assert "not done yet" in capsys.readouterr().out


# ---------------------------------------------------------------- the notebook's model


def test_course_checkpoint_uses_the_env_var(standin, monkeypatch, capsys):
    monkeypatch.setenv("GPT2COURSE_MODEL", str(standin))
    weights, is_standin = pretrained.course_checkpoint()
    assert weights == standin / "model.safetensors" and is_standin
    assert "STAND-IN MODEL" in capsys.readouterr().out


def test_course_checkpoint_falls_back_to_a_standin_and_says_why(
    offline_cache, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("GPT2COURSE_CACHE", str(tmp_path / "course"))
    monkeypatch.delenv("GPT2COURSE_MODEL", raising=False)
    weights, is_standin = pretrained.course_checkpoint()
    out = capsys.readouterr().out
    assert is_standin and "Could not get 'gpt2'" in out and "STAND-IN MODEL" in out
    assert load_pretrained(weights).config.vocab_size == 50257


def test_iter_checkpoint_lists_without_loading(tmp_path):
    hf = hf_model()
    hub_layout_file(hf, tmp_path / "model.safetensors")
    entries = list(pretrained.iter_checkpoint(tmp_path / "model.safetensors"))
    assert ("h.0.attn.c_attn.weight", (32, 96), "float32") in entries
    assert ("h.1.attn.bias", (1, 1, 64, 64), "float32") in entries
