"""current_pid: this process's id, kept current in a forked child without a system call per use."""
from __future__ import annotations

import os

from backworks.pids import current_pid


def test_current_pid_is_this_process():
    assert current_pid() == os.getpid()


def test_a_forked_child_sees_its_own_pid():
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports what current_pid() says, then leaves without running pytest's exit
        try:
            os.write(write_end, f"{current_pid()} {os.getpid()}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    reported = os.read(read_end, 100).decode().split()
    os.close(read_end)
    os.waitpid(child, 0)
    assert reported == [str(child), str(child)]
    assert current_pid() == os.getpid() != child
