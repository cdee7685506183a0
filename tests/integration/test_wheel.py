"""The wheel as users install it: built, installed in a fresh venv outside the checkout, its worker decides."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from deploy.config import PROJECT_ROOT, Settings
from deploy.workers import WorkerProcess
from tests.integration.scenario import refund_scam_tiers


def _install_wheel(tmp: Path) -> Path:
    """Build the wheel and install it alone in a new venv; its dependencies come from this venv's site-packages
    (a path entry, so the checkout's editable install is not loaded). Returns the venv's bin folder."""
    # from a copy of the project's files alone: setuptools would reuse a stale build/ in the checkout
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=PROJECT_ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    source, dist = tmp / "source", tmp / "dist"
    for name in filter(None, files):
        if (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(dist)],
                   check=True, cwd=tmp)
    wheel = next(dist.glob("yujing-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    bin_dir = tmp / "venv" / "bin"
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True)
    site = subprocess.run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "yujing-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return bin_dir


def test_the_installed_wheel_starts_a_worker_that_decides(isolated: Settings, tmp_path: Path) -> None:
    bin_dir = _install_wheel(tmp_path)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    where = subprocess.run([bin_dir / "python", "-c", "import scorers.tiers as t; print(t.__file__)"],
                           check=True, capture_output=True, text=True, cwd=run_dir).stdout.strip()
    assert where.startswith(str(tmp_path / "venv")), where  # the wheel's code, not the checkout's
    (isolated.model_path / "tiers.json").unlink()  # a model without tuned thresholds: the packaged default policy
    worker = WorkerProcess(isolated, tmp_path / "worker.log", command=[str(bin_dir / "yujing")], cwd=run_dir)
    assert refund_scam_tiers(isolated, worker)[-1:] == ["T1"], worker.log_tail()
