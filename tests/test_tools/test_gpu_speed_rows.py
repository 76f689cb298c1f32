# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/gpu_speed_rows.sh: the prepared GPU benchmark run."""
import subprocess


def test_unknown_row_is_refused_before_anything_runs(tools_dir, tmp_path):
    """A misspelt row stops the run at once, naming it and the valid rows,
    before the rows in front of it spend device time."""
    out = tmp_path / 'rows'
    proc = subprocess.run([
        'bash', f'{tools_dir}/analysis_tools/gpu_speed_rows.sh',
        str(out), 'mae512', 'mae2048'
    ],
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown row 'mae2048'" in proc.stderr
    assert 'mae512, mae1024, d2v2, profile or speech' in proc.stderr
    assert not out.exists()


def test_script_parses(tools_dir):
    proc = subprocess.run(
        ['bash', '-n', f'{tools_dir}/analysis_tools/gpu_speed_rows.sh'],
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr
