"""Pretraining: loss, schedule, optimizer, checkpoints and resume, against torch's own pieces."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from gpt2course import train as T
from gpt2course.callbacks import Callback
from gpt2course.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gpt2course.data import RandomBatches, batches_from, make_windows, num_windows, split_tokens
from gpt2course.generation import sample_text
from gpt2course.model import GPT, GPTConfig, lm_loss
from gpt2course.tokenizer.named import get_tokenizer
from gpt2course.workshop import train as train_verb


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and do not fight other jobs for the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(vocab_size=64, context_length=16, n_embd=16, n_layer=2, n_head=2)


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**TINY))


def tiny_data(seed: int = 0, batch_size: int = 4):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(TINY["vocab_size"], (3000,), generator=g)
    tr, va = split_tokens(ids, 0.2)
    return RandomBatches(tr, batch_size, 16, seed=seed), RandomBatches(
        va, batch_size, 16, seed=seed + 1
    )


def tiny_config(**kw) -> T.TrainConfig:
    base = dict(
        max_steps=8,
        warmup_steps=2,
        learning_rate=3e-3,
        min_lr=3e-4,
        eval_interval=4,
        eval_batches=2,
        progress=False,
        device="cpu",
    )
    return T.TrainConfig(**{**base, **kw})


# --- the loss ---------------------------------------------------------------------------


def test_lm_loss_is_mean_negative_log_likelihood():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=g, dtype=torch.float64)
    targets = torch.randint(50, (3, 7), generator=g)
    # -log softmax(logits)[target], averaged, written out by hand
    logp = logits - logits.exp().sum(-1, keepdim=True).log()
    want = -logp.gather(-1, targets[..., None]).mean()
    assert torch.allclose(lm_loss(logits, targets).double(), want, atol=1e-6)


def test_untrained_gpt2_sized_vocab_loss_is_ln_vocab():
    # With small random weights every token is about equally likely: loss ~ ln(V).
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50257, context_length=32, n_embd=32, n_layer=1, n_head=2))
    x = torch.randint(50257, (2, 32))
    loss = lm_loss(model(x), torch.roll(x, -1, 1))
    assert abs(loss.item() - math.log(50257)) < 0.05


# --- the schedule, against torch's LinearLR + CosineAnnealingLR -----------------------


@pytest.mark.parametrize("warmup,max_steps", [(10, 50), (1, 7), (100, 2000)])
def test_lr_schedule_matches_torch_schedulers(warmup, max_steps):
    max_lr, min_lr = 6e-4, 6e-5
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=max_lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheds = [
            torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=max(warmup - 1, 1)),
            torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max_steps - warmup, eta_min=min_lr
            ),
        ]
        sched = torch.optim.lr_scheduler.SequentialLR(opt, scheds, milestones=[warmup])
        for step in range(max_steps):
            ours = T.lr_schedule(
                step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, max_steps=max_steps
            )
            assert ours == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15), step
            opt.step()
            sched.step()
    for step in (max_steps, max_steps + 5):
        assert (
            T.lr_schedule(
                step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, max_steps=max_steps
            )
            == min_lr
        )


def test_weight_decay_only_on_matrices():
    model = tiny_model()
    opt = T.configure_optimizer(model, 1e-3, weight_decay=0.1)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() >= 2), name
    # the tied wte / lm_head weight is one parameter, optimized once
    n = sum(len(g["params"]) for g in opt.param_groups)
    assert n == len(list(model.parameters()))


def test_train_step_accumulation_equals_one_big_batch():
    """Two micro-batches of 2 give the gradient of one batch of 4 (same loss, same update)."""
    x = torch.randint(64, (4, 16))
    y = torch.randint(64, (4, 16))
    a, b = tiny_model(1), tiny_model(1)
    oa, ob = torch.optim.SGD(a.parameters(), lr=0), torch.optim.SGD(b.parameters(), lr=0)
    la = T.train_step(a, oa, [(x[:2], y[:2]), (x[2:], y[2:])], lr=0.1, grad_clip=0)
    lb = T.train_step(b, ob, [(x, y)], lr=0.1, grad_clip=0)
    assert la == pytest.approx(lb, rel=1e-5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_train_step_clips_to_grad_clip():
    model, x, y = tiny_model(), torch.randint(64, (2, 16)), torch.randint(64, (2, 16))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    T.train_step(model, opt, [(x, y)], lr=0.0, grad_clip=1e-3)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-4)


# --- data -------------------------------------------------------------------------------


def test_random_batches_targets_are_shifted_and_shards_are_disjoint():
    ids = torch.arange(1000)
    one = RandomBatches(ids, 3, 8, seed=5)
    x, y = one.batch(0)
    assert x.shape == y.shape == (3, 8) and torch.equal(y, x + 1)
    ranks = [RandomBatches(ids, 3, 8, seed=5, rank=r, world_size=2) for r in (0, 1)]
    # rank r's batch n is global batch 2n + r: together exactly the single-process stream
    for n in range(3):
        for r in (0, 1):
            assert torch.equal(ranks[r].batch(n)[0], one.batch(2 * n + r)[0])
    with pytest.raises(ValueError, match="context_length"):
        RandomBatches(torch.arange(5), 1, 8)


def test_random_batches_draw_every_window():
    """Every start make_windows(stride=1) cuts is drawn, and exactly T + 1 ids make one window."""
    n, T = 100, 7
    windows = make_windows(torch.arange(n), T, 1)[0][:, 0]  # the reference's window starts
    b = RandomBatches(torch.arange(n), 64, T, seed=0)
    starts = torch.cat([b.batch(k)[0][:, 0] for k in range(200)])  # 12,800 draws of 93
    assert set(starts.tolist()) == set(windows.tolist())
    assert len(windows) == num_windows(n, T, 1) == 93
    x, y = RandomBatches(torch.arange(T + 1), 2, T).batch(0)  # the one window there is
    assert torch.equal(x[0], torch.arange(T)) and torch.equal(y[0], torch.arange(1, T + 1))
    with pytest.raises(ValueError, match=r"only 7 tokens: a window needs context_length \+ 1 = 8"):
        RandomBatches(torch.arange(T), 1, T)


def test_tokenizers_round_trip():
    text = "ROMEO:\nBut soft, what light?\n"
    for name in ("bytes", "gpt2"):
        tok = get_tokenizer(name)
        assert tok.decode(tok.encode(text)) == text
    assert get_tokenizer("gpt2").encode(text) == __import__(
        "gpt2course.assets"
    ).assets.tiktoken_gpt2().encode(text)
    with pytest.raises(ValueError, match="bytes"):
        get_tokenizer("chars")


# --- the loop, checkpoints and resume --------------------------------------------------


def test_train_learns_and_reports_perplexity():
    train_b, val_b = tiny_data()
    # a learnable stream: the next token is the current one plus one
    seq = torch.arange(4000) % 64
    train_b, val_b = RandomBatches(seq, 4, 16, seed=0), RandomBatches(seq, 4, 16, seed=1)
    model = tiny_model()
    hist = T.train(
        model, train_b, val_b, tiny_config(max_steps=40, eval_interval=20, learning_rate=1e-2)
    )
    assert hist.step == list(range(1, 41)) and hist.val_step == [20, 40]
    assert hist.val_loss[-1] < math.log(64) - 1.0  # well below guessing uniformly
    assert hist.val_perplexity[-1] == pytest.approx(math.exp(hist.val_loss[-1]))
    assert hist.lr[0] == pytest.approx(1e-2 / 2)


class Crash(Callback):
    """Stops a run as a Ctrl-C or a lost Colab session would."""

    def __init__(self, at: int):
        self.at = at

    def on_step(self, state):
        if state.step == self.at:
            raise KeyboardInterrupt


def test_resume_gives_the_same_losses_as_not_stopping(tmp_path):
    cfg = tiny_config(max_steps=8, grad_accum_steps=2)
    full = T.train(tiny_model(), *tiny_data(), cfg)

    cfg2 = tiny_config(
        max_steps=8, grad_accum_steps=2, checkpoint_dir=str(tmp_path / "ck"), checkpoint_interval=2
    )
    with pytest.raises(KeyboardInterrupt):
        T.train(tiny_model(), *tiny_data(), cfg2, callbacks=[Crash(at=5)])
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 4 and ck.data_position == 8
    resumed = T.train(tiny_model(seed=99), *tiny_data(), cfg2, resume=ck)
    assert resumed.step == full.step
    # Same ops in the same order on the CPU: bit for bit.
    assert resumed.train_loss == full.train_loss
    assert resumed.val_loss == full.val_loss


def test_checkpoint_round_trip_is_safetensors_and_json_only(tmp_path):
    model = tiny_model()
    train_b, val_b = tiny_data()
    T.train(
        model,
        train_b,
        val_b,
        tiny_config(max_steps=3, checkpoint_dir=str(tmp_path / "c")),
        extra={"tokenizer": "bytes"},
    )
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert files == ["checkpoint.json", "config.json", "model.safetensors", "optimizer.safetensors"]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "c" / "optimizer.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step", "rng.cpu"} <= keys
    ck = load_checkpoint(tmp_path / "c")
    assert ck.extra["tokenizer"] == "bytes"
    assert ck.model.lm_head.weight.data_ptr() == ck.model.wte.weight.data_ptr()  # still tied
    for (n, a), (_, b) in zip(
        model.state_dict().items(), ck.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n
    x = torch.randint(64, (2, 16))
    assert torch.equal(model.eval()(x), ck.model.eval()(x))
    opt = T.configure_optimizer(ck.model, 1e-3)
    opt.load_state_dict(ck.optimizer_state)  # torch accepts it as its own state_dict


def test_damaged_checkpoints_give_clear_errors(tmp_path):
    path = save_checkpoint(tmp_path / "c", tiny_model(), optimizer=None, step=3)
    assert load_checkpoint(path).step == 3
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(path)
    # Without the hashes, the safetensors reader still sees the cut (its header's sizes).
    with pytest.raises(CheckpointError, match="model.safetensors is truncated"):
        load_checkpoint(path, verify=False)
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(path)
    (path / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_bad_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="max_steps"):
        T.train(tiny_model(), *tiny_data(), tiny_config(max_steps=0))
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        T.TrainConfig.from_dict({"max_step": 3})
    with pytest.raises(ValueError, match="min_lr"):
        tiny_config(min_lr=1.0).validate()


# --- the command line -------------------------------------------------------------------


def test_cli_trains_and_writes_a_checkpoint(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "preset": "shakespeare-bytes",
                "model": dict(n_layer=1, n_embd=16, n_head=2, context_length=16),
                "data": dict(batch_size=2, context_length=16),
                "train": dict(
                    max_steps=3, eval_interval=3, eval_batches=1, warmup_steps=1, progress=False
                ),
            }
        )
    )
    rc = train_verb.main(["--config", str(cfg), "--out", str(tmp_path / "out"), "train.seed=7"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["val_loss"] < math.log(256) + 0.5
    ck = load_checkpoint(tmp_path / "out")
    assert ck.extra["tokenizer"] == "bytes" and ck.train_config["seed"] == 7
    # carry on to step 5 from the checkpoint
    rc = train_verb.main(
        [
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "out"),
            "--resume",
            str(tmp_path / "out"),
            "train.seed=7",
            "train.max_steps=5",
        ]
    )
    assert rc == 0 and load_checkpoint(tmp_path / "out").step == 5


def test_cli_rejects_bad_input(capsys):
    assert train_verb.main(["train.max_steps"]) == 2
    assert "train.max_steps=100" in capsys.readouterr().err
    assert train_verb.main(["--preset", "nope"]) == 2
    assert "shakespeare-bytes" in capsys.readouterr().err
    assert train_verb.main(["data.context_length=512", "train.max_steps=1"]) == 1
    assert "context_length" in capsys.readouterr().err


def test_sample_is_seeded_and_decodes():
    model, tok = tiny_model(), get_tokenizer("bytes")
    model = GPT(GPTConfig(**{**TINY, "vocab_size": 256}))
    a = sample_text(model, tok, "KING:", max_new_tokens=10, seed=3)
    assert a == sample_text(model, tok, "KING:", max_new_tokens=10, seed=3)
    assert isinstance(a, str)


# The notebook's checks are tried in tests/checks/test_training.py.


def test_train_rejects_ids_beyond_the_vocabulary():
    ids = torch.randint(100, (500,))  # ids up to 99, model vocabulary 64
    with pytest.raises(ValueError, match="vocab_size is 64"):
        T.train(tiny_model(), RandomBatches(ids, 2, 16), None, tiny_config(max_steps=1))


def test_bench_train_runs(capsys):
    from gpt2course.workshop.bench import train as bench

    assert (
        bench.main(["--rounds", "1", "--steps", "1", "--batch-size", "2", "--context-length", "16"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out["tokens_per_s"]) == {"ours", "plain nanoGPT-style"}


def test_any_iterable_of_batches_works_and_is_replayed():
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randint(64, (2, 16), generator=g), torch.randint(64, (2, 16), generator=g))
        for _ in range(3)
    ]
    hist = T.train(tiny_model(), batches, batches, tiny_config(max_steps=5, eval_interval=5))
    assert hist.step == [1, 2, 3, 4, 5]  # 3 batches, replayed for steps 4 and 5
    assert torch.equal(
        next(batches_from(batches, 4))[0], batches[1][0]
    )  # resume at batch 4 = 1 of epoch 2


def test_cli_trains_from_uint16_token_files(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("train.bin", "val.bin"):
        rng.integers(0, 256, 2000, dtype=np.uint16).tofile(tmp_path / name)
    args = [
        f"data.train_bin={tmp_path / 'train.bin'}",
        f"data.val_bin={tmp_path / 'val.bin'}",
        "model.n_layer=1",
        "model.n_embd=16",
        "model.n_head=2",
        "model.context_length=16",
        "data.batch_size=2",
        "data.context_length=16",
        "train.max_steps=2",
        "train.eval_batches=1",
        "train.warmup_steps=1",
        "train.progress=false",
    ]
    assert train_verb.main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2


def test_saving_never_replaces_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        save_checkpoint(tmp_path, tiny_model())
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    save_checkpoint(tmp_path / "c", tiny_model(), step=1)
    save_checkpoint(tmp_path / "c", tiny_model(), step=2)  # replacing a checkpoint is fine
    assert load_checkpoint(tmp_path / "c").step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "notes.txt"]  # no leftovers


@pytest.mark.parametrize(("setting", "bar"), [("0", False), ("1", True), ("", True)])
def test_the_progress_bar_is_off_only_where_outputs_are_kept(monkeypatch, capsys, setting, bar):
    # The notebook builder and nbval set GPT2COURSE_PROGRESS=0; a learner sees the bar.
    monkeypatch.setenv("GPT2COURSE_PROGRESS", setting)
    train_b, val_b = tiny_data()
    T.train(tiny_model(), train_b, val_b, tiny_config(max_steps=2, progress=True))
    err = capsys.readouterr().err
    assert ("it/s" in err or "s/it" in err) == bar, err
