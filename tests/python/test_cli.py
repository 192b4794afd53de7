"""The fraudcore command line."""

import subprocess
import sys

from fraudcore.cli import main


def test_demo_prints_metrics_for_both_tools(capsys):
    assert main(["demo", "--n-samples", "5000", "--repeats", "1", "--n-features", "6"]) == 0
    out = capsys.readouterr().out
    assert "ROC-AUC" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if len(line.split()) == 6 and line.split()[0] in ("fraudcore", "scikit-learn")}
    assert float(rows["fraudcore"][4]) > 0.9
    assert abs(float(rows["fraudcore"][4]) - float(rows["scikit-learn"][4])) < 0.05
    assert "faster" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bad_argument_is_one_line_on_stderr():
    proc = subprocess.run([sys.executable, "-m", "fraudcore", "demo", "--n-samples", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fraudcore demo: error:")


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "fraudcore", "demo", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "IsolationForest" in proc.stdout
