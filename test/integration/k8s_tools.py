"""kustomize and kubernetes-validate (with PyYAML) for test_k8s.py and
test_packaging.py, installed by scripts/peers/k8s-tools.sh (idempotent: a fast
no-op once cached under ${WEIR_TEST_CACHE:-~/.cache/weir-test}/k8s-tools)."""
import os
import subprocess

from conftest import REPO

_kustomize = None


def ensure():
    """Install (first time) and return the kustomize path; kubernetes_validate and
    yaml are importable afterwards."""
    global _kustomize
    if _kustomize is None:
        p = subprocess.run([os.path.join(REPO, "scripts/peers/k8s-tools.sh")], capture_output=True,
                           text=True, timeout=1800)
        assert p.returncode == 0, f"scripts/peers/k8s-tools.sh failed:\n{p.stdout}\n{p.stderr}"
        _kustomize = p.stdout.strip().splitlines()[-1]
        assert os.access(_kustomize, os.X_OK), _kustomize
    return _kustomize
