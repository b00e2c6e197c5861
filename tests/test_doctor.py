"""`doctor` on a healthy and on a broken environment."""

import os
import subprocess
import sys

from gpt2course import doctor


def _run(env_extra, *args):
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "gpt2course", "doctor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_healthy(tmp_path, offline_assets_dir):
    env = {"GPT2COURSE_CACHE": str(tmp_path / "c"), "TIKTOKEN_CACHE_DIR": str(tmp_path / "t")}
    seeded = subprocess.run(
        [sys.executable, "-m", "gpt2course", "assets", "seed", "--from", str(offline_assets_dir)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    r = _run(env)
    assert r.returncode == 0, r.stdout
    assert "all good" in r.stdout and "BAD" not in r.stdout
    assert "tiktoken gpt2 offline" in r.stdout


def test_missing_and_corrupt_assets_each_get_a_fix_line(tmp_path, offline_assets_dir):
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "vocab.bpe").write_bytes(b"damaged")
    r = _run({"GPT2COURSE_CACHE": str(cache), "TIKTOKEN_CACHE_DIR": str(tmp_path / "t")})
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    bad = [i for i, line in enumerate(lines) if line.startswith("BAD")]
    assert len(bad) == 4  # three missing, one corrupt
    for i in bad:
        assert lines[i + 1].strip().startswith("fix:")
    assert any("corrupt" in line for line in lines)
    assert "4 problem(s)" in lines[-1]


def test_broken_packages_are_reported(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(
        doctor, "_version", lambda m: None if m in ("ipywidgets", "tiktoken") else real(m)
    )
    findings = {f.what: f for f in doctor.diagnose()}
    assert not findings["ipywidgets"].ok and "ipywidgets>=7.7,<9" in findings["ipywidgets"].fix
    assert not findings["tiktoken"].ok
    report = doctor.report(list(findings.values()))
    assert "fix: pip install tiktoken" in report


def test_old_ipywidgets_is_flagged(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda m: "7.6.5" if m == "ipywidgets" else real(m))
    f = {f.what: f for f in doctor.diagnose()}["ipywidgets"]
    assert not f.ok


def test_reports_the_workbench_and_the_pieces_that_are_yours(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_WORKBENCH", str(tmp_path / "wb"))
    line = doctor.report([doctor._workbench()])
    assert str(tmp_path / "wb") in line and "none of yours yet" in line
    (tmp_path / "wb").mkdir()
    (tmp_path / "wb" / "Block.py").write_text("class Block: ...\n")
    (tmp_path / "wb" / "gelu.py").write_text("def gelu(x): ...\n")
    line = doctor.report([doctor._workbench()])
    assert "yours 2 of" in line and "gelu, Block" in line and "BAD" not in line
