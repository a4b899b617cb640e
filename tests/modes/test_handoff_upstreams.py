"""The nginx upstream blocks of hand-off targets: which targets get one, their names, text and digest."""
from __future__ import annotations

import logging
import textwrap

from backworks.config.load import load_config
from backworks.modes.handoff_upstreams import NginxUpstreams, block_name, is_offer
from tests.helpers.basics import write_config

CONFIG = """
    upstreams:
      api: {targets: [{url: "http://127.0.0.1:9001/v1"}, {url: "http://[::1]:9002"}], pool_size: 8}
      again: {targets: [{url: "http://127.0.0.1:9001"}], pool_size: 12}
      named: {targets: [{url: "http://localhost:9003"}]}
      relayed: {targets: [{url: "http://10.0.0.5"}]}
    endpoints:
      a: {path: /a, mode: proxy, proxy: {upstream: api, nginx_handoff: true}}
      b: {path: /b, mode: proxy, proxy: {upstream: again, nginx_handoff: true}}
      c: {path: /c, mode: proxy, proxy: {upstream: named, nginx_handoff: true}}
      d: {path: /d, mode: proxy, proxy: {upstream: relayed}}
"""

EXPECTED_BLOCKS = """\
upstream backworks_v4_127_0_0_1_9001 {
    server 127.0.0.1:9001 max_fails=0;
    keepalive 12;
}
upstream backworks_v6___1_9002 {
    server [::1]:9002 max_fails=0;
    keepalive 8;
}
"""


def blocks_of(tmp_path, text: str = CONFIG) -> NginxUpstreams:
    return NginxUpstreams.of(load_config(write_config(tmp_path, textwrap.dedent(text))))


def test_one_block_per_address_of_hand_off_targets_with_the_largest_pool(tmp_path):
    blocks = blocks_of(tmp_path)
    assert blocks.blocks == EXPECTED_BLOCKS  # no block for a named host, nor for an endpoint without hand-off
    assert blocks.name_of("127.0.0.1", 9001) == "backworks_v4_127_0_0_1_9001"
    assert blocks.name_of("0:0::1", 9002) == "backworks_v6___1_9002"


def test_the_file_ends_with_the_map_of_the_blocks_digest(tmp_path):
    blocks = blocks_of(tmp_path)
    text = blocks.text("config/shop.yaml")
    assert text.startswith("# Written by `backworks nginx-upstreams config/shop.yaml`; do not edit.")
    assert text.endswith(EXPECTED_BLOCKS + f'map "" $backworks_upstreams {{\n    default "{blocks.digest}";\n}}\n')
    assert is_offer(blocks.digest)


def test_the_digest_follows_the_blocks_only(tmp_path):
    first = blocks_of(tmp_path).digest
    renamed = CONFIG.replace("a: {path: /a,", "z: {path: /z,")
    assert blocks_of(tmp_path, renamed).digest == first  # same blocks
    assert blocks_of(tmp_path, CONFIG.replace("pool_size: 12", "pool_size: 13")).digest != first
    assert blocks_of(tmp_path, CONFIG.replace(":9002", ":9004")).digest != first
    assert NginxUpstreams({}).blocks == ""


def test_block_names_differ_per_address_and_family():
    names = {block_name("1.2.3.4", 80), block_name("1.2.3.4", 81), block_name("::ffff:1.2.3.4", 80),
             block_name("1:2:3:4::", 80), block_name("1:2:3:4::1", 80)}
    assert len(names) == 5
    assert block_name("::FFFF:1.2.3.4", 80) == block_name("::ffff:1.2.3.4", 80)


def test_only_one_or_a_digest_is_an_offer():
    assert is_offer("1") and is_offer("0123456789abcdef")
    assert not any(is_offer(value) for value in (None, "", "0", "yes", "0123456789ABCDEF", "0123456789abcdef0"))


def test_own_digest_names_the_blocks_and_another_is_logged_once(tmp_path, caplog):
    blocks = blocks_of(tmp_path)
    with caplog.at_level(logging.WARNING, logger="backworks.modes.handoff_upstreams"):
        assert blocks.offered(blocks.digest)
        assert not blocks.offered("1")
        assert caplog.records == []  # a site without the generated file: no complaint
        assert not blocks.offered("ffffffffffffffff")
        assert not blocks.offered("ffffffffffffffff")
    assert [r.getMessage() for r in caplog.records] == [
        f"nginx's upstream blocks (digest ffffffffffffffff) are not those of this config ({blocks.digest}): "
        "handed-off requests open a new upstream connection each until `backworks nginx-upstreams` writes "
        "/etc/backworks/nginx-upstreams.conf again and nginx is reloaded"]
