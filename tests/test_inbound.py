"""Request ids made at the gateway: random, unique across batches and across a fork."""
from __future__ import annotations

import os
import re

from backworks import inbound


def test_new_request_ids_are_32_hex_digits_and_unique_across_batches():
    ids = [inbound.new_request_id() for _ in range(3 * inbound.ID_BATCH + 7)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_hands_out_none_of_its_parents_pending_ids():
    inbound.new_request_id()  # the batch now holds ids this process has not handed out yet
    pending = set(inbound._fresh_ids)
    assert pending
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next ids and leave without running pytest's exit handlers
        os.close(read_end)
        os.write(write_end, "".join(inbound.new_request_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child_ids = {text[at:at + 32] for at in range(0, len(text), 32)}
    assert len(child_ids) == 10
    assert not child_ids & pending


def test_a_sane_supplied_id_is_kept_and_an_insane_one_replaced():
    key = "HTTP_X_REQUEST_ID"
    assert inbound.request_id({key: "edge-1:ok"}, key) == "edge-1:ok"
    assert re.fullmatch(r"[0-9a-f]{32}", inbound.request_id({key: "two words"}, key))
    assert re.fullmatch(r"[0-9a-f]{32}", inbound.request_id({}, key))
