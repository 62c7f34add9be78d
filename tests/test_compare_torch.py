"""bench/compare_torch.py without running a network: torch missing, and the table and ratio
line from given child results, PyTorch's better malloc setting per row (the children
themselves are the benchmark)."""

import importlib.util
import sys

import pytest

from bench import compare_torch


def test_without_torch_it_says_how_to_install_and_fails(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find_spec(name, *a))
    monkeypatch.setattr(sys, "argv", ["compare_torch.py", "--quick"])
    assert compare_torch.main() == 2
    err = capsys.readouterr().err
    assert "pip install torch==2.13.0" in err and "pip install darts-paddle[torch]" in err


def search_result(batch, scale):
    return {"batch": batch, "first_done_s": 20.0 * scale, "pass_s": 2.0 * scale,
            "step1_s": 4.0 * scale, "step2_s": 10.0 * scale, "rss_gb": 3.0, "madds": 300e6,
            "pass_all": [2.0 * scale], "step1_all": [4.0 * scale, 4.1 * scale],
            "step2_all": [10.0 * scale],
            "env": {"OMP_NUM_THREADS": "1"}}


@pytest.mark.torch
def test_table_and_ratio_line(monkeypatch, capsys):
    pytest.importorskip("torch")  # the settings line reads torch's version
    monkeypatch.setattr(compare_torch.search_bench, "run_child",
                        lambda b, steps, method, space: search_result(b, 1.5))
    monkeypatch.setattr(compare_torch.eval_bench, "run_child",
                        lambda *a: {"batch": 96, "step_s": 8.0, "infer_img_s": 40.0,
                                    "madds_M": 500.0, "rss_MB": 2048})

    def torch_child(kind, args, malloc, batch=0):
        # glibc's defaults win PyTorch's search rows, our settings its eval rows
        slower = 1.0 if (malloc == "glibc") == (kind == "search") else 1.25
        if kind == "search":
            return search_result(batch, slower)
        return {"batch": 96, "step_s": 10.0 * slower, "infer_img_s": 50.0 / slower,
                "madds": 500e6, "rss_gb": 1.0}

    monkeypatch.setattr(compare_torch, "run_torch_child", torch_child)
    monkeypatch.setattr(sys, "argv", ["compare_torch.py", "--batches", "16", "64"])
    assert compare_torch.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == ("ratio ours/pytorch: search-1st 1.50 (glibc), search-2nd 1.50 (glibc), "
                       "eval-train 0.80 (tuned)")
    # 300M multiply-adds x 3 (forward + backward) x 64 samples x 5 passes x 2 flops / 10 s;
    # then the tuned and glibc figures and the setting that won
    row = next(line for line in out if line.startswith("search b64 2nd-order step GFLOP/s"))
    assert row.split()[-6:] == ["38.40", "57.60", "0.67", "46.08", "57.60", "glibc"]
    row = next(line for line in out if line.startswith("eval b96 inference img/s"))
    assert row.split()[-3:] == ["50.00", "40.00", "tuned"]
    assert any(line.startswith("eval b96 peak RSS GB") and line.split()[-4] == "2.00"
               for line in out)
    assert ("search b16 1st-order step s: ours 6.00 6.15 | pytorch tuned 5.00 5.12 "
            "| pytorch glibc 4.00 4.10") in out
    assert any("stolen by the hypervisor over the run" in line for line in out)


def test_one_forced_malloc_setting_prints_no_choice(monkeypatch, capsys):
    monkeypatch.setattr(compare_torch.search_bench, "run_child",
                        lambda b, steps, method, space: search_result(b, 1.0))
    runs = []

    def torch_child(kind, args, malloc, batch=0):
        runs.append(malloc)
        return search_result(batch, 2.0)

    monkeypatch.setattr(compare_torch, "run_torch_child", torch_child)
    monkeypatch.setattr(compare_torch, "settings", lambda args, env: "settings")
    monkeypatch.setattr(sys, "argv", ["compare_torch.py", "--space", "nb201", "--batches", "16",
                                      "--torch_malloc", "tuned"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert compare_torch.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert runs == ["tuned"]  # and no eval rows in NAS-Bench-201's comparison
    assert out[-1] == "ratio ours/pytorch: search-1st 0.50, search-2nd 0.50"
    row = next(line for line in out if line.startswith("search b16 peak RSS GB"))
    assert row.split()[-3:] == ["3.00", "3.00", "1.00"]


def test_steal_share_from_proc_stat(monkeypatch, tmp_path):
    """/proc/stat's first line: user nice system idle iowait irq softirq steal guest ..."""
    import builtins

    stat = tmp_path / "stat"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(
        stat if path == "/proc/stat" else path, *a, **k))
    stat.write_text("cpu  100 0 50 800 0 0 0 50 7 0\ncpu0 1 2 3\n")
    before = compare_torch.search_bench.cpu_times()
    assert before == (50, 1000)  # guest time is already counted in user
    stat.write_text("cpu  250 0 100 900 0 0 0 150 9 0\n")
    after = compare_torch.search_bench.cpu_times()
    assert compare_torch.search_bench.steal_percent(before, after) == pytest.approx(25.0)
    stat.write_text("")
    assert compare_torch.search_bench.cpu_times() is None
