"""Progress bars reach the terminal, never a page (issue 27): a chapter's kernel and the engine's
worker processes it spawns have their stderr captured into the notebook by ipykernel, so a bar
drawn to stderr there becomes a block of output on the page. This runs the path the published
build takes: a real kernel (papermill) that captures its file descriptors as outside pytest,
training spread over 2 worker processes (map_tasks). On the code before the fix, the first test
fails with 'train (1 runs)' bars in the notebook's stderr."""

import fcntl
import os
import pty
import struct
import termios
import threading

import nbformat
import papermill

from bnpaper import progress

CELL = """
from dataclasses import replace
from bnpaper import engine
from bnpaper.train import TrainConfig
base = TrainConfig(model="mlp", hidden=[8], steps=40, eval_every=20, final_train_acc=False, read_test=False)
# two groups (with and without BN) -> two tasks -> two worker processes
runs = engine.train_many([replace(base, seed=0), replace(base, seed=1, bn=False)])
print("trained", len(runs))
"""


def _run(tmp_path, setting: str):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env = {"BNPAPER_PROGRESS": setting, "BNPAPER_WORKERS": "2", "BNPAPER_CACHE": str(tmp_path / "cache")}
    old = {k: os.environ.get(k) for k in [*env, "PYTEST_CURRENT_TEST"]}
    os.environ.update(env)
    # ipykernel does not capture file descriptors 1 and 2 when it sees pytest's variable: without
    # this, a test kernel hides exactly the leak a real build's kernel shows
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    outputs = [o for c in nbformat.read(out, 4).cells for o in c.get("outputs", [])]
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    return stdout, stderr


def test_bars_from_workers_in_a_kernel_stay_out_of_the_page(tmp_path):
    """BNPAPER_PROGRESS=1 is what the pipeline set before this fix: the workers drew to their
    stderr, which the kernel had captured: 'train (1 runs)' bars on the page."""
    stdout, stderr = _run(tmp_path, "1")
    assert "trained 2" in stdout
    assert stderr == "", f"progress (or other stderr) reached the page: {stderr[:300]!r}"


def test_bars_go_to_the_terminal_the_build_names(tmp_path):
    """With a terminal (here a pseudo-terminal), the kernel and both workers draw there, by path."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    received = bytearray()

    def drain():  # a full terminal buffer would block the writers
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, stderr = _run(tmp_path, os.ttyname(slave))
    finally:
        os.close(slave)
        reader.join(timeout=5)
        os.close(master)
    assert "trained 2" in stdout and stderr == ""
    assert b"(1 runs)" in received, f"no bar reached the terminal: {bytes(received[:200])!r}"


def test_destination_by_setting(tmp_path):
    assert progress.destination("0") is None
    path = tmp_path / "bars.txt"
    assert progress.destination(str(path)) is not None and path.exists()
    assert progress.destination(str(tmp_path / "no" / "such" / "dir")) is None  # gone: no bars, no crash
